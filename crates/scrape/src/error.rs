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
    /// `marks.json` could not be read or written, or a phase mark is not
    /// possible now (see [`crate::marks::MarkError`]).
    #[error(transparent)]
    Marks(#[from] crate::marks::MarkError),
    /// A Kubernetes API call failed.
    #[error("kubernetes: {context}: {source}")]
    Kube {
        context: String,
        #[source]
        source: Box<::kube::Error>,
    },
    /// The Kubernetes client configuration could not be loaded; `from` says
    /// where it was looked for (a kubeconfig path, or how it was inferred).
    #[error("kubernetes configuration ({from}): {source}")]
    KubeConfig {
        from: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a `--url` cannot be a coverage server's base URL (the URL is quoted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a URL: {url:?}: {reason}")]
    Syntax { url: String, reason: String },
    /// A scheme other than `http`.
    #[error("{url}: scheme {scheme:?} is not supported (coverage servers speak plain http)")]
    Scheme { url: String, scheme: String },
    /// No `http://`.
    #[error("{url}: missing http:// scheme")]
    NoScheme { url: String },
    /// No host.
    #[error("{url}: missing host")]
    NoHost { url: String },
}

/// Why response headers or a file header do not identify what they should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `X-Art-Coverage-Server` has a value other than `1`.
    #[error("unexpected {header}: {value:?}")]
    Server { header: &'static str, value: String },
    /// A required header is absent.
    #[error("{header} header missing")]
    Missing { header: &'static str },
    /// The PID header is not a number.
    #[error("{header} is not a PID: {value:?}")]
    Pid { header: &'static str, value: String },
    /// Base64-decoded data does not start with Go's magic for its kind.
    #[error("{field} is not a Go {kind} file (bad magic)")]
    Magic {
        field: &'static str,
        kind: &'static str,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
