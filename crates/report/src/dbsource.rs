//! The site's rows and files read from `coverage.db` (crate `db`).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use crate::model::{Block, FileCoverage, OwnerRow, SiteSource};

/// Errors reading the database for the site.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database layer failed (it names the database).
    #[error(transparent)]
    Db(#[from] db::Error),
    /// SQLite failed while reading one owner's coverage.
    #[error("{path}: reading the coverage of owner {owner}")]
    Sql {
        path: String,
        owner: i64,
        #[source]
        source: rusqlite::Error,
    },
    /// A stored blob of the owner does not decode; `what` names it.
    #[error("{path}: owner {owner}: corrupt {what}")]
    Corrupt {
        path: String,
        owner: i64,
        what: String,
        #[source]
        source: db::codec::BlobError,
    },
    /// A row id that is not a database id.
    #[error("owner id {0:?} is not a number")]
    BadId(String),
}

/// A [`SiteSource`] over an open database.
///
/// An owner's files come straight from its merged counter blob and its
/// binary's meta-data (decoded once per binary), as documented in
/// `docs/database.md`, grouped by file; the injected server's file is left
/// out.
#[derive(Debug)]
pub struct DbSource {
    db: db::Database,
    layouts: RefCell<HashMap<i64, Rc<db::layout::Layout>>>,
}

impl DbSource {
    pub fn new(db: db::Database) -> DbSource {
        DbSource {
            db,
            layouts: RefCell::new(HashMap::new()),
        }
    }

    fn layout(&self, owner: i64, meta_id: i64) -> Result<Rc<db::layout::Layout>, Error> {
        if let Some(l) = self.layouts.borrow().get(&meta_id) {
            return Ok(l.clone());
        }
        let data: Vec<u8> = self
            .db
            .connection()
            .query_row(
                "SELECT data FROM meta_files WHERE id = ?1",
                [meta_id],
                |r| r.get(0),
            )
            .map_err(|source| self.sql(owner, source))?;
        let layout = db::compile::layout_from_stored(&data).map_err(|source| Error::Corrupt {
            path: self.db.path().display().to_string(),
            owner,
            what: format!("meta-data file {meta_id}"),
            source,
        })?;
        let layout = Rc::new(layout);
        // One binary's layout is shared by its owners; keep a few.
        let mut cache = self.layouts.borrow_mut();
        if cache.len() >= 16 {
            cache.clear();
        }
        cache.insert(meta_id, layout.clone());
        Ok(layout)
    }

    fn sql(&self, owner: i64, source: rusqlite::Error) -> Error {
        Error::Sql {
            path: self.db.path().display().to_string(),
            owner,
            source,
        }
    }
}

fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    items
        .filter(|s| !s.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl SiteSource for DbSource {
    type Error = Error;

    fn rows(&self) -> Result<Vec<OwnerRow>, Error> {
        let mut out = Vec::new();
        for o in self.db.owners()? {
            let reports = self.db.owner_reports(o.id)?;
            let total = u64::try_from(o.total_stmts).unwrap_or(0);
            let covered = u64::try_from(o.covered_stmts).unwrap_or(0);
            let mut images = o.images.clone();
            if images.is_empty() {
                images = distinct(reports.iter().map(|r| r.labels.image.clone()));
            }
            out.push(OwnerRow {
                id: o.id.to_string(),
                pods: distinct(reports.iter().map(|r| r.labels.pod_name.clone())),
                hosts: distinct(reports.iter().map(|r| r.labels.hostname.clone())),
                containers: distinct(reports.iter().map(|r| r.labels.container_name.clone())),
                images,
                total_stmts: total,
                covered_stmts: covered,
                binary_key: format!("{}@{}", o.binary_name, o.meta_hash),
                input_hash: Some(o.merge_input_hash.clone()),
                source_url: o.source_url.clone(),
                source_commit: o.source_commit.clone(),
                module_path: Some(o.module_path.clone()).filter(|m| !m.is_empty()),
                namespace: o.namespace,
                owner_type: o.owner_type,
                owner: o.owner_name,
                binary: o.binary_name,
            });
        }
        Ok(out)
    }

    fn files(&self, row: &OwnerRow) -> Result<Vec<FileCoverage>, Error> {
        let id: i64 = row.id.parse().map_err(|_| Error::BadId(row.id.clone()))?;
        let (meta_id, blob): (i64, Vec<u8>) = self
            .db
            .connection()
            .query_row(
                "SELECT meta_id, counters FROM owners WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|source| self.sql(id, source))?;
        let layout = self.layout(id, meta_id)?;
        let counters =
            db::codec::decode_counters_for(&blob, layout.units.len()).map_err(|source| {
                Error::Corrupt {
                    path: self.db.path().display().to_string(),
                    owner: id,
                    what: "counters".into(),
                    source,
                }
            })?;
        let mut blocks: Vec<Vec<Block>> = vec![Vec::new(); layout.files.len()];
        for (u, &count) in layout.units.iter().zip(&counters) {
            if let Some(list) = blocks.get_mut(u.file as usize) {
                list.push(Block {
                    st_line: u.st_line,
                    st_col: u.st_col,
                    en_line: u.en_line,
                    en_col: u.en_col,
                    stmts: u.stmts,
                    count: u64::from(count),
                });
            }
        }
        Ok(layout
            .files
            .iter()
            .zip(blocks)
            .filter(|(f, b)| !f.injected && !b.is_empty())
            .map(|(f, mut b)| {
                b.sort_by_key(|b| (b.st_line, b.st_col, b.en_line, b.en_col));
                FileCoverage::from_blocks(f.path.clone(), b)
            })
            .collect())
    }
}
