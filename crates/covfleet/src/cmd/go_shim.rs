//! `covfleet go-shim install --dir DIR`: a `go` wrapper that builds with coverage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Manage the `go` wrapper that adds `-cover -covermode=atomic` to `go build` / `go install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write DIR/go; put DIR first on PATH to build everything with coverage.
    Install {
        /// Directory to write the `go` shim into (created if missing).
        #[arg(long)]
        dir: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Install { dir } => {
            let path = gosrc::shim::install(&dir)
                .with_context(|| format!("install the go shim into {}", dir.display()))?;
            println!("{}", path.display());
            eprintln!(
                "covfleet: put it first on PATH: export PATH=\"{}:$PATH\"",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
