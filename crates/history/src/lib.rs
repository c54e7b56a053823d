//! Coverage history across runs and clusters: one compiled `coverage.db`
//! becomes one run of a versioned, Hive-partitioned Parquet dataset in
//! object storage (`file://` or `s3://`, through the `store` crate), which
//! any query engine reads; covfleet's own questions over many runs
//! ([`query::never_ran`], [`query::trend`]) run on an embedded DataFusion.
//! See `docs/history.md` for the layout, the schema and the SQL for other
//! engines.
//!
//! - [`schema`]: the layout version, table schemas and object keys.
//! - [`mod@publish`]: a database → one run's Parquet files → the dataset
//!   (data first, then the manifest; a republished run replaces the old).
//! - [`read`]: the committed runs and their tables, older files conformed.
//! - [`query`]: the questions.
//!
//! No runtime is created here: the async functions run on the caller's.

pub mod error;
pub mod publish;
pub mod query;
pub mod read;
pub mod schema;

pub use error::Error;
pub use publish::{Published, RunFiles, RunSpec, encode_run, publish};
pub use query::{Answer, NeverRan, TrendPoint, Window, never_ran, trend};
pub use schema::{LAYOUT_VERSION, Table};

/// Compiles a collection directory into a temporary database (the
/// collection itself is left as it is) and opens it. The returned directory
/// must outlive the database.
pub fn compile_collection(
    dir: &std::path::Path,
) -> Result<(tempfile::TempDir, db::Database), Error> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let tmp = tempfile::tempdir().map_err(io(std::env::temp_dir().as_path()))?;
    let src = std::path::absolute(dir.join("coverage")).map_err(io(dir))?;
    if !src.is_dir() {
        return Err(Error::Io {
            path: src,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no coverage/ directory"),
        });
    }
    std::os::unix::fs::symlink(&src, tmp.path().join("coverage")).map_err(io(tmp.path()))?;
    let opts = db::CompileOptions::new(tmp.path());
    db::compile(&opts).map_err(|source| Error::Compile {
        path: dir.to_path_buf(),
        source,
    })?;
    let database = db::Database::open_collection(tmp.path()).map_err(|source| Error::Db {
        path: tmp.path().join(db::DB_FILE),
        source,
    })?;
    Ok((tmp, database))
}
