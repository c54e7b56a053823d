//! The site's rows and files read from `coverage.db` (crate `db`).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use crate::cov::FuncCov;
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
    /// A binary's stored meta-data does not decode.
    #[error("{path}: owner {owner}: corrupt meta-data file {meta_id}: {why}")]
    CorruptMeta {
        path: String,
        owner: i64,
        meta_id: i64,
        why: String,
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
    metas: RefCell<HashMap<i64, Rc<covdata::MetaFile>>>,
    /// A phase's site: the owners that ran in it, with what they ran then.
    phase: Option<i64>,
}

impl DbSource {
    pub fn new(db: db::Database) -> DbSource {
        DbSource {
            db,
            layouts: RefCell::new(HashMap::new()),
            metas: RefCell::new(HashMap::new()),
            phase: None,
        }
    }

    /// The site of one phase (`db::Phase::id`): rows are the owners that ran
    /// during it, their numbers and blocks what they ran then.
    pub fn for_phase(db: db::Database, phase: i64) -> DbSource {
        DbSource {
            phase: Some(phase),
            ..DbSource::new(db)
        }
    }

    /// An owner's meta-data id and decoded counters (`units` of them).
    fn counters(
        &self,
        id: i64,
        units: impl FnOnce(i64) -> Result<usize, Error>,
    ) -> Result<(i64, Vec<u32>), Error> {
        let (meta_id, blob) = self.owner_blob(id)?;
        let n = units(meta_id)?;
        let counters =
            db::codec::decode_counters_for(&blob, n).map_err(|source| Error::Corrupt {
                path: self.db.path().display().to_string(),
                owner: id,
                what: "counters".into(),
                source,
            })?;
        Ok((meta_id, counters))
    }

    /// The decoded meta-data of a binary (functions and their units).
    fn meta(&self, owner: i64, meta_id: i64) -> Result<Rc<covdata::MetaFile>, Error> {
        if let Some(m) = self.metas.borrow().get(&meta_id) {
            return Ok(m.clone());
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
        let corrupt = |why: String| Error::CorruptMeta {
            path: self.db.path().display().to_string(),
            owner,
            meta_id,
            why,
        };
        let raw = db::codec::inflate(&data).map_err(|e| corrupt(e.to_string()))?;
        let meta = covdata::MetaFile::decode(&raw).map_err(|e| corrupt(e.to_string()))?;
        let meta = Rc::new(meta);
        let mut cache = self.metas.borrow_mut();
        if cache.len() >= 16 {
            cache.clear();
        }
        cache.insert(meta_id, meta.clone());
        Ok(meta)
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

    fn history_sql(&self, source: rusqlite::Error) -> Error {
        Error::Db(db::Error::Sqlite {
            path: self.db.path().to_path_buf(),
            source,
        })
    }

    /// An owner's meta-data id and stored counters: merged, or during the
    /// phase of a phase's site.
    fn owner_blob(&self, id: i64) -> Result<(i64, Vec<u8>), Error> {
        let conn = self.db.connection();
        let pick = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        match self.phase {
            None => conn.query_row(
                "SELECT meta_id, counters FROM owners WHERE id = ?1",
                [id],
                pick,
            ),
            Some(ph) => conn.query_row(
                "SELECT o.meta_id, p.counters FROM phase_owners p JOIN owners o ON o.id = p.owner_id \
                 WHERE p.owner_id = ?1 AND p.phase_id = ?2",
                [id, ph],
                pick,
            ),
        }
        .map_err(|source| self.sql(id, source))
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
        let in_phase: Option<HashMap<i64, db::PhaseOwner>> = match self.phase {
            Some(ph) => Some(
                self.db
                    .phase_owners(ph)?
                    .into_iter()
                    .map(|p| (p.owner_id, p))
                    .collect(),
            ),
            None => None,
        };
        for mut o in self.db.owners()? {
            if let Some(m) = &in_phase {
                let Some(p) = m.get(&o.id) else { continue };
                o.total_stmts = p.total_stmts;
                o.covered_stmts = p.covered_stmts;
                // Pages follow the phase's numbers (its counters change
                // only with its covered statements or the owner's inputs).
                o.merge_input_hash = format!(
                    "{}:phase{}:{}:{}",
                    o.merge_input_hash,
                    self.phase.unwrap_or(0),
                    p.covered_stmts,
                    p.report_count
                );
            }
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

    fn history(&self) -> Result<crate::history::History, Error> {
        let mut h = crate::history::History::default();
        if self.phase.is_some() {
            return Ok(h);
        }
        for ph in self.db.phases()? {
            let rows = self
                .db
                .phase_owners(ph.id)?
                .into_iter()
                .map(|o| {
                    (
                        o.owner_id.to_string(),
                        (
                            u64::try_from(o.total_stmts).unwrap_or(0),
                            u64::try_from(o.covered_stmts).unwrap_or(0),
                        ),
                    )
                })
                .collect();
            h.phases.push(crate::history::PhaseCoverage {
                name: ph.name,
                started_at: ph.started_at,
                ended_at: ph.ended_at,
                rows,
            });
        }
        let conn = self.db.connection();
        let mut st = conn
            .prepare(
                "SELECT substr(collected_at, 1, 16) AS m, count(*) FROM report_sources \
                 WHERE collected_at != '' GROUP BY m ORDER BY m",
            )
            .map_err(|source| self.history_sql(source))?;
        h.times = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|source| self.history_sql(source))?;
        Ok(h)
    }

    fn files(&self, row: &OwnerRow) -> Result<Vec<FileCoverage>, Error> {
        let id: i64 = row.id.parse().map_err(|_| Error::BadId(row.id.clone()))?;
        let mut layout = None;
        let (_, counters) = self.counters(id, |meta_id| {
            let l = self.layout(id, meta_id)?;
            let n = l.units.len();
            layout = Some(l);
            Ok(n)
        })?;
        let Some(layout) = layout else {
            return Ok(Vec::new());
        };
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

    fn functions(&self, row: &OwnerRow) -> Result<Vec<FuncCov>, Error> {
        let id: i64 = row.id.parse().map_err(|_| Error::BadId(row.id.clone()))?;
        let mut meta = None;
        let (_, counters) = self.counters(id, |meta_id| {
            let m = self.meta(id, meta_id)?;
            let n = m
                .packages
                .iter()
                .flat_map(|p| &p.funcs)
                .map(|f| f.units.len())
                .sum();
            meta = Some(m);
            Ok(n)
        })?;
        Ok(meta.map_or_else(Vec::new, |m| crate::cov::funcs_of(&m, &counters)))
    }
}
