//! `covfleet compile`: the collection directory → `coverage.db`.
//!
//! Phases, each crash-safe (every write is a transaction; the work left is
//! recorded in the database itself, so a killed run is finished by the next):
//!
//! 1. list `DIR/coverage/*` and fingerprint each entry (names, sizes and
//!    modification times of its files; no file contents are read);
//! 2. drop entries that disappeared, marking their owner groups dirty;
//! 3. decode new, changed and `--update`-selected entries on all cores, one
//!    writer committing them in batches, each entry's rows atomically with
//!    its fingerprint and the dirty marks of the groups it touches;
//! 4. recompute the dirty owner groups (merge, statistics) in parallel,
//!    each batch committed together with the removal of its dirty marks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use covdata::MetaFile;
use covdata::hash::{Fnv128, HashWriter};
use globset::{Glob, GlobMatcher};
use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::codec;
use crate::entry::{self, EntryResult, MetaCache};
use crate::error::{Error, SqlCtx};
use crate::inspect::ImageInspector;
use crate::labels::Labels;
use crate::layout::{Layout, pct};
use crate::merge::{self, ReplicaMerge};
use crate::schema::{self, PIPELINE_VERSION};

/// A field `--update` can select entries by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateField {
    Namespace,
    Node,
    Container,
    Image,
    Pod,
    Binary,
}

/// One `--update FIELD=GLOB` (or `*`: everything).
#[derive(Debug, Clone)]
pub struct UpdateFilter {
    pub field: Option<UpdateField>,
    pub glob: GlobMatcher,
}

/// Why an `--update` filter does not parse; each names the filter.
#[derive(Debug, thiserror::Error)]
pub enum UpdateFilterError {
    /// Neither `FIELD=GLOB` nor `*`.
    #[error(
        "{filter:?}: expected FIELD=GLOB (FIELD: namespace, node, container, image, pod, binary) or '*'"
    )]
    Syntax { filter: String },
    /// FIELD is none of the known ones.
    #[error(
        "{filter:?}: unknown field {field:?} (expected namespace, node, container, image, pod or binary)"
    )]
    Field { filter: String, field: String },
    /// GLOB is not a valid glob.
    #[error("{filter:?}")]
    Glob {
        filter: String,
        #[source]
        source: globset::Error,
    },
}

impl UpdateFilter {
    /// Parses `FIELD=GLOB` or `*`.
    pub fn parse(s: &str) -> Result<UpdateFilter, UpdateFilterError> {
        let glob = |g: &str| {
            Glob::new(g.trim())
                .map(|g| g.compile_matcher())
                .map_err(|source| UpdateFilterError::Glob {
                    filter: s.to_string(),
                    source,
                })
        };
        if s.trim() == "*" {
            return Ok(UpdateFilter {
                field: None,
                glob: glob("*")?,
            });
        }
        let (f, g) = s.split_once('=').ok_or_else(|| UpdateFilterError::Syntax {
            filter: s.to_string(),
        })?;
        let field = match f.trim() {
            "namespace" | "ns" => UpdateField::Namespace,
            "node" | "hostname" | "host" => UpdateField::Node,
            "container" => UpdateField::Container,
            "image" => UpdateField::Image,
            "pod" => UpdateField::Pod,
            "binary" => UpdateField::Binary,
            other => {
                return Err(UpdateFilterError::Field {
                    filter: s.to_string(),
                    field: other.to_string(),
                });
            }
        };
        Ok(UpdateFilter {
            field: Some(field),
            glob: glob(g)?,
        })
    }

    fn matches(&self, i: &Labels) -> bool {
        let v = match self.field {
            None => return true,
            Some(UpdateField::Namespace) => &i.namespace,
            Some(UpdateField::Node) => &i.hostname,
            Some(UpdateField::Container) => &i.container_name,
            Some(UpdateField::Image) => &i.image,
            Some(UpdateField::Pod) => &i.pod_name,
            Some(UpdateField::Binary) => &i.binary_name,
        };
        self.glob.is_match(v)
    }
}

/// What compile should do.
#[derive(Clone)]
pub struct CompileOptions {
    /// The collection directory (holds `coverage/`; gets `coverage.db`).
    pub collection: PathBuf,
    /// How replicas of one owner merge.
    pub merge: ReplicaMerge,
    /// Entries to recompute although unchanged (all must match).
    pub updates: Vec<UpdateFilter>,
    /// Entries per write transaction.
    pub batch: usize,
    /// Look up source labels of images without `info.json` sources.
    pub inspect_images: Option<Arc<dyn ImageInspector>>,
    /// Told (entries done, entries to compute) as entries are written.
    pub progress: Option<ProgressFn>,
}

