//! The read API the renderer and exporters build on.
//!
//! A [`Database`] wraps one read-only SQLite connection (cheap to open; open
//! one per thread when rendering in parallel: it is `Send` but not `Sync`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::codec;
use crate::error::{Error, SqlCtx};
use crate::labels::Labels;
use crate::layout::{Layout, pct};
use crate::schema::{self, SCHEMA_VERSION};

/// One merged group: (namespace, owner type, owner, binary, meta hash).
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub id: i64,
    pub namespace: String,
    /// `Deployment`, `DaemonSet`, `StatefulSet`, `Job`, `CronJob`,
    /// `ReplicaSet`, `StaticPod`, `Pod`, `Host`, or a kind from ownerReferences.
    pub owner_type: String,
    pub owner_name: String,
    pub binary_name: String,
    /// Hex hash of the binary's meta-data file.
    pub meta_hash: String,
    /// `set`, `count` or `atomic`.
    pub mode: String,
    /// How replicas were merged: `max` or `sum`.
    pub merge: String,
    pub report_count: i64,
    /// Distinct pod/container (or host) instances merged.
    pub instance_count: i64,
    /// Distinct processes counted.
    pub process_count: i64,
    pub total_stmts: i64,
    pub covered_stmts: i64,
    pub coverage_pct: f64,
    pub file_count: i64,
    /// The Go module path of the binary's main module (from the meta-data).
    pub module_path: String,
    /// Container images of the merged reports (sorted, distinct).
    pub images: Vec<String>,
    pub source_url: Option<String>,
    pub source_commit: Option<String>,
    /// Changes whenever the owner's coverage could have changed (for caching pages).
    pub merge_input_hash: String,
    pub updated_at: String,
}

/// One report: the coverage of one binary (meta hash) in one collection entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub id: i64,
    /// The entry directory's name under `DIR/coverage/`.
    pub dir_name: String,
    /// `binary` (covmeta/covcounters) or `text` (a `mode:` text profile).
    pub format: String,
    pub meta_hash: String,
    /// Where the processes ran and where their source lives.
    pub labels: Labels,
    pub owner_type: String,
    pub owner_name: String,
    pub processes: i64,
    pub snapshots: i64,
    pub total_stmts: i64,
    pub covered_stmts: i64,
    pub coverage_pct: f64,
}

/// A Go text profile (`mode: …`, then one line per block in meta-data
/// order) of dense counters, the injected file left out.
pub(crate) fn profile_text(layout: &Layout, counters: &[u32]) -> String {
    let mut out = format!("mode: {}\n", layout.mode);
    for (u, c) in layout.units.iter().zip(counters) {
        let f = &layout.files[u.file as usize];
        if f.injected {
            continue;
        }
        out.push_str(&format!(
            "{}:{}.{},{}.{} {} {}\n",
            f.path, u.st_line, u.st_col, u.en_line, u.en_col, u.stmts, c
        ));
    }
    out
}

/// Statement coverage of one source file of an owner.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStat {
    /// As recorded by the compiler, normally `<import path>/<basename>`.
    pub file_path: String,
    pub package_path: String,
    pub total_stmts: i64,
    pub covered_stmts: i64,
    pub coverage_pct: f64,
}

impl FileStat {
    /// From `file_path, package_path, total_stmts, covered_stmts, coverage_pct`.
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileStat> {
        Ok(FileStat {
            file_path: r.get(0)?,
            package_path: r.get(1)?,
            total_stmts: r.get(2)?,
            covered_stmts: r.get(3)?,
            coverage_pct: r.get(4)?,
        })
    }
}

/// One coverable block (Go's unit) with its merged count: the shared
/// [`covdata::Block`].
pub use covdata::Block;

/// Coverage of one source line (only lines some block touches appear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCoverage {
    pub line: u32,
    /// Highest count of any block touching the line.
    pub count: u64,
    /// Blocks touching the line with a non-zero count.
    pub covered_blocks: u32,
    /// Blocks touching the line never executed.
    pub uncovered_blocks: u32,
}

impl LineCoverage {
    /// `hit`, `miss` or `partial`.
    pub fn status(&self) -> &'static str {
        match (self.covered_blocks, self.uncovered_blocks) {
            (_, 0) => "hit",
            (0, _) => "miss",
            _ => "partial",
        }
    }
}

/// Where an image's source lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    pub image: String,
    pub source_url: Option<String>,
    pub source_commit: Option<String>,
    /// `info.json`, `label`, …
    pub origin: String,
    pub error: Option<String>,
}

/// A read-only handle on `coverage.db`.
#[derive(Debug)]
pub struct Database {
    conn: Connection,
    path: PathBuf,
    layouts: RefCell<HashMap<i64, Rc<Layout>>>,
}

