//! Errors of source provenance, each naming the image, repository or
//! directory involved.

use std::path::PathBuf;
use std::time::Duration;

/// Why the source labels of one image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The image name does not parse as an image reference.
    #[error("{image}: not an image reference")]
    Reference {
        image: String,
        #[source]
        source: oci_client::ParseError,
    },
    /// The registry refused the request or answered something unusable.
    #[error("{image}: registry")]
    Registry {
        image: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// The registry did not answer in time.
    #[error("{image}: registry: no answer within {}s", timeout.as_secs())]
    Timeout { image: String, timeout: Duration },
    /// The image configuration is not JSON.
    #[error("{image}: image config is not JSON")]
    Config {
        image: String,
        #[source]
        source: serde_json::Error,
    },
    /// `oc image info` (the fallback) failed; `stderr` is its last words.
    #[error("{image}: oc image info: {stderr}")]
    Oc { image: String, stderr: String },
    /// The registry failed and so did the `oc` fallback (both told in full).
    #[error("{}; {}", db::error::chain(registry.as_ref()), db::error::chain(oc.as_ref()))]
    Both {
        registry: Box<InspectError>,
        oc: Box<InspectError>,
    },
    /// The inspection task ended without a result (it panicked or was cancelled).
    #[error("{image}: inspection task failed")]
    Task { image: String },
}

/// Why one repository could not be checked out.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// `git` could not be started.
    #[error("cannot run git")]
    Spawn(#[source] std::io::Error),
    /// A `git` command failed; `stderr` is its last non-empty line.
    #[error("git {command} failed ({status}): {stderr}")]
    Git {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// A directory of the checkout could not be created, removed or renamed.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The destination has no parent directory.
    #[error("{}: no parent directory", path.display())]
    NoParent { path: PathBuf },
    /// The clone was never attempted (a worker stopped early).
    #[error("not run")]
    NotRun,
}
