use std::path::PathBuf;

/// Errors of this crate; each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadSource { path: PathBuf, message: String },
    #[error(
        "{path}:{line}: the package already declares `{ident}`; the coverage server's \
         `_cov…` names would collide, so this directory is not instrumented"
    )]
    CovIdentifier {
        path: PathBuf,
        line: usize,
        ident: String,
    },
    #[error("{path}: exists but was not written by covfleet; refusing to touch it")]
    NotOurs { path: PathBuf },
    #[error("{path}: not a directory")]
    NotADir { path: PathBuf },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