/// A progress callback: `(done, total)` entries of this run's work.
#[derive(Clone)]
pub struct ProgressFn(pub std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

impl std::fmt::Debug for CompileOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileOptions")
            .field("collection", &self.collection)
            .field("merge", &self.merge)
            .field("updates", &self.updates)
            .field("batch", &self.batch)
            .field("inspect_images", &self.inspect_images.is_some())
            .field("progress", &self.progress)
            .finish()
    }
}

impl CompileOptions {
    pub fn new(collection: impl Into<PathBuf>) -> Self {
        CompileOptions {
            collection: collection.into(),
            merge: ReplicaMerge::Max,
            updates: Vec::new(),
            batch: 64,
            inspect_images: None,
            progress: None,
        }
    }
}

/// What a compile run did (`compile --json` prints it, without the error
/// and warning texts).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompileSummary {
    pub entries: usize,
    pub compiled: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub failed: usize,
    pub reports_written: usize,
    pub owners_recomputed: usize,
    pub owners_deleted: usize,
    /// Phases recorded (from the collection's `marks.json`).
    pub phases: usize,
    #[serde(rename = "owners")]
    pub owners_total: usize,
    /// Images looked up in registries in this run, and how many failed.
    pub images_inspected: usize,
    pub images_failed: usize,
    /// (entry, message) for entries that yielded no coverage.
    #[serde(skip)]
    pub errors: Vec<(String, String)>,
    /// Non-fatal problems (ignored files, bad JSON…).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The database file name inside a collection.
pub const DB_FILE: &str = "coverage.db";

/// Decodes a stored (zlib-compressed) meta-data file into its layout.
pub fn layout_from_stored(data: &[u8]) -> Result<Layout, codec::BlobError> {
    let raw = codec::inflate(data)?;
    let m = MetaFile::decode(&raw).map_err(|e| codec::BlobError::Meta(Box::new(e)))?;
    Ok(Layout::new(&m))
}

/// The lock file one compile holds on a collection (it records its PID).
pub const LOCK_FILE: &str = ".coverage.db.lock";

