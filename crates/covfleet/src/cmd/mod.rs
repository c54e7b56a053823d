//! One module per subcommand, and the arguments several of them share.

use std::path::PathBuf;

pub mod agent;
pub mod analysis;
pub mod clone_sources;
pub mod collect;
pub mod compile;
pub mod covdata;
pub mod demo;
pub mod diff;
pub mod doctor;
pub mod download;
pub mod export;
pub mod go_shim;
#[cfg(feature = "history")]
pub mod history;
pub mod instrument;
pub mod patch;
#[cfg(feature = "history")]
pub mod publish;
pub mod pull_secret;
pub mod render;
pub mod report;
pub mod reset;
pub mod s3_setup;
pub mod upload;

/// The collection directory, as a positional `DIR` or as `--collection DIR`
/// (one of them is required).
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct CollectionArg {
    /// The collection directory: DIR/coverage/ holds the collected entries,
    /// DIR/coverage.db the compiled database, DIR/repos/ cloned sources.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The collection directory (the same as DIR).
    #[arg(long = "collection", value_name = "DIR")]
    pub collection: Option<PathBuf>,
}

impl CollectionArg {
    /// The directory given either way.
    pub fn dir(&self) -> Result<PathBuf, crate::cli::UsageError> {
        self.dir
            .clone()
            .or_else(|| self.collection.clone())
            .ok_or_else(|| {
                crate::cli::UsageError::new(
                    "give the collection directory: DIR or --collection DIR",
                )
            })
    }
}
