//! Errors of the doctor: each names the file, PID or URL involved.

use std::path::{Path, PathBuf};

/// Why a diagnosis could not start (findings themselves are not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Go executable (or not one covfleet can read).
    #[error("{path}: {reason}")]
    NotGo { path: PathBuf, reason: String },
    /// No such process, or its /proc entry cannot be read.
    #[error("process {pid}: {reason}")]
    Process { pid: u32, reason: String },
    /// The Kubernetes API could not be asked about a pod (`NS/NAME`).
    #[error("pod {pod}: {reason}")]
    Kube { pod: String, reason: String },
    /// Running a copy of the program for `--try-exit` failed.
    #[error("--try-exit with {program}: {reason}")]
    TryExit { program: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
