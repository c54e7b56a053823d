//! The `covfleet` command line: parse, dispatch, map errors to exit codes.

mod cli;
mod cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // One TLS provider for the whole process (rustls with ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let argv = match cmd::covdata::normalize_go_flags(std::env::args().collect()) {
        Ok(argv) => argv,
        Err(failure) => {
            eprint!("{}", failure.stderr);
            return std::process::ExitCode::from(failure.code);
        }
    };
    let cli = cli::Cli::parse_from(argv);
    cli::dispatch(cli)
}
