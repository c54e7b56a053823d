//! `covfleet instrument [DIR] [--dry-run] [--undo] [--tags T] [--test-binary]`: inject the
//! coverage server into every eligible `package main` directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::UsageError;
use crate::output;

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
    /// Also write the companion that lets programs built as `go test -c` binaries serve live
    /// coverage (build with `-tags covfleet_testbinary -ldflags=-checklinkname=0`, run with
    /// COVERAGE_IN_TESTS=1; see docs/test-binaries.md). Without it, an earlier companion is removed.
    #[arg(long, conflicts_with = "undo")]
    pub test_binary: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        return Err(UsageError::new(format!("{}: not a directory", args.dir.display())).into());
    }
    if args.undo {
        return undo(&args);
    }
    let ctx = gosrc::BuildContext::from_env(&args.tags);
    let opts = gosrc::InstrumentOptions {
        dry_run: args.dry_run,
        test_binary: args.test_binary,
    };
    let rep = gosrc::instrument_with(&args.dir, &ctx, opts)
        .with_context(|| format!("instrument {}", args.dir.display()))?;
    for w in &rep.warnings {
        output::warn(w);
    }
    if args.dry_run {
        for d in &rep.chosen {
            output::data(d.display());
        }
    } else {
        for p in &rep.written {
            output::data(p.display());
        }
        for p in &rep.removed_stale {
            output::status(format_args!("removed stale {}", p.display()));
        }
        output::status(format_args!(
            "{} for {}/{}: {} written, {} already up to date, {} failed",
            output::plural(rep.chosen.len(), "directory", "directories"),
            ctx.goos,
            ctx.goarch,
            rep.written.len(),
            rep.unchanged.len(),
            rep.failed.len()
        ));
    }
    if args.test_binary && !args.dry_run && !rep.chosen.is_empty() {
        output::hint(
            "build the test binary with `go test -c -cover -covermode=atomic -tags <yours>,covfleet_testbinary -ldflags=-checklinkname=0` and run it with COVERAGE_IN_TESTS=1 (Go 1.23 or later; docs/test-binaries.md)",
        );
    }
    if rep.chosen.is_empty() && rep.refused.is_empty() {
        // Nothing to do is not a failure (scripts run instrument over every
        // module, libraries included), but it is never what a user meant.
        output::warn(format_args!(
            "no `package main` directory under {} builds for {}/{}",
            args.dir.display(),
            ctx.goos,
            ctx.goarch
        ));
        output::hint(
            "point instrument at the module holding your commands (the directories with `package main`), or check --tags, GOOS and GOARCH",
        );
    }
    for e in rep.refused.iter().chain(&rep.failed) {
        output::error(e);
    }
    Ok(if rep.refused.is_empty() && rep.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--undo`: removes exactly the files an earlier `instrument` wrote.
fn undo(args: &Args) -> anyhow::Result<ExitCode> {
    let rep = gosrc::undo(&args.dir, args.dry_run)
        .with_context(|| format!("undo in {}", args.dir.display()))?;
    for p in &rep.removed {
        output::data(p.display());
    }
    for p in &rep.foreign {
        output::warn(format_args!(
            "left alone (not written by covfleet): {}",
            args.dir.join(p).display()
        ));
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for e in &rep.failed {
        output::error(e);
    }
    let dirs: std::collections::BTreeSet<_> =
        rep.removed.iter().filter_map(|p| p.parent()).collect();
    output::status(format_args!(
        "{verb} {} ({} undone, {} failed)",
        output::plural(rep.removed.len(), "injected file", "injected files"),
        output::plural(dirs.len(), "directory", "directories"),
        rep.failed.len()
    ));
    Ok(if rep.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
