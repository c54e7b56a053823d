//! The `covfleet` command line: parse, dispatch, map errors to exit codes.

mod cli;
mod cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::dispatch(cli)
}
