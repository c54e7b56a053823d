//! Errors. Every variant names the target (URL, pod and port, or PID) or the
//! file it concerns.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong at the transport level (below HTTP status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// Nothing listens there (connection refused, no route, pod gone).
    Connect,
    /// The request did not finish in time.
    Timeout,
    /// Anything else (broken connection, bad response, API error).
    Other,
    /// The answer is larger than the per-snapshot limit.
    TooLarge,
    /// The collector's shared memory budget could not hold the answer now.
    OverBudget,
}

/// A transport failure, before any target label is attached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn connect(message: impl Into<String>) -> Self {
        Self {
            kind: TransportErrorKind::Connect,
            message: message.into(),
        }
    }
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            kind: TransportErrorKind::Other,
            message: message.into(),
        }
    }
    /// The answer went past a [`crate::budget::BodyLimit`].
    pub fn exceeded(why: crate::budget::Exceeded) -> Self {
        match why {
            crate::budget::Exceeded::Size => Self {
                kind: TransportErrorKind::TooLarge,
                message: "the answer is larger than the snapshot size limit".into(),
            },
            crate::budget::Exceeded::Budget => Self {
                kind: TransportErrorKind::OverBudget,
                message: "the collector's memory budget is in use by other answers".into(),
            },
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed below HTTP (after retries).
    #[error("{target}: {method} {path}: {source}")]
    Transport {
        target: String,
        method: String,
        path: String,
        #[source]
        source: TransportError,
    },
    /// A request timed out (after retries).
    #[error("{target}: {method} {path}: no answer within {timeout:?}")]
    Timeout {
        target: String,
        method: String,
        path: String,
        timeout: Duration,
    },
    /// The server answered with an unexpected HTTP status.
    #[error("{target}: {method} {path}: HTTP {status}: {message}")]
    Status {
        target: String,
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// The answer is larger than `--max-snapshot-size` (as sent or decompressed).
    #[error("{target}: {method} {path}: the answer is larger than {limit} (--max-snapshot-size)")]
    TooLarge {
        target: String,
        method: String,
        path: String,
        limit: String,
    },
    /// A target went past a limit of the run (e.g. `--max-entries-per-target`)
    /// and is no longer collected in this run.
    #[error("{target}: {reason}")]
    Limit { target: String, reason: String },
    /// The `/coverage` answer could not be understood.
    #[error("{target}: malformed /coverage answer: {reason}")]
    Malformed { target: String, reason: String },
    /// The server's identity changed or contradicts what discovery found.
    #[error("{target}: identity check failed: {reason}")]
    Identity { target: String, reason: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Kubernetes API call failed.
    #[error("kubernetes: {context}: {source}")]
    Kube {
        context: String,
        #[source]
        source: Box<::kube::Error>,
    },
    /// Kubernetes client configuration could not be loaded.
    #[error("kubernetes configuration: {0}")]
    KubeConfig(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