/// Takes the collection's compile lock (released when the file is dropped,
/// also when the process dies); another compile gets [`Error::Locked`].
fn lock_collection(collection: &Path) -> Result<std::fs::File, Error> {
    use std::io::{Read, Seek, Write};
    let path = collection.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0)?;
            f.rewind()?;
            write!(f, "{}", std::process::id())?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            Err(Error::Locked {
                path: collection.to_path_buf(),
                pid: text.trim().parse().ok(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Runs compile: the phases listed at the top of this module, each a step
/// below.
pub fn compile(opts: &CompileOptions) -> Result<CompileSummary, Error> {
    let cov = opts.collection.join("coverage");
    if !cov.is_dir() {
        return Err(Error::Collection {
            path: opts.collection.clone(),
            why: format!("{} is not a directory", cov.display()),
        });
    }
    let _lock = lock_collection(&opts.collection)?;
    let db_path = opts.collection.join(DB_FILE);
    let mut conn = Connection::open(&db_path).db(&db_path)?;
    schema::ensure_writable(&conn, &db_path)?;
    let p = db_path.as_path();
    let mut summary = CompileSummary::default();

    dirty_all_on_new_settings(&mut conn, opts.merge, p)?;
    let dirs = list_entries(&cov)?;
    summary.entries = dirs.len();
    let known = Known::load(&conn, p)?;
    drop_removed_entries(&mut conn, &dirs, &known, p, &mut summary)?;
    let todo = entries_to_compile(&conn, opts, &dirs, &known, p, &mut summary)?;
    if !todo.is_empty() {
        compile_entries(&mut conn, opts, &todo, p, &mut summary)?;
    }
    if let Some(inspector) = &opts.inspect_images {
        inspect_images(&mut conn, inspector.as_ref(), p, &mut summary)?;
    }
    let owners_before = summary.owners_recomputed + summary.owners_deleted;
    recompute_owners(&mut conn, opts.merge, p, &mut summary)?;
    let changed = summary.compiled > 0
        || summary.removed > 0
        || summary.owners_recomputed + summary.owners_deleted > owners_before;
    crate::phases::recompute(
        &mut conn,
        &opts.collection,
        opts.merge,
        changed,
        p,
        &mut summary,
    )?;
    summary.owners_total = conn
        .query_row("SELECT count(*) FROM owners", [], |r| r.get::<_, i64>(0))
        .db(p)? as usize;
    Ok(summary)
}

/// Settings that change every owner (the merge mode, the pipeline version):
/// when they differ from the stored ones, marks all groups dirty and stores
/// the new ones, atomically.
fn dirty_all_on_new_settings(
    conn: &mut Connection,
    merge: ReplicaMerge,
    p: &Path,
) -> Result<(), Error> {
    let tx = conn.transaction().db(p)?;
    let get = |k: &str| -> Result<Option<String>, Error> {
        tx.query_row("SELECT value FROM settings WHERE key = ?1", [k], |r| {
            r.get(0)
        })
        .optional()
        .db(p)
    };
    if get("merge")?.as_deref() != Some(merge.as_str())
        || get("pipeline")?.as_deref() != Some(PIPELINE_VERSION)
    {
        tx.execute(
            "INSERT OR IGNORE INTO dirty_groups SELECT namespace, owner_type, owner_name, binary_name, meta_hash FROM report_sources",
            [],
        )
        .db(p)?;
        tx.execute(
            "INSERT OR IGNORE INTO dirty_groups SELECT namespace, owner_type, owner_name, binary_name, meta_hash FROM owners",
            [],
        )
        .db(p)?;
        tx.execute(
            "INSERT OR REPLACE INTO settings VALUES ('merge', ?1)",
            [merge.as_str()],
        )
        .db(p)?;
        tx.execute(
            "INSERT OR REPLACE INTO settings VALUES ('pipeline', ?1)",
            [PIPELINE_VERSION],
        )
        .db(p)?;
    }
    tx.commit().db(p)
}

/// Phase 1a: the entry directories under `coverage/`, sorted by name.
fn list_entries(cov: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for e in fs_err::read_dir(cov)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            dirs.push((e.file_name().to_string_lossy().into_owned(), e.path()));
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// What the database remembers of the entries compiled before.
struct Known {
    /// Entry name → fingerprint.
    fingerprints: HashMap<String, String>,
    /// Entry name → error, for entries that failed.
    errors: HashMap<String, String>,
}

impl Known {
    fn load(conn: &Connection, p: &Path) -> Result<Known, Error> {
        let pairs = |sql: &str| -> Result<HashMap<String, String>, Error> {
            let mut st = conn.prepare(sql).db(p)?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .db(p)?
                .collect::<Result<_, _>>()
                .db(p)
        };
        Ok(Known {
            fingerprints: pairs("SELECT dir_name, fingerprint FROM entries")?,
            errors: pairs(
                "SELECT dir_name, coalesce(error, '') FROM entries WHERE status = 'error'",
            )?,
        })
    }
}

/// Phase 2: entries that disappeared are deleted and their groups marked dirty.
fn drop_removed_entries(
    conn: &mut Connection,
    dirs: &[(String, PathBuf)],
    known: &Known,
    p: &Path,
    summary: &mut CompileSummary,
) -> Result<(), Error> {
    let present: BTreeSet<&str> = dirs.iter().map(|(n, _)| n.as_str()).collect();
    let removed: Vec<&String> = known
        .fingerprints
        .keys()
        .filter(|k| !present.contains(k.as_str()))
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction().db(p)?;
    for d in &removed {
        mark_dirty_for_dir(&tx, d, p)?;
        tx.execute("DELETE FROM entries WHERE dir_name = ?1", [d.as_str()])
            .db(p)?;
    }
    tx.commit().db(p)?;
    summary.removed = removed.len();
    Ok(())
}

/// One entry to decode: (name, directory, fingerprint).
type Todo = (String, PathBuf, String);

/// Phase 1b and 3a: fingerprints every entry (in parallel) and returns the
/// new, changed and `--update`-selected ones; unchanged entries that failed
/// before are reported failed again.
fn entries_to_compile(
    conn: &Connection,
    opts: &CompileOptions,
    dirs: &[(String, PathBuf)],
    known: &Known,
    p: &Path,
    summary: &mut CompileSummary,
) -> Result<Vec<Todo>, Error> {
    let fps: Vec<std::io::Result<String>> = dirs
        .par_iter()
        .map(|(_, d)| entry::fingerprint(d))
        .collect();
    let mut todo = Vec::new();
    for ((name, path), fp) in dirs.iter().zip(fps) {
        let fp = match fp {
            Ok(f) => f,
            Err(e) => {
                summary.failed += 1;
                summary.errors.push((name.clone(), e.to_string()));
                continue;
            }
        };
        let changed = known.fingerprints.get(name) != Some(&fp);
        let forced = !opts.updates.is_empty() && !changed && {
            let mut w = Vec::new();
            let mut info = entry::read_info(path, &mut w);
            if info.labels.binary_name.is_empty() {
                info.labels.binary_name = stored_binary(conn, name, p)?.unwrap_or_default();
            }
            opts.updates.iter().all(|u| u.matches(&info.labels))
        };
        if changed || forced {
            todo.push((name.clone(), path.clone(), fp));
        } else {
            summary.unchanged += 1;
            // Still broken: keep saying so (and exit 1) until it is fixed.
            if let Some(e) = known.errors.get(name) {
                summary.failed += 1;
                summary.errors.push((
                    name.clone(),
                    format!("{e} (unchanged since the last compile)"),
                ));
            }
        }
    }
    Ok(todo)
}

/// Phase 3b: decodes the entries on all cores while this thread writes
/// them in batches (each batch one transaction, at most every two seconds).
fn compile_entries(
    conn: &mut Connection,
    opts: &CompileOptions,
    todo: &[Todo],
    p: &Path,
    summary: &mut CompileSummary,
) -> Result<(), Error> {
    let cache = MetaCache::default();
    let mut meta_ids: HashMap<String, i64> = {
        let mut st = conn.prepare("SELECT hash, id FROM meta_files").db(p)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)?
    };
    let (tx_res, rx_res) = std::sync::mpsc::sync_channel::<EntryResult>(opts.batch.max(1) * 2);
    std::thread::scope(|scope| {
        let cache = &cache;
        scope.spawn(move || {
            todo.par_iter()
                .for_each_with(tx_res, |tx, (name, path, fp)| {
                    let _ = tx.send(entry::process(path, name, fp.clone(), cache));
                });
        });
        let mut pending: Vec<EntryResult> = Vec::new();
        let mut last = Instant::now();
        let mut flush =
            |pending: &mut Vec<EntryResult>, conn: &mut Connection, s: &mut CompileSummary| {
                if pending.is_empty() {
                    return Ok(());
                }
                let tx = conn.transaction().db(p)?;
                for r in pending.drain(..) {
                    write_entry(&tx, &r, &mut meta_ids, p, s)?;
                }
                tx.commit().db(p)
            };
        let total = todo.len();
        let mut done = 0usize;
        if let Some(f) = &opts.progress {
            (f.0)(0, total);
        }
        for r in rx_res {
            pending.push(r);
            done += 1;
            if let Some(f) = &opts.progress {
                (f.0)(done, total);
            }
            if pending.len() >= opts.batch || last.elapsed() > Duration::from_secs(2) {
                flush(&mut pending, conn, summary)?;
                last = Instant::now();
            }
        }
        flush(&mut pending, conn, summary)
    })
}

/// Looks up images that have no source yet (and failures older than an
/// hour); stores what was found, and marks the owners of images that gained
/// a source for recomputation.
fn inspect_images(
    conn: &mut Connection,
    inspector: &dyn ImageInspector,
    p: &Path,
    s: &mut CompileSummary,
) -> Result<(), Error> {
    let cutoff = rfc3339_at(unix_now() - 3600);
    let images: Vec<String> = {
        let mut st = conn
            .prepare(
                "SELECT DISTINCT image FROM report_sources WHERE image <> '' AND image NOT IN \
                 (SELECT image FROM image_sources WHERE error IS NULL OR inspected_at > ?1) ORDER BY image",
            )
            .db(p)?;
        st.query_map([&cutoff], |r| r.get(0))
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)?
    };
    if images.is_empty() {
        return Ok(());
    }
    let results = inspector.inspect(&images);
    let now = now_rfc3339();
    let tx = conn.transaction().db(p)?;
    for (image, r) in images.iter().zip(results) {
        s.images_inspected += 1;
        match r {
            Ok(l) => {
                tx.execute(
                    "INSERT INTO image_sources (image, source_url, source_commit, origin, error, inspected_at) \
                     VALUES (?1, ?2, ?3, ?4, NULL, ?5) ON CONFLICT(image) DO UPDATE SET \
                     source_url = excluded.source_url, source_commit = excluded.source_commit, \
                     origin = excluded.origin, error = NULL, inspected_at = excluded.inspected_at",
                    params![image, l.source_url, l.source_commit, l.origin, now],
                )
                .db(p)?;
                if l.source_url.is_some() || l.source_commit.is_some() {
                    tx.execute(
                        "INSERT OR IGNORE INTO dirty_groups SELECT namespace, owner_type, owner_name, binary_name, \
                         meta_hash FROM report_sources WHERE image = ?1",
                        [image],
                    )
                    .db(p)?;
                }
            }
            Err(e) => {
                s.images_failed += 1;
                let e = crate::error::chain(e.as_ref());
                s.warnings.push(format!("no source labels: {e}"));
                tx.execute(
                    "INSERT INTO image_sources (image, source_url, source_commit, origin, error, inspected_at) \
                     VALUES (?1, NULL, NULL, 'label', ?2, ?3) ON CONFLICT(image) DO UPDATE SET \
                     error = excluded.error, inspected_at = excluded.inspected_at",
                    params![image, e, now],
                )
                .db(p)?;
            }
        }
    }
    tx.commit().db(p)
}

fn stored_binary(conn: &Connection, dir: &str, p: &Path) -> Result<Option<String>, Error> {
    conn.query_row(
        "SELECT binary_name FROM report_sources WHERE dir_name = ?1 LIMIT 1",
        [dir],
        |r| r.get(0),
    )
    .optional()
    .db(p)
}

fn mark_dirty_for_dir(tx: &Transaction<'_>, dir: &str, p: &Path) -> Result<(), Error> {
    tx.execute(
        "INSERT OR IGNORE INTO dirty_groups SELECT namespace, owner_type, owner_name, binary_name, meta_hash \
         FROM report_sources WHERE dir_name = ?1",
        [dir],
    )
    .db(p)?;
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// UTC now as RFC 3339 (seconds).
pub(crate) fn now_rfc3339() -> String {
    rfc3339_at(unix_now())
}

fn rfc3339_at(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn write_entry(
    tx: &Transaction<'_>,
    r: &EntryResult,
    meta_ids: &mut HashMap<String, i64>,
    p: &Path,
    s: &mut CompileSummary,
) -> Result<(), Error> {
    let now = now_rfc3339();
    mark_dirty_for_dir(tx, &r.dir_name, p)?;
    tx.execute("DELETE FROM entries WHERE dir_name = ?1", [&r.dir_name])
        .db(p)?;
    let status = if r.error.is_some() { "error" } else { "ok" };
    tx.execute(
        "INSERT INTO entries (dir_name, fingerprint, status, error, compiled_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![r.dir_name, r.fingerprint, status, r.error, now],
    )
    .db(p)?;
    s.compiled += 1;
    if let Some(e) = &r.error {
        s.failed += 1;
        s.errors.push((r.dir_name.clone(), e.clone()));
    }
    s.warnings.extend(r.warnings.iter().cloned());
    for rep in &r.reports {
        let i = rep.info.as_ref().unwrap_or(&r.info);
        let lab = &i.labels;
        let owner = i.owner.clone().unwrap_or_default_owner();
        let hex = covdata::hex(&rep.meta.hash);
        let meta_id = match meta_ids.get(&hex) {
            Some(id) => *id,
            None => {
                let l = &rep.meta.layout;
                tx.execute(
                    "INSERT OR IGNORE INTO meta_files (hash, mode, origin, num_units, total_stmts, module_path, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        hex,
                        l.mode.as_str(),
                        rep.meta.origin,
                        l.len() as i64,
                        l.total_stmts() as i64,
                        l.module_path,
                        codec::deflate(&rep.meta.raw)
                    ],
                )
                .db(p)?;
                let id: i64 = tx
                    .query_row("SELECT id FROM meta_files WHERE hash = ?1", [&hex], |r| {
                        r.get(0)
                    })
                    .db(p)?;
                meta_ids.insert(hex.clone(), id);
                id
            }
        };
        let snapshots: u32 = rep.processes.iter().map(|p| p.snapshots).sum();
        tx.execute(
            "INSERT INTO report_sources (dir_name, meta_id, meta_hash, format, namespace, pod_name, container_name, \
             image, binary_name, hostname, host_process, collected_at, owner_type, owner_name, instance, process_tag, source_url, \
             source_commit, processes, snapshots, total_stmts, covered_stmts, coverage_pct, input_hash) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24)",
            params![
                r.dir_name,
                meta_id,
                hex,
                rep.format,
                lab.namespace,
                lab.pod_name,
                lab.container_name,
                lab.image,
                lab.binary_name,
                lab.hostname,
                lab.host_process,
                lab.collected_at,
                owner.kind,
                owner.name,
                i.instance,
                i.process_tag,
                lab.source_url,
                lab.source_commit,
                rep.processes.len() as i64,
                i64::from(snapshots),
                rep.total_stmts as i64,
                rep.covered_stmts as i64,
                pct(rep.covered_stmts, rep.total_stmts),
                r.fingerprint
            ],
        )
        .db(p)?;
        let rid = tx.last_insert_rowid();
        for pr in &rep.processes {
            tx.execute(
                "INSERT INTO report_processes (report_id, pid, seq, snapshots, counters) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![rid, pr.pid, pr.seq, pr.snapshots, codec::encode_counters(&pr.counters)],
            )
            .db(p)?;
        }
        crate::phases::write_report_marks(tx, rid, i, &rep.marks, p)?;
        tx.execute(
            "INSERT OR IGNORE INTO dirty_groups VALUES (?1, ?2, ?3, ?4, ?5)",
            params![lab.namespace, owner.kind, owner.name, lab.binary_name, hex],
        )
        .db(p)?;
        s.reports_written += 1;
    }
    let i = &r.info.labels;
    if !i.image.is_empty() && (i.source_url.is_some() || i.source_commit.is_some()) {
        tx.execute(
            "INSERT INTO image_sources (image, source_url, source_commit, origin, error, inspected_at) \
             VALUES (?1, ?2, ?3, 'info.json', NULL, ?4) \
             ON CONFLICT(image) DO UPDATE SET source_url = excluded.source_url, \
             source_commit = excluded.source_commit, origin = excluded.origin, error = NULL, \
             inspected_at = excluded.inspected_at",
            params![i.image, i.source_url, i.source_commit, now],
        )
        .db(p)?;
    }
    Ok(())
}

trait OwnerDefault {
    fn unwrap_or_default_owner(self) -> crate::owner::OwnerRef;
}

impl OwnerDefault for Option<crate::owner::OwnerRef> {
    fn unwrap_or_default_owner(self) -> crate::owner::OwnerRef {
        self.unwrap_or(crate::owner::OwnerRef {
            kind: "Pod".into(),
            name: String::new(),
        })
    }
}

type GroupKey = (String, String, String, String, String);
/// A dense counter vector and the number of snapshots folded into it.
type Snapshot = (Vec<u32>, u32);

struct MemberReport {
    id: i64,
    dir_name: String,
    instance: String,
    process_tag: String,
    image: String,
    source_url: Option<String>,
    source_commit: Option<String>,
    input_hash: String,
    meta_id: i64,
    /// (pid, compressed counters)
    processes: Vec<(i64, Vec<u8>)>,
}

struct OwnerRow {
    key: GroupKey,
    meta_id: i64,
    mode: String,
    reports: Vec<i64>,
    instances: usize,
    processes: usize,
    total: u64,
    covered: u64,
    files: Vec<(String, String, u64, u64)>,
    module_path: String,
    images: String,
    source_url: Option<String>,
    source_commit: Option<String>,
    merge_input_hash: String,
    counters: Vec<u8>,
}

fn load_members(conn: &Connection, k: &GroupKey, p: &Path) -> Result<Vec<MemberReport>, Error> {
    let mut st = conn
        .prepare_cached(
            "SELECT id, dir_name, instance, image, source_url, source_commit, input_hash, meta_id, process_tag \
             FROM report_sources WHERE namespace = ?1 AND owner_type = ?2 AND owner_name = ?3 \
             AND binary_name = ?4 AND meta_hash = ?5 ORDER BY collected_at DESC, dir_name",
        )
        .db(p)?;
    let mut members: Vec<MemberReport> = st
        .query_map(params![k.0, k.1, k.2, k.3, k.4], |r| {
            Ok(MemberReport {
                id: r.get(0)?,
                dir_name: r.get(1)?,
                instance: r.get(2)?,
                image: r.get(3)?,
                source_url: r.get(4)?,
                source_commit: r.get(5)?,
                input_hash: r.get(6)?,
                meta_id: r.get(7)?,
                process_tag: r.get(8)?,
                processes: Vec::new(),
            })
        })
        .db(p)?
        .collect::<Result<_, _>>()
        .db(p)?;
    let mut pst = conn
        .prepare_cached(
            "SELECT pid, counters FROM report_processes WHERE report_id = ?1 ORDER BY pid, seq",
        )
        .db(p)?;
    for m in &mut members {
        m.processes = pst
            .query_map([m.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)?;
    }
    Ok(members)
}

fn compute_owner(
    key: GroupKey,
    members: Vec<MemberReport>,
    layout: &Layout,
    merge_mode: ReplicaMerge,
    image_sources: &HashMap<String, (Option<String>, Option<String>)>,
) -> Result<OwnerRow, (String, codec::BlobError)> {
    let mode = layout.mode;
    let mut by_instance: BTreeMap<&str, Vec<&MemberReport>> = BTreeMap::new();
    for m in &members {
        by_instance.entry(m.instance.as_str()).or_default().push(m);
    }
    let mut acc = vec![0u32; layout.len()];
    let mut processes = 0;
    for reps in by_instance.values() {
        // A process: its PID plus, when the collector recorded it, what
        // tells processes with a reused PID apart (restart count, start time).
        let mut by_pid: BTreeMap<(i64, &str), Vec<Snapshot>> = BTreeMap::new();
        for m in reps {
            for (pid, blob) in &m.processes {
                let c = codec::decode_counters_for(blob, layout.len()).map_err(|e| {
                    (
                        format!("counters of report {} (entry {})", m.id, m.dir_name),
                        e,
                    )
                })?;
                by_pid
                    .entry((*pid, m.process_tag.as_str()))
                    .or_default()
                    .push((c, 1));
            }
        }
        let mut inst = vec![0u32; layout.len()];
        for (_, snaps) in by_pid {
            for (c, _) in merge::latest_per_process(snaps) {
                merge::add_into(&mut inst, &c, mode);
                processes += 1;
            }
        }
        merge::merge_into(&mut acc, &inst, merge_mode, mode);
    }
    let (total, covered) = layout.stmt_totals(&acc);
    let files = layout
        .file_totals(&acc)
        .into_iter()
        .zip(&layout.files)
        .filter(|(_, f)| !f.injected)
        .map(|((t, c), f)| (f.path.clone(), f.package_path.clone(), t, c))
        .collect();
    let mut h = Fnv128::new();
    h.write(PIPELINE_VERSION.as_bytes());
    h.write(merge_mode.as_str().as_bytes());
    let mut inputs: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.dir_name.as_str(), m.input_hash.as_str()))
        .collect();
    inputs.sort();
    for (d, i) in inputs {
        h.write(d.as_bytes());
        h.write(&[0]);
        h.write(i.as_bytes());
        h.write(&[0]);
    }
    let images: BTreeSet<&str> = members
        .iter()
        .map(|m| m.image.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    // Source: info.json of the newest report that has one, else the labels
    // of one of the owner's images.
    let (source_url, source_commit) = members
        .iter()
        .find(|m| m.source_url.is_some() || m.source_commit.is_some())
        .map(|m| (m.source_url.clone(), m.source_commit.clone()))
        .or_else(|| {
            members
                .iter()
                .filter_map(|m| image_sources.get(&m.image))
                .find(|(u, c)| u.is_some() || c.is_some())
                .cloned()
        })
        .unwrap_or((None, None));
    Ok(OwnerRow {
        meta_id: members.first().map_or(0, |m| m.meta_id),
        mode: mode.as_str().to_string(),
        reports: members.iter().map(|m| m.id).collect(),
        instances: by_instance.len(),
        processes,
        total,
        covered,
        files,
        module_path: layout.module_path.clone(),
        images: images.into_iter().collect::<Vec<_>>().join("\n"),
        source_url,
        source_commit,
        merge_input_hash: covdata::hex(&h.finish()),
        counters: codec::encode_counters(&acc),
        key,
    })
}

fn recompute_owners(
    conn: &mut Connection,
    merge_mode: ReplicaMerge,
    p: &Path,
    s: &mut CompileSummary,
) -> Result<(), Error> {
    let mut layouts: HashMap<i64, Arc<Layout>> = HashMap::new();
    let image_sources: HashMap<String, (Option<String>, Option<String>)> = {
        let mut st = conn
            .prepare(
                "SELECT image, source_url, source_commit FROM image_sources WHERE error IS NULL",
            )
            .db(p)?;
        st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)?
    };
    loop {
        let keys: Vec<GroupKey> = {
            let mut st = conn
                .prepare("SELECT namespace, owner_type, owner_name, binary_name, meta_hash FROM dirty_groups LIMIT 32")
                .db(p)?;
            st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)?
        };
        if keys.is_empty() {
            return Ok(());
        }
        let mut work = Vec::new();
        for k in &keys {
            let members = load_members(conn, k, p)?;
            if let Some(m) = members.first()
                && !layouts.contains_key(&m.meta_id)
            {
                let data: Vec<u8> = conn
                    .query_row(
                        "SELECT data FROM meta_files WHERE id = ?1",
                        [m.meta_id],
                        |r| r.get(0),
                    )
                    .db(p)?;
                let l = layout_from_stored(&data).map_err(|source| Error::Corrupt {
                    path: p.to_path_buf(),
                    what: format!("meta-data file {}", k.4),
                    source,
                })?;
                layouts.insert(m.meta_id, Arc::new(l));
            }
            work.push((k.clone(), members));
        }
        let rows: Vec<Result<Option<OwnerRow>, Error>> = work
            .into_par_iter()
            .map(|(k, members)| {
                let Some(first) = members.first() else {
                    return Ok(None);
                };
                let layout = layouts[&first.meta_id].clone();
                compute_owner(k, members, &layout, merge_mode, &image_sources)
                    .map(Some)
                    .map_err(|(what, source)| Error::Corrupt {
                        path: p.to_path_buf(),
                        what,
                        source,
                    })
            })
            .collect();
        let tx = conn.transaction().db(p)?;
        let now = now_rfc3339();
        for (k, row) in keys.iter().zip(rows) {
            let row = row?;
            match row {
                None => {
                    let n = tx
                        .execute(
                            "DELETE FROM owners WHERE namespace = ?1 AND owner_type = ?2 AND owner_name = ?3 \
                             AND binary_name = ?4 AND meta_hash = ?5",
                            params![k.0, k.1, k.2, k.3, k.4],
                        )
                        .db(p)?;
                    s.owners_deleted += n;
                }
                Some(o) => {
                    let id: i64 = tx
                        .query_row(
                            "INSERT INTO owners (namespace, owner_type, owner_name, binary_name, meta_hash, meta_id, mode, \
                             merge, report_count, instance_count, process_count, total_stmts, covered_stmts, coverage_pct, \
                             file_count, module_path, images, source_url, source_commit, merge_input_hash, counters, updated_at) \
                             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22) \
                             ON CONFLICT(namespace, owner_type, owner_name, binary_name, meta_hash) DO UPDATE SET \
                             meta_id = excluded.meta_id, mode = excluded.mode, merge = excluded.merge, \
                             report_count = excluded.report_count, instance_count = excluded.instance_count, \
                             process_count = excluded.process_count, total_stmts = excluded.total_stmts, \
                             covered_stmts = excluded.covered_stmts, coverage_pct = excluded.coverage_pct, \
                             file_count = excluded.file_count, module_path = excluded.module_path, images = excluded.images, \
                             source_url = excluded.source_url, source_commit = excluded.source_commit, \
                             merge_input_hash = excluded.merge_input_hash, counters = excluded.counters, \
                             updated_at = excluded.updated_at RETURNING id",
                            params![
                                o.key.0,
                                o.key.1,
                                o.key.2,
                                o.key.3,
                                o.key.4,
                                o.meta_id,
                                o.mode,
                                merge_mode.as_str(),
                                o.reports.len() as i64,
                                o.instances as i64,
                                o.processes as i64,
                                o.total as i64,
                                o.covered as i64,
                                pct(o.covered, o.total),
                                o.files.len() as i64,
                                o.module_path,
                                o.images,
                                o.source_url,
                                o.source_commit,
                                o.merge_input_hash,
                                o.counters,
                                now
                            ],
                            |r| r.get(0),
                        )
                        .db(p)?;
                    tx.execute("DELETE FROM owner_reports WHERE owner_id = ?1", [id])
                        .db(p)?;
                    tx.execute("DELETE FROM owner_file_stats WHERE owner_id = ?1", [id])
                        .db(p)?;
                    {
                        let mut ins = tx
                            .prepare_cached(
                                "INSERT INTO owner_reports (owner_id, report_id) VALUES (?1, ?2)",
                            )
                            .db(p)?;
                        for r in &o.reports {
                            ins.execute(params![id, r]).db(p)?;
                        }
                        let mut fs = tx
                            .prepare_cached(
                                "INSERT INTO owner_file_stats (owner_id, file_path, package_path, total_stmts, \
                                 covered_stmts, coverage_pct) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            )
                            .db(p)?;
                        for (f, pkg, t, c) in &o.files {
                            fs.execute(params![id, f, pkg, *t as i64, *c as i64, pct(*c, *t)])
                                .db(p)?;
                        }
                    }
                    s.owners_recomputed += 1;
                }
            }
            tx.execute(
                "DELETE FROM dirty_groups WHERE namespace = ?1 AND owner_type = ?2 AND owner_name = ?3 \
                 AND binary_name = ?4 AND meta_hash = ?5",
                params![k.0, k.1, k.2, k.3, k.4],
            )
            .db(p)?;
        }
        tx.commit().db(p)?;
    }
}
