//! Errors. Every variant names the store (bucket and endpoint, or
//! directory) and the key or file involved; none carries a secret.

use std::path::PathBuf;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sink URL is not `file://DIR` or `s3://BUCKET[/PREFIX]`.
    #[error("{url}: not a sink URL (expected file://DIR or s3://BUCKET[/PREFIX]): {why}")]
    BadUrl { url: String, why: String },
    /// The object store could not be set up (bad endpoint, region…).
    #[error("{store}: {message}")]
    Setup { store: String, message: String },
    /// The store refused our credentials.
    #[error(
        "{store}: access denied while trying to {op} {key}: check the credentials \
         (access key id {key_id}) and that they may use bucket {bucket}: {source}"
    )]
    Denied {
        store: String,
        bucket: String,
        key_id: String,
        op: &'static str,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A request failed (after retries).
    #[error("{store}: {op} {key}: {source}")]
    Request {
        store: String,
        op: &'static str,
        key: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A key the layout does not allow (empty, `..`, absolute).
    #[error("{store}: refusing key {key:?}: {why}")]
    BadKey {
        store: String,
        key: String,
        why: &'static str,
    },
    /// Local file I/O (spool, download target).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The registry-auth pull secret could not be decoded.
    #[error(transparent)]
    Auth(#[from] crate::registry_auth::AuthError),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the store refused the credentials (retrying will not help).
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Denied { .. })
    }
}
