//! What the analysis commands (`export`, `report`, `diff`, `patch`) share:
//! naming the collection, opening its database, selecting owners.

use std::path::{Path, PathBuf};

use crate::cli::UsageError;

/// The collection and where its sources are.
#[derive(Debug, Clone, clap::Args)]
pub struct CollectionArgs {
    #[command(flatten)]
    pub collection: super::CollectionArg,
    /// More source trees (module roots with a go.mod) to map file paths
    /// into, besides DIR/repos/; repeatable.
    #[arg(long = "source", value_name = "SRC")]
    pub sources: Vec<PathBuf>,
}

impl CollectionArgs {
    /// The collection directory.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        Ok(self.collection.dir()?)
    }

    /// Opens DIR/coverage.db.
    pub fn open(&self) -> anyhow::Result<db::Database> {
        open_db(&self.dir()?.join(db::DB_FILE))
    }

    /// The source lookup `render` uses: DIR/repos plus --source roots.
    pub fn repo_paths(&self) -> anyhow::Result<report::cov::RepoPaths> {
        for s in &self.sources {
            if !s.is_dir() {
                return Err(usage(format!("--source {}: not a directory", s.display())));
            }
        }
        let roots = self
            .sources
            .iter()
            .map(|s| std::fs::canonicalize(s).unwrap_or_else(|_| s.clone()))
            .collect();
        Ok(report::cov::RepoPaths::new(
            self.dir()?.join("repos"),
            roots,
        ))
    }
}

/// A usage error (exit code 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(msg))
}

/// Opens a coverage.db; a missing or unreadable one is a usage error.
pub fn open_db(path: &Path) -> anyhow::Result<db::Database> {
    if !path.is_file() {
        return Err(usage(format!(
            "{} not found: run `covfleet compile` first",
            path.display()
        )));
    }
    db::Database::open(path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// The owners matching the globs; none matching is a usage error.
pub fn owners(database: &db::Database, globs: &[String]) -> anyhow::Result<Vec<db::Owner>> {
    let owners = report::cov::select_owners(database, globs).map_err(|e| usage(e.to_string()))?;
    if owners.is_empty() {
        return Err(usage(if globs.is_empty() {
            format!(
                "{}: no owners (empty collection)",
                database.path().display()
            )
        } else {
            format!("no owner matches {}", globs.join(", "))
        }));
    }
    Ok(owners)
}
