//! The `covfleet` command line as a library: clap types ([`cli`]), one
//! module per subcommand ([`cmd`]), and the one output module every
//! diagnostic goes through ([`output`]).
//!
//! The binary's `main` calls [`main`], which parses the arguments, creates
//! the process-wide pieces library crates must not create themselves (the
//! tokio runtime and the rustls crypto provider), runs the command and maps
//! its outcome to an exit code (see [`cli::UsageError`]).

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

/// Runs covfleet with the process's arguments.
pub fn main() -> ExitCode {
    run(std::env::args().collect())
}

/// Runs covfleet with these arguments (`argv[0]` first).
pub fn run(argv: Vec<String>) -> ExitCode {
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
    cli::dispatch(cli.command, &shared)
}
