//! `covfleet clone-sources --collection DIR`: every binary's source at its
//! commit, under `DIR/repos/<host>/<org>/<repo>/<commit8>/`.

use std::path::PathBuf;
use std::process::ExitCode;

use db::sources::{self, CloneOutcome};

use crate::cli::UsageError;

/// Arguments of `covfleet clone-sources`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The collection directory (reads DIR/coverage.db, writes DIR/repos/).
    #[arg(long, value_name = "DIR")]
    pub collection: PathBuf,
    /// Git clones running at once.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_concurrency: usize,
    /// Keep checkouts that already exist (default); `--skip-existing=false` re-clones them.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub skip_existing: bool,
    /// Print what would be cloned, one `URL COMMIT DEST` per line, and stop.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.collection.join(db::DB_FILE).is_file() {
        return Err(UsageError(format!(
            "{}: no {} (run `covfleet compile --collection {}` first)",
            args.collection.display(),
            db::DB_FILE,
            args.collection.display()
        ))
        .into());
    }
    let (targets, bad) = sources::targets(&args.collection)?;
    for b in &bad {
        eprintln!("covfleet: clone-sources: {b}");
    }
    if args.dry_run {
        for t in &targets {
            println!(
                "{} {} {}",
                t.url,
                if t.commit.is_empty() { "-" } else { &t.commit },
                t.dest.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let outcomes = sources::clone_all(&targets, args.max_concurrency, args.skip_existing);
    let (mut ok, mut skipped, mut fallback, mut failed) = (0, 0, 0, 0);
    for (t, o) in targets.iter().zip(&outcomes) {
        match o {
            CloneOutcome::Cloned => {
                ok += 1;
                eprintln!("cloned {} at {} → {}", t.url, t.commit, t.dest.display());
            }
            CloneOutcome::Skipped => skipped += 1,
            CloneOutcome::DefaultBranch { warning } => {
                fallback += 1;
                eprintln!("covfleet: clone-sources: warning: {warning}");
            }
            CloneOutcome::Failed(e) => {
                failed += 1;
                eprintln!("covfleet: clone-sources: {e}");
            }
        }
    }
    eprintln!(
        "{} sources: {ok} cloned, {fallback} on the default branch, {skipped} already present, {failed} failed",
        targets.len()
    );
    Ok(if failed > 0 || !bad.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
