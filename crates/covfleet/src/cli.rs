//! Command-line types and the one place where outcomes become exit codes.
//!
//! Each subcommand lives in its own module under `cmd/` with its own clap
//! `Args` struct and a `run` function returning an [`ExitCode`].
//! Exit codes: 0 success, 1 when anything failed (a run that still
//! completes with failed targets included), 2 for usage and setup errors the
//! user must fix before trying again (see [`UsageError`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{Shared, cmd, output};

/// Measure which Go code really runs: instrument, collect, compile, render.
#[derive(Debug, Parser)]
#[command(name = "covfleet", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Print only errors, warnings and data: no progress, status or summaries.
    #[arg(short, long, global = true)]
    pub quiet: bool,
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
    /// Fetch an S3 prefix (or a file:// tree) in the seed layout into DIR/coverage/.
    Download(cmd::download::Args),
    /// Compile a collection into DIR/coverage.db (incremental).
    Compile(cmd::compile::Args),
    /// Clone each binary's source at its commit into DIR/repos/.
    CloneSources(cmd::clone_sources::Args),
    /// Render the static HTML site of a compiled collection (default DIR/html/index.html).
    Render(cmd::render::Args),
    /// Build the bundled demo service with coverage, run it, and render its report.
    Demo(cmd::demo::Args),
    /// Why coverage is missing from a binary, a process, a coverage server or a pod (`--kube POD`); each finding with its fix.
    Doctor(cmd::doctor::Args),
    /// Write Go profile, lcov, Cobertura or Codecov reports of a compiled collection.
    Export(cmd::export::Args),
    /// Per-function coverage of each owner (`--func`, like `go tool cover -func`).
    Report(cmd::report::Args),
    /// Statements newly covered / no longer covered / still missed between two collections or phases (DIR@PHASE).
    Diff(cmd::diff::Args),
    /// Coverage of the lines changed between two commits (exit 1 below --fail-under).
    Patch(cmd::patch::Args),
    /// Add, replace or remove the S3 credentials entry in a pull secret (local JSON or the cluster's).
    PullSecret(cmd::pull_secret::Args),
    /// Publish a compiled collection as one run of a Parquet history dataset (s3:// or file://).
    #[cfg(feature = "history")]
    Publish(cmd::publish::Args),
    /// Questions over many published runs: --never-ran (dead-code candidates), --trend.
    #[cfg(feature = "history")]
    History(cmd::history::Args),
    /// Create the coverage bucket (90-day expiry) and an upload-only access key; write configs/BUCKET.json.
    S3Setup(cmd::s3_setup::Args),
}

/// The commands of the history dataset, run by a [`crate::HistoryRunner`].
#[derive(Debug)]
pub enum HistoryCommand {
    #[cfg(feature = "history")]
    Publish(cmd::publish::Args),
    #[cfg(feature = "history")]
    History(cmd::history::Args),
}

impl HistoryCommand {
    /// The subcommand's name.
    pub fn name(&self) -> &'static str {
        match *self {
            #[cfg(feature = "history")]
            HistoryCommand::Publish(_) => "publish",
            #[cfg(feature = "history")]
            HistoryCommand::History(_) => "history",
        }
    }
}

/// An error in how covfleet was called or set up, which the user must fix
/// before trying again: exit code 2. Everything else exits 1.
#[derive(Debug)]
pub struct UsageError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl UsageError {
    /// A usage error with nothing behind it.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            source: None,
        }
    }

    /// A usage error caused by `source` (kept for the `caused by:` lines).
    pub fn caused_by(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        UsageError {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The exit code of a failed command: 2 when a [`UsageError`] is anywhere in
/// the chain, else 1.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// Runs one command and maps its outcome to the exit code.
pub fn dispatch(command: Command, shared: &Shared, history: crate::HistoryRunner) -> ExitCode {
    let result = match command {
        Command::Covdata(args) => cmd::covdata::run(args),
        Command::Instrument(args) => cmd::instrument::run(args),
        Command::GoShim(args) => cmd::go_shim::run(args),
        Command::Collect(args) => cmd::collect::run(args, shared),
        Command::Reset(args) => cmd::reset::run(args, shared),
        Command::Agent(args) => cmd::agent::run(args, shared),
        Command::Download(args) => cmd::download::run(args, shared),
        Command::Compile(args) => cmd::compile::run(args, shared),
        Command::CloneSources(args) => cmd::clone_sources::run(args),
        Command::Render(args) => cmd::render::run(args),
        Command::Demo(args) => cmd::demo::run(args, shared),
        Command::Doctor(args) => cmd::doctor::run(args, shared),
        Command::Export(args) => cmd::export::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Diff(args) => cmd::diff::run(args),
        Command::Patch(args) => cmd::patch::run(args),
        Command::PullSecret(args) => cmd::pull_secret::run(args, shared),
        Command::S3Setup(args) => cmd::s3_setup::run(args, shared),
        #[cfg(feature = "history")]
        Command::Publish(args) => history(HistoryCommand::Publish(args), shared),
        #[cfg(feature = "history")]
        Command::History(args) => history(HistoryCommand::History(args), shared),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::error_with_causes(&err);
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// Routes `tracing` warnings and errors of library crates (the database's
/// schema rebuild, …) to [`output::warn`] / [`output::error`].
pub fn install_tracing() {
    let _ = tracing::subscriber::set_global_default(ToOutput);
}

/// A `tracing` subscriber printing WARN and ERROR events through [`output`].
#[derive(Debug)]
struct ToOutput;

impl tracing::Subscriber for ToOutput {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = Message(String::new());
        event.record(&mut text);
        if *event.metadata().level() == tracing::Level::ERROR {
            output::error(text.0);
        } else {
            output::warn(text.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Collects an event's message, then its other fields as `name=value`.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_exit_2_even_wrapped_others_1() {
        let e = anyhow::Error::new(UsageError::new("no targets"));
        assert_eq!(exit_code_of(&e), 2);
        let wrapped = e.context("collect");
        assert_eq!(exit_code_of(&wrapped), 2);
        let io = anyhow::Error::new(std::io::Error::other("connection refused"));
        assert_eq!(exit_code_of(&io), 1);
    }

    #[test]
    fn usage_error_keeps_its_cause() {
        let e = UsageError::caused_by("bad kubeconfig", std::io::Error::other("no such file"));
        let e = anyhow::Error::new(e);
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        assert_eq!(chain, ["bad kubeconfig", "no such file"]);
    }

    #[test]
    fn quiet_is_global() {
        let cli = Cli::try_parse_from(["covfleet", "compile", "--collection", "x", "-q"]).unwrap();
        assert!(cli.quiet);
        let cli =
            Cli::try_parse_from(["covfleet", "--quiet", "render", "--collection", "x"]).unwrap();
        assert!(cli.quiet);
    }
}
