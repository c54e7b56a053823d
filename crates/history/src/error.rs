//! Errors of publishing and reading a history dataset.

use std::path::PathBuf;

/// Everything that can go wrong publishing or querying a dataset. Each
/// variant names the database, object key or name involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the compiled coverage database failed.
    #[error("{path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: db::Error,
    },
    /// Compiling the collection into a temporary database failed.
    #[error("compiling {path}: {source}")]
    Compile {
        path: PathBuf,
        #[source]
        source: db::Error,
    },
    /// A local file operation (temporary directory, symlink) failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The object store refused or failed a request.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A cluster or run name that cannot be a partition value.
    #[error("{what} {value:?}: use 1-128 characters among A-Z a-z 0-9 . _ - (and not . or ..)")]
    BadName { what: &'static str, value: String },
    /// A time in the database or on the command line could not be read.
    #[error("{what}: not an RFC 3339 time: {value:?}")]
    BadTime { what: String, value: String },
    /// Building a table or writing its Parquet file failed.
    #[error("writing table {table}: {message}")]
    Write {
        table: &'static str,
        message: String,
    },
    /// A Parquet file of the dataset could not be read or does not fit the
    /// table's schema.
    #[error("{key}: {message}")]
    Read { key: String, message: String },
    /// A manifest was written by a newer covfleet with a layout this one
    /// does not know.
    #[error(
        "{key}: layout version {found} is newer than this covfleet's {supported}: upgrade covfleet"
    )]
    LayoutTooNew {
        key: String,
        found: i32,
        supported: i32,
    },
    /// The embedded query engine failed.
    #[error("query {query}: {message}")]
    Query {
        query: &'static str,
        message: String,
    },
    /// A `--cluster` glob does not parse.
    #[error("bad cluster glob {glob:?}: {message}")]
    BadGlob { glob: String, message: String },
}

impl Error {
    pub(crate) fn write(table: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Write {
            table,
            message: e.to_string(),
        }
    }
    pub(crate) fn read(key: &str, e: impl std::fmt::Display) -> Error {
        Error::Read {
            key: key.to_string(),
            message: e.to_string(),
        }
    }
}
