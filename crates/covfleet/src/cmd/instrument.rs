//! `covfleet instrument [DIR] [--dry-run] [--undo] [--tags T]`: inject the
//! coverage server into every eligible `package main` directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::UsageError;

/// Inject the live-coverage server into every `package main` directory Go
/// would build under DIR (or take it out again with --undo).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Root of the Go tree (a module root or any directory inside one).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Print the chosen directories (relative to DIR, one per line) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove exactly the files an earlier `instrument` wrote.
    #[arg(long)]
    pub undo: bool,
    /// Build tags to evaluate constraints with (comma-separated, like `go build -tags`;
    /// default: -tags from GOFLAGS). GOOS, GOARCH and CGO_ENABLED come from the environment.
    #[arg(long, value_name = "T")]
    pub tags: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        return Err(UsageError(format!("{}: not a directory", args.dir.display())).into());
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.undo {
        let rep = gosrc::undo(&args.dir, args.dry_run)
            .with_context(|| format!("undo in {}", args.dir.display()))?;
        for p in &rep.removed {
            writeln!(out, "{}", p.display())?;
        }
        for p in &rep.foreign {
            eprintln!(
                "covfleet: left alone (not written by covfleet): {}",
                args.dir.join(p).display()
            );
        }
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        eprintln!(
            "covfleet: {verb} {} coverage server file(s)",
            rep.removed.len()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let ctx = gosrc::BuildContext::from_env(&args.tags);
    let rep = gosrc::instrument(&args.dir, &ctx, args.dry_run)
        .with_context(|| format!("instrument {}", args.dir.display()))?;
    for w in &rep.warnings {
        eprintln!("covfleet: warning: {w}");
    }
    if args.dry_run {
        for d in &rep.chosen {
            writeln!(out, "{}", d.display())?;
        }
    } else {
        for p in &rep.written {
            writeln!(out, "{}", p.display())?;
        }
        for p in &rep.removed_stale {
            eprintln!("covfleet: removed stale {}", p.display());
        }
        eprintln!(
            "covfleet: {} directories for {}/{}: {} written, {} already up to date",
            rep.chosen.len(),
            ctx.goos,
            ctx.goarch,
            rep.written.len(),
            rep.unchanged.len()
        );
    }
    for e in &rep.refused {
        eprintln!("covfleet: error: {e}");
    }
    Ok(if rep.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
