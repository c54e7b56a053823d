//! The SQLite schema (see docs/database.md for the meaning of every column).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, SqlCtx};

/// The schema version this covfleet writes. The seed system's Go collector
/// wrote version 2 (text per report); covfleet's compact schema started at 3
/// (4 added `report_sources.process_tag`; 5 added the phase tables:
/// `report_marks`, `report_mark_span`, `phases`, `phase_owners`,
/// `phase_file_stats`).
pub const SCHEMA_VERSION: i64 = 5;

/// Bumped whenever compile would compute different owner rows from the same
/// stored reports (e.g. a change of the injected-file filter); a database
/// compiled by another pipeline version gets all owners recomputed.
pub const PIPELINE_VERSION: &str = "1";

pub(crate) const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta_files (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    mode TEXT NOT NULL,
    origin TEXT NOT NULL,
    num_units INTEGER NOT NULL,
    total_stmts INTEGER NOT NULL,
    module_path TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    dir_name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    compiled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS report_sources (
    id INTEGER PRIMARY KEY,
    dir_name TEXT NOT NULL REFERENCES entries(dir_name) ON DELETE CASCADE,
    meta_id INTEGER NOT NULL REFERENCES meta_files(id),
    meta_hash TEXT NOT NULL,
    format TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod_name TEXT NOT NULL,
    container_name TEXT NOT NULL,
    image TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    host_process INTEGER NOT NULL,
    collected_at TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_name TEXT NOT NULL,
    instance TEXT NOT NULL,
    process_tag TEXT NOT NULL,
    source_url TEXT,
    source_commit TEXT,
    processes INTEGER NOT NULL,
    snapshots INTEGER NOT NULL,
    total_stmts INTEGER NOT NULL,
    covered_stmts INTEGER NOT NULL,
    coverage_pct REAL NOT NULL,
    input_hash TEXT NOT NULL,
    UNIQUE (dir_name, meta_hash)
);
CREATE INDEX IF NOT EXISTS report_sources_group
    ON report_sources (namespace, owner_type, owner_name, binary_name, meta_hash);
CREATE TABLE IF NOT EXISTS report_processes (
    report_id INTEGER NOT NULL REFERENCES report_sources(id) ON DELETE CASCADE,
    pid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    snapshots INTEGER NOT NULL,
    counters BLOB NOT NULL,
    PRIMARY KEY (report_id, pid, seq)
);
CREATE TABLE IF NOT EXISTS owners (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_name TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    meta_hash TEXT NOT NULL,
    meta_id INTEGER NOT NULL REFERENCES meta_files(id),
    mode TEXT NOT NULL,
    merge TEXT NOT NULL,
    report_count INTEGER NOT NULL,
    instance_count INTEGER NOT NULL,
    process_count INTEGER NOT NULL,
    total_stmts INTEGER NOT NULL,
    covered_stmts INTEGER NOT NULL,
    coverage_pct REAL NOT NULL,
    file_count INTEGER NOT NULL,
    module_path TEXT NOT NULL,
    images TEXT NOT NULL,
    source_url TEXT,
    source_commit TEXT,
    merge_input_hash TEXT NOT NULL,
    counters BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (namespace, owner_type, owner_name, binary_name, meta_hash)
);
CREATE TABLE IF NOT EXISTS owner_reports (
    owner_id INTEGER NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    report_id INTEGER NOT NULL REFERENCES report_sources(id) ON DELETE CASCADE,
    PRIMARY KEY (owner_id, report_id)
);
CREATE INDEX IF NOT EXISTS owner_reports_report ON owner_reports (report_id);
CREATE TABLE IF NOT EXISTS owner_file_stats (
    owner_id INTEGER NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    file_path TEXT NOT NULL,
    package_path TEXT NOT NULL,
    total_stmts INTEGER NOT NULL,
    covered_stmts INTEGER NOT NULL,
    coverage_pct REAL NOT NULL,
    PRIMARY KEY (owner_id, file_path)
);
CREATE TABLE IF NOT EXISTS image_sources (
    image TEXT PRIMARY KEY,
    source_url TEXT,
    source_commit TEXT,
    origin TEXT NOT NULL,
    error TEXT,
    inspected_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS report_marks (
    report_id INTEGER NOT NULL REFERENCES report_sources(id) ON DELETE CASCADE,
    mark INTEGER NOT NULL,
    counters BLOB NOT NULL,
    PRIMARY KEY (report_id, mark)
);
CREATE TABLE IF NOT EXISTS report_mark_span (
    report_id INTEGER PRIMARY KEY REFERENCES report_sources(id) ON DELETE CASCADE,
    marks_first INTEGER NOT NULL,
    marks_latest INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS phases (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    start_mark INTEGER NOT NULL,
    end_mark INTEGER,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    owner_count INTEGER NOT NULL,
    process_count INTEGER NOT NULL,
    total_stmts INTEGER NOT NULL,
    covered_stmts INTEGER NOT NULL,
    coverage_pct REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS phase_owners (
    phase_id INTEGER NOT NULL REFERENCES phases(id) ON DELETE CASCADE,
    owner_id INTEGER NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    report_count INTEGER NOT NULL,
    process_count INTEGER NOT NULL,
    total_stmts INTEGER NOT NULL,
    covered_stmts INTEGER NOT NULL,
    coverage_pct REAL NOT NULL,
    counters BLOB NOT NULL,
    PRIMARY KEY (phase_id, owner_id)
);
CREATE TABLE IF NOT EXISTS phase_file_stats (
    phase_id INTEGER NOT NULL REFERENCES phases(id) ON DELETE CASCADE,
    owner_id INTEGER NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    file_path TEXT NOT NULL,
    package_path TEXT NOT NULL,
    total_stmts INTEGER NOT NULL,
    covered_stmts INTEGER NOT NULL,
    coverage_pct REAL NOT NULL,
    PRIMARY KEY (phase_id, owner_id, file_path)
);
CREATE TABLE IF NOT EXISTS dirty_groups (
    namespace TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_name TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    meta_hash TEXT NOT NULL,
    PRIMARY KEY (namespace, owner_type, owner_name, binary_name, meta_hash)
);
"#;

/// Tables dropped when an older (seed) schema is found.
const ALL_TABLES: &[&str] = &[
    "phase_file_stats",
    "phase_owners",
    "phases",
    "report_mark_span",
    "report_marks",
    "owner_file_stats",
    "owner_reports",
    "owners",
    "report_processes",
    "report_sources",
    "entries",
    "meta_files",
    "image_sources",
    "dirty_groups",
    "settings",
    "schema_version",
];

/// Sets the connection pragmas covfleet relies on.
pub(crate) fn pragmas(conn: &Connection, path: &Path) -> Result<(), Error> {
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;")
        .db(path)
}

/// Reads the stored schema version (None for an empty database).
pub(crate) fn stored_version(conn: &Connection, path: &Path) -> Result<Option<i64>, Error> {
    let has: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .db(path)?;
    if !has {
        return Ok(None);
    }
    conn.query_row("SELECT max(version) FROM schema_version", [], |r| {
        r.get::<_, Option<i64>>(0)
    })
    .optional()
    .db(path)
    .map(Option::flatten)
}

/// Creates or upgrades the schema for writing. An older (seed, v2) database
/// is rebuilt from scratch: everything in it can be recomputed from the
/// collection.
pub(crate) fn ensure_writable(conn: &Connection, path: &Path) -> Result<(), Error> {
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .db(path)?;
    pragmas(conn, path)?;
    let stored = stored_version(conn, path)?;
    match stored {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(Error::SchemaTooNew {
                path: path.to_path_buf(),
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        // Up to date: no write at all (an unchanged compile stays read-only).
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        Some(_) => {
            tracing::warn!(
                "{}: older schema found, rebuilding the database",
                path.display()
            );
            let mut sql = String::from("PRAGMA foreign_keys = OFF; BEGIN;");
            for t in ALL_TABLES {
                sql.push_str(&format!("DROP TABLE IF EXISTS {t};"));
            }
            sql.push_str("COMMIT; PRAGMA foreign_keys = ON;");
            conn.execute_batch(&sql).db(path)?;
        }
        None => {}
    }
    let mut sql = String::from("BEGIN;");
    sql.push_str(DDL);
    sql.push_str(&format!(
        "DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION}); COMMIT;"
    ));
    conn.execute_batch(&sql).db(path)?;
    Ok(())
}
