//! `covfleet clone-sources [DIR]`: every binary's source at its commit,
//! under `DIR/repos/<host>/<org>/<repo>/<commit8>/`.

use std::process::ExitCode;

use provenance::checkout::{self, CloneOutcome};

use crate::cli::UsageError;
use crate::cmd::CollectionArg;
use crate::output;

/// Arguments of `covfleet clone-sources`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collection: CollectionArg,
    /// Git clones running at once.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_concurrency: usize,
    /// Keep checkouts that already exist (default); `--skip-existing=false` re-clones them.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub skip_existing: bool,
    /// Print what would be cloned, one `URL COMMIT DEST` per line, and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Clone only from this host (repeatable; default: any host). Source URLs
    /// come from the scraped pods: see docs/security.md.
    #[arg(long = "allow-source-host", value_name = "HOST")]
    pub allow_source_hosts: Vec<String>,
    /// Allow this URL scheme (repeatable; default: https only). `ssh` covers
    /// `git@host:org/repo`; `file` allows local repositories.
    #[arg(
        long = "allow-source-scheme",
        value_name = "SCHEME",
        default_value = "https"
    )]
    pub allow_source_schemes: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let collection = args.collection.dir()?;
    if !collection.join(db::DB_FILE).is_file() {
        return Err(UsageError::new(format!(
            "{}: no {} (run `covfleet compile {}` first)",
            collection.display(),
            db::DB_FILE,
            collection.display()
        ))
        .into());
    }
    let policy = checkout::SourcePolicy {
        schemes: args.allow_source_schemes.clone(),
        hosts: args.allow_source_hosts.clone(),
    };
    let pairs = db::Database::open_collection(&collection)?.source_repositories()?;
    let mut refused = 0usize;
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(url, _)| match policy.check(url) {
            Ok(()) => true,
            Err(e) => {
                output::error(e);
                refused += 1;
                false
            }
        })
        .collect();
    let (targets, bad) = checkout::targets(&collection, pairs);
    for b in &bad {
        output::error(b);
    }
    if args.dry_run {
        for t in &targets {
            output::data(format_args!(
                "{} {} {}",
                t.url,
                if t.commit.is_empty() { "-" } else { &t.commit },
                t.dest.display()
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let outcomes = checkout::clone_all(&targets, args.max_concurrency, args.skip_existing);
    let (mut ok, mut skipped, mut fallback, mut failed) = (0, 0, 0, 0);
    for (t, o) in targets.iter().zip(&outcomes) {
        match o {
            CloneOutcome::Cloned => {
                ok += 1;
                output::status(format_args!(
                    "cloned {} at {} → {}",
                    t.url,
                    t.commit,
                    t.dest.display()
                ));
            }
            CloneOutcome::Skipped => skipped += 1,
            CloneOutcome::DefaultBranch { cause } => {
                fallback += 1;
                output::warn(format_args!(
                    "{}: commit {} not available ({}); using the default branch",
                    t.url,
                    t.commit,
                    db::error::chain(cause)
                ));
            }
            CloneOutcome::Failed(e) => {
                failed += 1;
                output::error(format_args!("{}: {}", t.url, db::error::chain(e)));
            }
        }
    }
    output::status(format_args!(
        "{}: {ok} cloned, {fallback} on the default branch, {skipped} already present, {failed} failed",
        output::plural(targets.len(), "source", "sources")
    ));
    Ok(if failed > 0 || !bad.is_empty() || refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