const OWNER_COLS: &str = "id, namespace, owner_type, owner_name, binary_name, meta_hash, mode, merge, \
     report_count, instance_count, process_count, total_stmts, covered_stmts, coverage_pct, file_count, \
     module_path, images, source_url, source_commit, merge_input_hash, updated_at";

const REPORT_COLS: &str = "r.id, r.dir_name, r.format, r.meta_hash, r.namespace, r.pod_name, \
     r.container_name, r.image, r.binary_name, r.hostname, r.host_process, r.collected_at, r.owner_type, \
     r.owner_name, r.source_url, r.source_commit, r.processes, r.snapshots, r.total_stmts, \
     r.covered_stmts, r.coverage_pct";

fn owner_from_row(r: &Row<'_>) -> rusqlite::Result<Owner> {
    let images: String = r.get(16)?;
    Ok(Owner {
        id: r.get(0)?,
        namespace: r.get(1)?,
        owner_type: r.get(2)?,
        owner_name: r.get(3)?,
        binary_name: r.get(4)?,
        meta_hash: r.get(5)?,
        mode: r.get(6)?,
        merge: r.get(7)?,
        report_count: r.get(8)?,
        instance_count: r.get(9)?,
        process_count: r.get(10)?,
        total_stmts: r.get(11)?,
        covered_stmts: r.get(12)?,
        coverage_pct: r.get(13)?,
        file_count: r.get(14)?,
        module_path: r.get(15)?,
        images: images
            .split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        source_url: r.get(17)?,
        source_commit: r.get(18)?,
        merge_input_hash: r.get(19)?,
        updated_at: r.get(20)?,
    })
}

fn report_from_row(r: &Row<'_>) -> rusqlite::Result<Report> {
    Ok(Report {
        id: r.get(0)?,
        dir_name: r.get(1)?,
        format: r.get(2)?,
        meta_hash: r.get(3)?,
        labels: Labels {
            namespace: r.get(4)?,
            pod_name: r.get(5)?,
            container_name: r.get(6)?,
            image: r.get(7)?,
            binary_name: r.get(8)?,
            hostname: r.get(9)?,
            host_process: r.get(10)?,
            collected_at: r.get(11)?,
            source_url: r.get(14)?,
            source_commit: r.get(15)?,
        },
        owner_type: r.get(12)?,
        owner_name: r.get(13)?,
        processes: r.get(16)?,
        snapshots: r.get(17)?,
        total_stmts: r.get(18)?,
        covered_stmts: r.get(19)?,
        coverage_pct: r.get(20)?,
    })
}

/// `path` as the path part of an SQLite `file:` URI (absolute, with `?`,
/// `#` and `%` escaped).
fn uri_path(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for b in abs.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' | 0x80.. => out.push_str(&format!("%{b:02X}")),
            _ => out.push(*b as char),
        }
    }
    out
}

