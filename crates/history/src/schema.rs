//! The dataset's layout and the schema of its six tables (layout version
//! [`LAYOUT_VERSION`]). `docs/history.md` is the reference for users.
//!
//! ```text
//! DATASET/<table>/cluster=<C>/date=<YYYY-MM-DD>/run=<R>/<publish id>.parquet
//! ```
//!
//! `cluster`, `date` and `run` are Hive partition columns: they live in the
//! path, never inside the files. The `runs` file of a run is its manifest,
//! written last: a run without one does not exist for readers.
//!
//! Version 2 moved the per-build part of a block (its position and
//! statements) out of `blocks` into `block_positions`, written once per
//! meta hash in a run; version 1 runs (positions inside `blocks`, no
//! `block_positions`) are still read ([`blocks_v1_schema`]).
//!
//! Evolution rules: within a layout version columns are only ever added,
//! nullable, at the end of a table; readers fill a column missing from an
//! older file with nulls. Renaming, retyping or removing a column, or
//! changing the path layout, bumps [`LAYOUT_VERSION`]; readers refuse
//! manifests newer than they know.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The layout version written into every manifest (`runs.layout_version`).
pub const LAYOUT_VERSION: i32 = 2;

/// The six tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// One row per run: the run's manifest.
    Runs,
    /// One row per owner (namespace, owner type, owner, binary, meta hash).
    Owners,
    /// One row per source file of an owner.
    Files,
    /// One row per function of an owner.
    Functions,
    /// One row per coverable block of an owner, keyed by its ordinal in its
    /// function: the block's count (its position is in `block_positions`).
    Blocks,
    /// One row per coverable block of a build (meta hash): its position and
    /// statements. Since layout version 2.
    BlockPositions,
}

impl Table {
    /// Every table, the manifest (`runs`) last: the order they are written in.
    pub const ALL: [Table; 6] = [
        Table::Owners,
        Table::Files,
        Table::Functions,
        Table::Blocks,
        Table::BlockPositions,
        Table::Runs,
    ];

    /// The first layout version with this table: runs written with an
    /// older layout have no file of it.
    pub fn since_version(self) -> i32 {
        match self {
            Table::BlockPositions => 2,
            _ => 1,
        }
    }

    /// The table's directory name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Runs => "runs",
            Table::Owners => "owners",
            Table::Files => "files",
            Table::Functions => "functions",
            Table::Blocks => "blocks",
            Table::BlockPositions => "block_positions",
        }
    }

    /// The table's schema as written (without the partition columns).
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Runs => RUNS.clone(),
            Table::Owners => OWNERS.clone(),
            Table::Files => FILES.clone(),
            Table::Functions => FUNCTIONS.clone(),
            Table::Blocks => BLOCKS.clone(),
            Table::BlockPositions => BLOCK_POSITIONS.clone(),
        }
    }
}

/// Repeated strings: dictionary-encoded in memory (and in Parquet).
pub(crate) fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Milliseconds since the epoch, UTC.
pub(crate) fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn s(name: &str) -> Field {
    Field::new(name, dict(), false)
}
fn i64f(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}
fn i32f(name: &str) -> Field {
    Field::new(name, DataType::Int32, false)
}

/// The owner key every table but `runs` starts with.
fn owner_key() -> Vec<Field> {
    vec![
        s("publish_id"),
        s("namespace"),
        s("owner_type"),
        s("owner_name"),
        s("binary_name"),
        s("meta_hash"),
    ]
}

static RUNS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        s("publish_id"),
        i32f("layout_version"),
        Field::new("run_time", timestamp(), false),
        Field::new("published_at", timestamp(), false),
        s("covfleet_version"),
        i64f("owners"),
        i64f("total_stmts"),
        i64f("covered_stmts"),
    ]))
});

static OWNERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = owner_key();
    f.extend([
        s("mode"),
        s("module"),
        s("repository"),
        Field::new("source_commit", dict(), true),
        s("images"),
        i64f("instances"),
        i64f("processes"),
        i64f("files"),
        i64f("total_stmts"),
        i64f("covered_stmts"),
    ]);
    Arc::new(Schema::new(f))
});

