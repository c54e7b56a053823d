//! Errors of the database layer, each naming the file or entry involved.

use std::path::PathBuf;

/// Anything that can go wrong while compiling or reading a coverage database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed on the database at `path`.
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A file or directory could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The database was written by a newer covfleet.
    #[error(
        "database {path} has schema version {found}; this covfleet understands up to {supported}"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// The database is not a covfleet coverage database (or predates covfleet).
    #[error(
        "database {path} is not a covfleet coverage database ({why}); run `covfleet compile` to rebuild it"
    )]
    NotCovfleet { path: PathBuf, why: String },
    /// A stored blob could not be decoded (corruption); `what` names it.
    #[error("database {path}: corrupt {what}")]
    Corrupt {
        path: PathBuf,
        what: String,
        #[source]
        source: crate::codec::BlobError,
    },
    /// The collection directory is missing or unusable.
    #[error("collection {path}: {why}")]
    Collection { path: PathBuf, why: String },
    /// No such owner id.
    #[error("no owner with id {0}")]
    NoOwner(i64),
    /// Another `compile` holds the collection's lock.
    #[error("another compile is running on {}{}; wait for it to finish", path.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, pid: Option<u32> },
}

/// Renders an error and its causes on one line, `a: b: c`, skipping a cause
/// whose text the message already ends with.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.ends_with(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}

/// Attaches the database path to rusqlite errors.
pub(crate) trait SqlCtx<T> {
    fn db(self, path: &std::path::Path) -> Result<T, Error>;
}

impl<T> SqlCtx<T> for Result<T, rusqlite::Error> {
    fn db(self, path: &std::path::Path) -> Result<T, Error> {
        self.map_err(|source| Error::Sqlite {
            path: path.to_path_buf(),
            source,
        })
    }
}