impl Database {
    /// Opens `path` read-only and checks its schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Database, Error> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(Error::NotCovfleet {
                path,
                why: "no such file".into(),
            });
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db(&path)?;
        // A WAL database needs its -shm file, which a reader cannot create
        // on a read-only mount (or in another user's directory): read it as
        // an immutable file then (no compile can be running on such a mount).
        let conn = match schema::pragmas(&conn, &path)
            .and_then(|()| schema::stored_version(&conn, &path))
        {
            Ok(_) => conn,
            Err(first) => {
                drop(conn);
                let uri = format!("file:{}?immutable=1", uri_path(&path));
                let ro = Connection::open_with_flags(
                    &uri,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )
                .db(&path);
                match ro {
                    Ok(c) if schema::pragmas(&c, &path).is_ok() => c,
                    _ => return Err(first),
                }
            }
        };
        match schema::stored_version(&conn, &path)? {
            Some(SCHEMA_VERSION) => {}
            Some(v) if v > SCHEMA_VERSION => {
                return Err(Error::SchemaTooNew {
                    path,
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) => {
                return Err(Error::NotCovfleet {
                    path,
                    why: format!("schema version {v}"),
                });
            }
            None => {
                return Err(Error::NotCovfleet {
                    path,
                    why: "no schema_version table".into(),
                });
            }
        }
        Ok(Database {
            conn,
            path,
            layouts: RefCell::new(HashMap::new()),
        })
    }

    /// Opens `DIR/coverage.db`.
    pub fn open_collection(dir: impl AsRef<Path>) -> Result<Database, Error> {
        Self::open(dir.as_ref().join(crate::DB_FILE))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for queries this API does not offer.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// All owners, ordered by namespace, owner type, owner name, binary.
    pub fn owners(&self) -> Result<Vec<Owner>, Error> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {OWNER_COLS} FROM owners ORDER BY namespace, owner_type, owner_name, binary_name, meta_hash"
            ))
            .db(&self.path)?;
        let rows = st.query_map([], owner_from_row).db(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().db(&self.path)
    }

    /// One owner by id.
    pub fn owner(&self, id: i64) -> Result<Option<Owner>, Error> {
        self.conn
            .query_row(
                &format!("SELECT {OWNER_COLS} FROM owners WHERE id = ?1"),
                [id],
                owner_from_row,
            )
            .optional()
            .db(&self.path)
    }

    /// The reports merged into an owner (pods, hosts, images), by pod and time.
    pub fn owner_reports(&self, owner_id: i64) -> Result<Vec<Report>, Error> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {REPORT_COLS} FROM owner_reports o JOIN report_sources r ON r.id = o.report_id \
                 WHERE o.owner_id = ?1 ORDER BY r.hostname, r.pod_name, r.container_name, r.collected_at, r.dir_name"
            ))
            .db(&self.path)?;
        let rows = st.query_map([owner_id], report_from_row).db(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().db(&self.path)
    }

    /// All reports, by entry directory.
    pub fn reports(&self) -> Result<Vec<Report>, Error> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {REPORT_COLS} FROM report_sources r ORDER BY r.dir_name, r.meta_hash"
            ))
            .db(&self.path)?;
        let rows = st.query_map([], report_from_row).db(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().db(&self.path)
    }

    /// Per-file statement coverage of an owner (injected file excluded), by path.
    pub fn owner_file_stats(&self, owner_id: i64) -> Result<Vec<FileStat>, Error> {
        let mut st = self
            .conn
            .prepare(
                "SELECT file_path, package_path, total_stmts, covered_stmts, coverage_pct \
                 FROM owner_file_stats WHERE owner_id = ?1 ORDER BY file_path",
            )
            .db(&self.path)?;
        let rows = st
            .query_map([owner_id], FileStat::from_row)
            .db(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().db(&self.path)
    }

    /// Distinct (source URL, commit) pairs the database knows, from image
    /// labels, owners and reports (`info.json`); the commit is empty when
    /// unknown.
    pub fn source_repositories(&self) -> Result<Vec<(String, String)>, Error> {
        let p = self.path.as_path();
        let mut pairs = std::collections::BTreeSet::new();
        for table in ["image_sources", "owners", "report_sources"] {
            let sql = format!(
                "SELECT source_url, coalesce(source_commit, '') FROM {table} \
                 WHERE source_url IS NOT NULL AND source_url <> ''"
            );
            let mut st = self.conn.prepare(&sql).db(p)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .db(p)?;
            for r in rows {
                pairs.insert(r.db(p)?);
            }
        }
        Ok(pairs.into_iter().collect())
    }

    /// Image → source repository and commit.
    pub fn image_sources(&self) -> Result<Vec<ImageSource>, Error> {
        let mut st = self
            .conn
            .prepare("SELECT image, source_url, source_commit, origin, error FROM image_sources ORDER BY image")
            .db(&self.path)?;
        let rows = st
            .query_map([], |r| {
                Ok(ImageSource {
                    image: r.get(0)?,
                    source_url: r.get(1)?,
                    source_commit: r.get(2)?,
                    origin: r.get(3)?,
                    error: r.get(4)?,
                })
            })
            .db(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().db(&self.path)
    }

    /// An owner's meta-data file id and its stored (encoded) merged counters.
    fn owner_meta_and_counters(&self, owner_id: i64) -> Result<(i64, Vec<u8>), Error> {
        self.conn
            .query_row(
                "SELECT meta_id, counters FROM owners WHERE id = ?1",
                [owner_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .db(&self.path)?
            .ok_or(Error::NoOwner(owner_id))
    }

    /// The flattened meta-data of an owner's binary, and its merged counters.
    fn owner_data(&self, owner_id: i64) -> Result<(Rc<Layout>, Vec<u32>), Error> {
        let (meta_id, blob) = self.owner_meta_and_counters(owner_id)?;
        let layout = self.layout(meta_id)?;
        let counters =
            codec::decode_counters_for(&blob, layout.len()).map_err(|source| Error::Corrupt {
                path: self.path.clone(),
                what: format!("counters of owner {owner_id}"),
                source,
            })?;
        Ok((layout, counters))
    }

    /// The decoded meta-data file of an owner's binary and its merged
    /// counters, dense in meta-data order (package, function, unit): the
    /// function names and block positions behind [`Database::file_blocks`].
    pub fn owner_meta(&self, owner_id: i64) -> Result<(covdata::MetaFile, Vec<u32>), Error> {
        let (meta_id, blob) = self.owner_meta_and_counters(owner_id)?;
        let data: Vec<u8> = self
            .conn
            .query_row(
                "SELECT data FROM meta_files WHERE id = ?1",
                [meta_id],
                |r| r.get(0),
            )
            .db(&self.path)?;
        let corrupt = |what: String, source| Error::Corrupt {
            path: self.path.clone(),
            what,
            source,
        };
        let meta = codec::inflate(&data)
            .and_then(|raw| {
                covdata::MetaFile::decode(&raw).map_err(|e| codec::BlobError::Meta(Box::new(e)))
            })
            .map_err(|e| corrupt(format!("meta-data file {meta_id}"), e))?;
        let units: usize = meta
            .packages
            .iter()
            .flat_map(|p| &p.funcs)
            .map(|f| f.units.len())
            .sum();
        let counters = codec::decode_counters_for(&blob, units)
            .map_err(|e| corrupt(format!("counters of owner {owner_id}"), e))?;
        Ok((meta, counters))
    }

    fn layout(&self, meta_id: i64) -> Result<Rc<Layout>, Error> {
        if let Some(l) = self.layouts.borrow().get(&meta_id) {
            return Ok(l.clone());
        }
        let data: Vec<u8> = self
            .conn
            .query_row(
                "SELECT data FROM meta_files WHERE id = ?1",
                [meta_id],
                |r| r.get(0),
            )
            .db(&self.path)?;
        let l = Rc::new(crate::compile::layout_from_stored(&data).map_err(|source| {
            Error::Corrupt {
                path: self.path.clone(),
                what: format!("meta-data file {meta_id}"),
                source,
            }
        })?);
        self.layouts.borrow_mut().insert(meta_id, l.clone());
        Ok(l)
    }

    /// The blocks of one file of an owner, in source order, with merged counts.
    pub fn file_blocks(&self, owner_id: i64, file_path: &str) -> Result<Vec<Block>, Error> {
        let (layout, counters) = self.owner_data(owner_id)?;
        let Some(fi) = layout.files.iter().position(|f| f.path == file_path) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Block> = layout
            .units
            .iter()
            .zip(&counters)
            .filter(|(u, _)| u.file as usize == fi)
            .map(|(u, &count)| Block {
                st_line: u.st_line,
                st_col: u.st_col,
                en_line: u.en_line,
                en_col: u.en_col,
                stmts: u.stmts,
                count: u64::from(count),
            })
            .collect();
        out.sort_by_key(|b| (b.st_line, b.st_col, b.en_line, b.en_col));
        Ok(out)
    }

    /// Per-line coverage of one file of an owner, by line.
    pub fn line_coverage(
        &self,
        owner_id: i64,
        file_path: &str,
    ) -> Result<Vec<LineCoverage>, Error> {
        Ok(lines_of(&self.file_blocks(owner_id, file_path)?))
    }

    /// The owner's merged coverage as a Go text profile (`mode: …` then one
    /// line per block, files in meta-data order), injected file left out.
    /// `go tool cover -func/-html` read it.
    pub fn owner_profile(&self, owner_id: i64) -> Result<String, Error> {
        let (layout, counters) = self.owner_data(owner_id)?;
        Ok(profile_text(&layout, &counters))
    }

    /// Recomputes an owner's statement totals from its stored counters
    /// (a consistency check; equals the stored `total_stmts`/`covered_stmts`).
    pub fn recount(&self, owner_id: i64) -> Result<(u64, u64, f64), Error> {
        let (layout, counters) = self.owner_data(owner_id)?;
        let (t, c) = layout.stmt_totals(&counters);
        Ok((t, c, pct(c, t)))
    }

    /// Number of owners whose coverage is waiting to be recomputed (non-zero
    /// only after an interrupted compile).
    pub fn pending_groups(&self) -> Result<i64, Error> {
        self.conn
            .query_row("SELECT count(*) FROM dirty_groups", params![], |r| r.get(0))
            .db(&self.path)
    }
}

/// Folds blocks into per-line coverage.
pub fn lines_of(blocks: &[Block]) -> Vec<LineCoverage> {
    let mut map: std::collections::BTreeMap<u32, LineCoverage> = Default::default();
    for b in blocks {
        for line in b.st_line..=b.en_line.max(b.st_line) {
            let e = map.entry(line).or_insert(LineCoverage {
                line,
                count: 0,
                covered_blocks: 0,
                uncovered_blocks: 0,
            });
            e.count = e.count.max(b.count);
            if b.count > 0 {
                e.covered_blocks += 1;
            } else {
                e.uncovered_blocks += 1;
            }
        }
    }
    map.into_values().collect()
}