static FILES: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = owner_key();
    f.extend([
        s("repository"),
        s("module"),
        s("package"),
        s("file"),
        i64f("functions"),
        i64f("blocks"),
        i64f("total_stmts"),
        i64f("covered_stmts"),
    ]);
    Arc::new(Schema::new(f))
});

static FUNCTIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = owner_key();
    f.extend([
        s("repository"),
        s("module"),
        s("package"),
        s("file"),
        s("function"),
        i32f("start_line"),
        i32f("end_line"),
        i32f("blocks"),
        i32f("covered_blocks"),
        i64f("total_stmts"),
        i64f("covered_stmts"),
        i64f("max_count"),
    ]);
    Arc::new(Schema::new(f))
});

/// The key of a block within a build: where it is in the code.
fn block_key() -> Vec<Field> {
    vec![
        s("module"),
        s("package"),
        s("file"),
        s("function"),
        i32f("block"),
    ]
}

/// A block's position and statements (per build).
fn positions() -> Vec<Field> {
    vec![
        i32f("start_line"),
        i32f("start_col"),
        i32f("end_line"),
        i32f("end_col"),
        i32f("stmts"),
    ]
}

static BLOCKS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = owner_key();
    f.extend(block_key());
    f.push(i64f("count"));
    Arc::new(Schema::new(f))
});

static BLOCK_POSITIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = vec![s("publish_id"), s("meta_hash")];
    f.extend(block_key());
    f.extend(positions());
    Arc::new(Schema::new(f))
});

static BLOCKS_V1: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = owner_key();
    f.extend(block_key());
    f.extend(positions());
    f.push(i64f("count"));
    Arc::new(Schema::new(f))
});

/// The `blocks` table of layout version 1: the owner key, the block key,
/// the position and statements, then the count. It is also the shape
/// [`crate::read::load_blocks`] returns for runs of every version (version
/// 2 `blocks` joined with `block_positions`).
pub fn blocks_v1_schema() -> SchemaRef {
    BLOCKS_V1.clone()
}

/// The partition columns readers add to every table, from the path.
pub const PARTITIONS: [&str; 3] = ["cluster", "date", "run"];

/// True for a usable cluster or run name: 1-128 of `A-Z a-z 0-9 . _ -`,
/// not `.` or `..` (safe in a path, a Hive partition and a glob).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where one table's file of one publish lives.
pub fn data_key(table: Table, cluster: &str, date: &str, run: &str, publish_id: &str) -> String {
    format!(
        "{}/cluster={cluster}/date={date}/run={run}/{publish_id}.parquet",
        table.name()
    )
}

/// A key parsed by [`parse_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts {
    pub cluster: String,
    pub date: String,
    pub run: String,
    pub publish_id: String,
}

/// Parses `<table>/cluster=C/date=D/run=R/<publish id>.parquet` (relative to
/// the table's directory: `cluster=C/…`).
pub fn parse_key(rel: &str) -> Option<KeyParts> {
    let mut it = rel.split('/');
    let cluster = it.next()?.strip_prefix("cluster=")?;
    let date = it.next()?.strip_prefix("date=")?;
    let run = it.next()?.strip_prefix("run=")?;
    let publish_id = it.next()?.strip_suffix(".parquet")?;
    if it.next().is_some() || !valid_name(cluster) || !valid_name(run) || !valid_name(publish_id) {
        return None;
    }
    Some(KeyParts {
        cluster: cluster.into(),
        date: date.into(),
        run: run.into(),
        publish_id: publish_id.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = data_key(Table::Functions, "prod-1", "2026-11-30", "r7", "p1");
        assert_eq!(
            k,
            "functions/cluster=prod-1/date=2026-11-30/run=r7/p1.parquet"
        );
        let p = parse_key(k.strip_prefix("functions/").unwrap()).unwrap();
        assert_eq!(p.cluster, "prod-1");
        assert_eq!(p.date, "2026-11-30");
        assert_eq!(p.run, "r7");
        assert_eq!(p.publish_id, "p1");
        assert!(parse_key("cluster=a/date=d/run=r/x.json").is_none());
        assert!(parse_key("cluster=a/date=d/run=../x.parquet").is_none());
    }

    #[test]
    fn names() {
        assert!(valid_name("prod-eu.1_a"));
        for bad in ["", ".", "..", "a/b", "a=b", "a b", "ä"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_name(&"x".repeat(129)));
    }
}
