//! Command-line types and the one place where outcomes become exit codes.
//!
//! Each subcommand lives in its own module under `cmd/` with its own clap
//! `Args` struct and a `run` function returning an [`ExitCode`].
//! Exit codes: 0 success, 1 when any target failed (the run still completes),
//! 2 usage or setup errors (see [`UsageError`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// Measure which Go code really runs: instrument, collect, compile, render.
#[derive(Debug, Parser)]
#[command(name = "covfleet", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read Go's binary coverage data natively (drop-in for `go tool covdata`).
    #[command(about = "Read Go's binary coverage data natively (a drop-in for `go tool covdata`)")]
    Covdata(cmd::covdata::Args),
    /// Inject the live-coverage server into every eligible `package main` directory.
    Instrument(cmd::instrument::Args),
    /// Install a `go` wrapper that adds `-cover -covermode=atomic` to go build / go install.
    GoShim(cmd::go_shim::Args),
    /// Scrape live coverage from running programs into GOCOVERDIR-compatible dirs.
    Collect(cmd::collect::Args),
    /// Node agent: follow every instrumented process on this node into a sink.
    Agent(cmd::agent::Args),
    /// Zero the coverage counters of every target (start of a phase).
    Reset(cmd::reset::Args),
    /// Fetch an S3 prefix in the seed layout into DIR/coverage/.
    Download(cmd::download::Args),
    /// Compile a collection into DIR/coverage.db (incremental).
    Compile(cmd::compile::Args),
    /// Clone each binary's source at its commit into DIR/repos/.
    CloneSources(cmd::clone_sources::Args),
    /// Render the static HTML site of a compiled collection (default DIR/html/index.html).
    Render(cmd::render::Args),
    /// Build the bundled demo service with coverage, run it, and render its report.
    Demo(cmd::demo::Args),
}

/// An error in how covfleet was called or set up: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn dispatch(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Covdata(args) => cmd::covdata::run(args),
        Command::Instrument(args) => cmd::instrument::run(args),
        Command::GoShim(args) => cmd::go_shim::run(args),
        Command::Collect(args) => cmd::collect::run(args),
        Command::Reset(args) => cmd::reset::run(args),
        Command::Agent(args) => cmd::agent::run(args),
        Command::Download(args) => cmd::download::run(args),
        Command::Compile(args) => cmd::compile::run(args),
        Command::CloneSources(args) => cmd::clone_sources::run(args),
        Command::Render(args) => cmd::render::run(args),
        Command::Demo(args) => cmd::demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("covfleet: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
