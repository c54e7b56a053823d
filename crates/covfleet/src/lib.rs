//! The `covfleet` command line as a library: clap types ([`cli`]), one
//! module per subcommand ([`cmd`]), and the one output module every
//! diagnostic goes through ([`output`]).
//!
//! The binary's `main` calls [`main`], which parses the arguments, creates
//! the process-wide pieces library crates must not create themselves (the
//! tokio runtime and the rustls crypto provider), runs the command and maps
//! its outcome to an exit code (see [`cli::UsageError`]).
//!
//! Two binaries share this library. `covfleet` runs every command except
//! `publish` and `history`, which it hands to `covfleet-history`, installed
//! next to it ([`history_in_sibling`]). Those two commands embed DataFusion,
//! Arrow and Parquet: linked into `covfleet`, their 200k load-time
//! relocations made every command start 2–4 ms slower (4.2–6 ms instead of
//! 2.2 ms; `bench/covdata.sh` prints both). `covfleet-history` is
//! covfleet with them linked in ([`history_in_process`]).

pub mod cli;
pub mod cmd;
pub mod output;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

/// What the binary creates once and hands to every command.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The one tokio runtime (current-thread: scraping is I/O bound).
    pub runtime: Arc<tokio::runtime::Runtime>,
}

impl Shared {
    /// Builds the runtime and installs the workspace's rustls crypto
    /// provider (ring) as the process default.
    pub fn new() -> std::io::Result<Shared> {
        // Fails only when a provider is installed already: keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Shared {
            runtime: Arc::new(runtime),
        })
    }
}

/// Runs covfleet with the process's arguments, `publish` and `history` in
/// the `covfleet-history` binary next to this one.
pub fn main() -> ExitCode {
    run(std::env::args().collect(), history_in_sibling)
}

/// Runs covfleet with the process's arguments, every command in this process
/// (the `covfleet-history` binary).
#[cfg(feature = "history")]
pub fn main_with_history() -> ExitCode {
    run(std::env::args().collect(), history_in_process)
}

/// How `publish` and `history` run (see the crate documentation): a plain
/// function chosen by the binary, so that `covfleet` does not link them.
pub type HistoryRunner = fn(cli::HistoryCommand, &Shared) -> anyhow::Result<ExitCode>;

/// Runs `publish` or `history` in this process.
#[cfg(feature = "history")]
pub fn history_in_process(
    command: cli::HistoryCommand,
    shared: &Shared,
) -> anyhow::Result<ExitCode> {
    match command {
        cli::HistoryCommand::Publish(args) => cmd::publish::run(args, shared),
        cli::HistoryCommand::History(args) => cmd::history::run(args, shared),
    }
}

/// The binary that runs `publish` and `history`, installed next to `covfleet`.
pub const HISTORY_BINARY: &str = "covfleet-history";

/// Runs `publish` or `history` by replacing this process with
/// `covfleet-history` (same arguments, same standard streams, its exit code).
/// Returns only when that binary cannot be started.
pub fn history_in_sibling(
    command: cli::HistoryCommand,
    _shared: &Shared,
) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let name = command.name();
    let exe = std::env::current_exe().map_err(|e| {
        cli::UsageError::caused_by("cannot tell where this covfleet is installed", e)
    })?;
    let sibling = exe.with_file_name(HISTORY_BINARY);
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "covfleet".into());
    let err = std::process::Command::new(&sibling)
        .arg0(arg0)
        .args(args)
        .exec();
    let hint = if err.kind() == std::io::ErrorKind::NotFound {
        " (it is built and installed with covfleet: `cargo build --release` builds both, `cargo install --path crates/covfleet` installs both)"
    } else {
        ""
    };
    Err(cli::UsageError::caused_by(
        format!(
            "`covfleet {name}` runs in {HISTORY_BINARY}, next to this covfleet: cannot start {}{hint}",
            sibling.display()
        ),
        err,
    )
    .into())
}

/// Runs covfleet with these arguments (`argv[0]` first); `history` runs the
/// commands of the history dataset.
pub fn run(argv: Vec<String>, history: HistoryRunner) -> ExitCode {
    let argv = match cmd::covdata::normalize_go_flags(argv) {
        Ok(argv) => argv,
        Err(failure) => {
            eprint!("{}", failure.stderr);
            return ExitCode::from(failure.code);
        }
    };
    let cli = cli::Cli::parse_from(argv);
    output::init(cli.quiet);
    // The agent logs through tracing-subscriber (structured, COVFLEET_LOG);
    // every other command routes warnings through the output module.
    if !matches!(cli.command, cli::Command::Agent(_)) {
        cli::install_tracing();
    }
    let shared = match Shared::new() {
        Ok(s) => s,
        Err(e) => {
            output::error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    cli::dispatch(cli.command, &shared, history)
}
