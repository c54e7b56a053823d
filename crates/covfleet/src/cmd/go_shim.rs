//! `covfleet go-shim install --dir DIR`: a `go` wrapper that builds with coverage.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::UsageError;
use crate::output;

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
        /// Also cover these packages (comma-separated patterns, e.g.
        /// github.com/openshift/library-go/...): the shim adds
        /// -coverpkg=PATTERNS plus the packages being built.
        /// $COVFLEET_COVERPKG overrides it at build time.
        #[arg(long, value_name = "PATTERNS")]
        coverpkg: Option<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Install { dir, coverpkg } => {
            let path = match gosrc::shim::install_with(&dir, coverpkg.as_deref()) {
                Ok(p) => p,
                // Refusing to overwrite a real go is a setup error (exit 2).
                Err(e @ (gosrc::Error::NotOurs { .. } | gosrc::Error::CoverPkg { .. })) => {
                    return Err(UsageError::caused_by(
                        format!("will not install the go shim into {}", dir.display()),
                        e,
                    )
                    .into());
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("install the go shim into {}", dir.display())));
                }
            };
            output::data(path.display());
            output::hint(format_args!(
                "put it first on PATH: export PATH=\"{}:$PATH\"",
                dir.display()
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}
