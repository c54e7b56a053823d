//! The history questions, answered by DataFusion over the committed runs of
//! a window: functions and files shipped in every run that never ran
//! ([`never_ran`]), and coverage per owner per run ([`trend`]).

use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringDictionaryBuilder,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use rustc_hash::FxHashMap;
use store::Sink;

use crate::error::Error;
use crate::read::{RunRef, committed_runs, load, ms_since_epoch, rfc3339_ms};
use crate::schema::{Table, dict, timestamp};

/// Which runs a question looks at.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Only clusters matching this glob.
    pub cluster_glob: Option<String>,
    /// Only runs at or after this time.
    pub since: Option<SystemTime>,
}

impl Window {
    /// The committed runs of the dataset inside the window, oldest first.
    pub async fn runs(&self, sink: &Sink) -> Result<Vec<RunRef>, Error> {
        let glob = match &self.cluster_glob {
            Some(g) => Some(
                globset::Glob::new(g)
                    .map_err(|e| Error::BadGlob {
                        glob: g.clone(),
                        message: e.to_string(),
                    })?
                    .compile_matcher(),
            ),
            None => None,
        };
        let since = self.since.map(ms_since_epoch);
        Ok(committed_runs(sink)
            .await?
            .into_iter()
            .filter(|r| glob.as_ref().is_none_or(|g| g.is_match(&r.cluster)))
            .filter(|r| since.is_none_or(|s| r.run_time_ms >= s))
            .collect())
    }
}

/// A function or file present in every run of its owner in the window that
/// never ran in any of them (a dead-code candidate).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NeverRan {
    /// `function` or `file`.
    pub kind: String,
    pub repository: String,
    pub namespace: String,
    pub owner_type: String,
    pub owner_name: String,
    pub binary_name: String,
    pub module: String,
    pub package: String,
    pub file: String,
    /// Empty for files.
    pub function: String,
    /// Statements (the largest any run saw).
    pub stmts: i64,
    /// Runs it was seen in (all runs of its owner in the window).
    pub runs: i64,
    pub clusters: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// Coverage of one owner in one run (replicas of several builds added up).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrendPoint {
    pub namespace: String,
    pub owner_type: String,
    pub owner_name: String,
    pub binary_name: String,
    pub cluster: String,
    pub run: String,
    pub run_time: String,
    pub total_stmts: i64,
    pub covered_stmts: i64,
    pub coverage_pct: f64,
}

/// The answer to a question, with the runs it looked at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer<T> {
    pub runs: Vec<RunSummary>,
    pub rows: Vec<T>,
}

/// One run of the window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub cluster: String,
    pub run: String,
    pub run_time: String,
}

impl From<&RunRef> for RunSummary {
    fn from(r: &RunRef) -> Self {
        RunSummary {
            cluster: r.cluster.clone(),
            run: r.run.clone(),
            run_time: r.run_time(),
        }
    }
}

/// The `runs` table of the window as the engine sees it.
fn runs_batch(runs: &[RunRef]) -> Result<RecordBatch, Error> {
    let dicts = |f: &dyn Fn(&RunRef) -> String| -> ArrayRef {
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        for r in runs {
            b.append_value(f(r));
        }
        Arc::new(b.finish())
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("cluster", dict(), false),
        Field::new("run", dict(), false),
        Field::new("run_key", dict(), false),
        Field::new("run_time", timestamp(), false),
        Field::new("run_id", DataType::Int32, false),
    ]));
    let times =
        TimestampMillisecondArray::from(runs.iter().map(|r| r.run_time_ms).collect::<Vec<_>>())
            .with_timezone("UTC");
    RecordBatch::try_new(
        schema,
        vec![
            dicts(&|r| r.cluster.clone()),
            dicts(&|r| r.run.clone()),
            dicts(&|r| r.key()),
            Arc::new(times),
            Arc::new(Int32Array::from_iter_values(0..runs.len() as i32)),
        ],
    )
    .map_err(|e| Error::Query {
        query: "runs",
        message: e.to_string(),
    })
}

fn qerr(query: &'static str) -> impl Fn(datafusion::error::DataFusionError) -> Error {
    move |e| Error::Query {
        query,
        message: e.to_string(),
    }
}

fn register(
    ctx: &SessionContext,
    name: &'static str,
    batches: Vec<RecordBatch>,
    schema: arrow::datatypes::SchemaRef,
) -> Result<(), Error> {
    // Two partitions: both cores of a small machine work.
    let half = batches.len().div_ceil(2);
    let mut parts: Vec<Vec<RecordBatch>> = batches.chunks(half.max(1)).map(<[_]>::to_vec).collect();
    if parts.is_empty() {
        parts.push(Vec::new());
    }
    let t = MemTable::try_new(schema, parts).map_err(qerr(name))?;
    ctx.register_table(name, Arc::new(t)).map_err(qerr(name))?;
    Ok(())
}

/// Runs `sql` and returns its batches.
async fn sql(
    ctx: &SessionContext,
    query: &'static str,
    text: &str,
) -> Result<Vec<RecordBatch>, Error> {
    ctx.sql(text)
        .await
        .map_err(qerr(query))?
        .collect()
        .await
        .map_err(qerr(query))
}

/// Column access by name on result batches, whatever the engine chose as
/// the physical type.
struct Cols<'a> {
    b: &'a RecordBatch,
    query: &'static str,
}

impl Cols<'_> {
    fn col(&self, name: &str, ty: &DataType) -> Result<ArrayRef, Error> {
        let c = self.b.column_by_name(name).ok_or_else(|| Error::Query {
            query: self.query,
            message: format!("no column {name}"),
        })?;
        cast(c, ty).map_err(|e| Error::Query {
            query: self.query,
            message: format!("column {name}: {e}"),
        })
    }
    fn strings(&self, name: &str) -> Result<Vec<String>, Error> {
        let c = self.col(name, &DataType::Utf8)?;
        let s = c.as_string::<i32>();
        Ok((0..s.len())
            .map(|i| {
                if s.is_null(i) {
                    String::new()
                } else {
                    s.value(i).to_string()
                }
            })
            .collect())
    }
    fn ints(&self, name: &str) -> Result<Vec<i64>, Error> {
        let c = self.col(name, &DataType::Int64)?;
        let s = c.as_primitive::<Int64Type>();
        Ok((0..s.len())
            .map(|i| if s.is_null(i) { 0 } else { s.value(i) })
            .collect())
    }
}

/// A never-ran candidate as [`Keys`] ids (see [`NeverRan`]).
struct Candidate {
    function: bool,
    owner: u32,
    code: u32,
    repository: u32,
    stmts: i64,
    runs: i64,
    clusters: i64,
    first_seen: i64,
    last_seen: i64,
}

/// Runs per mask lane: a run's bit in `m{run / 64}`.
const LANE: usize = 64;

/// The mask lanes of a window of `runs` runs (at least one).
fn lanes(runs: usize) -> usize {
    runs.div_ceil(LANE).max(1)
}

/// Owner and code keys as integers. The engine groups tens of millions of
/// function rows (a row per owner, function and run); grouping them by
/// eight text columns spends its time comparing strings, by two integers
/// it does not. The texts come back from here for the answer.
#[derive(Default)]
struct Keys {
    strings: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    /// (namespace, owner_type, owner_name, binary_name)
    owners: Tuples,
    /// (module, package, file, function; "" for files)
    code: Tuples,
}

#[derive(Default)]
struct Tuples {
    ids: FxHashMap<[u32; 4], u32>,
    list: Vec<[u32; 4]>,
}

impl Tuples {
    fn intern(&mut self, t: [u32; 4]) -> u32 {
        if let Some(id) = self.ids.get(&t) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.list.push(t);
        self.ids.insert(t, id);
        id
    }
}

const OWNER_COLS: [&str; 4] = ["namespace", "owner_type", "owner_name", "binary_name"];

impl Keys {
    fn string(&mut self, s: &str) -> u32 {
        if let Some(id) = self.strings.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.strings.insert(s.into(), id);
        id
    }

    /// Each string's rank in byte order (by id): ids compared through it
    /// order as their texts do.
    fn ranks(&self) -> Vec<u32> {
        let mut by_text: Vec<u32> = (0..self.names.len() as u32).collect();
        by_text.sort_unstable_by(|a, b| self.names[*a as usize].cmp(&self.names[*b as usize]));
        let mut rank = vec![0; by_text.len()];
        for (r, id) in by_text.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        rank
    }

    fn name(&self, id: u32) -> String {
        self.names[id as usize].to_string()
    }

    /// The string ids of column `name`'s rows (a missing column or a null
    /// is "").
    fn column(
        &mut self,
        b: &RecordBatch,
        name: &str,
        query: &'static str,
    ) -> Result<Vec<u32>, Error> {
        let n = b.num_rows();
        let Some(c) = b.column_by_name(name) else {
            let empty = self.string("");
            return Ok(vec![empty; n]);
        };
        let c = cast(c, &dict()).map_err(|e| Error::Query {
            query,
            message: format!("column {name}: {e}"),
        })?;
        let d = c.as_dictionary::<Int32Type>();
        let values = d.values().as_string::<i32>();
        let ids: Vec<u32> = (0..values.len())
            .map(|i| {
                self.string(if values.is_null(i) {
                    ""
                } else {
                    values.value(i)
                })
            })
            .collect();
        let empty = self.string("");
        let keys = d.keys();
        Ok((0..n)
            .map(|i| {
                if keys.is_null(i) {
                    empty
                } else {
                    ids.get(keys.value(i) as usize).copied().unwrap_or(empty)
                }
            })
            .collect())
    }

    /// The tuple ids of `cols` (four columns; a missing one is "").
    fn tuples(
        &mut self,
        b: &RecordBatch,
        cols: [&str; 4],
        code: bool,
        query: &'static str,
    ) -> Result<UInt32Array, Error> {
        let c = [
            self.column(b, cols[0], query)?,
            self.column(b, cols[1], query)?,
            self.column(b, cols[2], query)?,
            self.column(b, cols[3], query)?,
        ];
        let t = if code {
            &mut self.code
        } else {
            &mut self.owners
        };
        let mut last: Option<([u32; 4], u32)> = None;
        Ok((0..b.num_rows())
            .map(|i| {
                let k = [c[0][i], c[1][i], c[2][i], c[3][i]];
                match last {
                    Some((lk, id)) if lk == k => id,
                    _ => {
                        let id = t.intern(k);
                        last = Some((k, id));
                        id
                    }
                }
            })
            .collect())
    }

    /// Run `run` (of `nruns`) of `functions` or `files` as the engine
    /// groups it: owner_id, code_id, stmts, covered, then the run's bit in
    /// the mask lanes m0, m1, ….
    fn code_batch(
        &mut self,
        b: &RecordBatch,
        function: bool,
        (run, nruns): (usize, usize),
    ) -> Result<RecordBatch, Error> {
        let q = "never-ran";
        let owner = self.tuples(b, OWNER_COLS, false, q)?;
        let f = if function { "function" } else { "" };
        let code = self.tuples(b, ["module", "package", "file", f], true, q)?;
        let ints = |name: &str| -> Result<ArrayRef, Error> {
            let c = b.column_by_name(name).ok_or_else(|| Error::Query {
                query: q,
                message: format!("no column {name}"),
            })?;
            cast(c, &DataType::Int64).map_err(|e| Error::Query {
                query: q,
                message: format!("column {name}: {e}"),
            })
        };
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(owner),
            Arc::new(code),
            ints("total_stmts")?,
            ints("covered_stmts")?,
        ];
        cols.extend(mask_columns(run, nruns, b.num_rows()));
        RecordBatch::try_new(code_schema(nruns), cols).map_err(|e| Error::Query {
            query: q,
            message: e.to_string(),
        })
    }

    /// Run `run`'s `owners` rows: owner_id, run_id, repository, masks.
    fn owner_batch(
        &mut self,
        b: &RecordBatch,
        (run, nruns): (usize, usize),
    ) -> Result<RecordBatch, Error> {
        let q = "never-ran";
        let owner = self.tuples(b, OWNER_COLS, false, q)?;
        let n = b.num_rows();
        let repo = cast(
            b.column_by_name("repository").ok_or_else(|| Error::Query {
                query: q,
                message: "no column repository".into(),
            })?,
            &DataType::Utf8,
        )
        .map_err(|e| Error::Query {
            query: q,
            message: format!("column repository: {e}"),
        })?;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(owner),
            Arc::new(Int32Array::from(vec![run as i32; n])),
            repo,
        ];
        cols.extend(mask_columns(run, nruns, n));
        RecordBatch::try_new(owner_schema(nruns), cols).map_err(|e| Error::Query {
            query: q,
            message: e.to_string(),
        })
    }
}

fn mask_fields(nruns: usize) -> Vec<Field> {
    (0..lanes(nruns))
        .map(|l| Field::new(format!("m{l}"), DataType::Int64, false))
        .collect()
}

/// Run `run`'s bit in each lane, for `n` rows.
fn mask_columns(run: usize, nruns: usize, n: usize) -> Vec<ArrayRef> {
    (0..lanes(nruns))
        .map(|l| {
            let v = if run / LANE == l {
                1i64 << (run % LANE)
            } else {
                0
            };
            Arc::new(Int64Array::from(vec![v; n])) as ArrayRef
        })
        .collect()
}

fn owner_schema(nruns: usize) -> arrow::datatypes::SchemaRef {
    let mut fields = vec![
        Field::new("owner_id", DataType::UInt32, false),
        Field::new("run_id", DataType::Int32, false),
        Field::new("repository", DataType::Utf8, true),
    ];
    fields.extend(mask_fields(nruns));
    Arc::new(Schema::new(fields))
}

fn code_schema(nruns: usize) -> arrow::datatypes::SchemaRef {
    let mut fields = vec![
        Field::new("owner_id", DataType::UInt32, false),
        Field::new("code_id", DataType::UInt32, false),
        Field::new("stmts", DataType::Int64, true),
        Field::new("covered", DataType::Int64, true),
    ];
    fields.extend(mask_fields(nruns));
    Arc::new(Schema::new(fields))
}

/// The never-ran query over `functions` (or `files`) as [`Keys`] has
/// them. A candidate never ran (`covered` 0 in every row) and is in every
/// run of its owner: its run mask equals its owner's, so its runs,
/// clusters, first and last run and repository are its owner's (taken
/// from the small `owners` table). Kept in step with the DuckDB query in
/// docs/history.md, which says the same with text keys.
fn never_ran_sql(table: &str, nruns: usize) -> String {
    let lanes = lanes(nruns);
    let agg = |p: &str| {
        (0..lanes)
            .map(|l| format!(", bit_or({p}m{l}) AS m{l}"))
            .collect::<String>()
    };
    let same: String = (0..lanes)
        .map(|l| format!(" AND s.m{l} = o.m{l}"))
        .collect();
    format!(
        "WITH o AS (
            SELECT ow.owner_id{owner_masks},
                   count(DISTINCT ow.run_id) AS runs, count(DISTINCT r.cluster) AS clusters,
                   min(r.run_time) AS first_seen, max(r.run_time) AS last_seen,
                   max(ow.repository) AS repository
            FROM owners ow JOIN runs r ON ow.run_id = r.run_id
            GROUP BY ow.owner_id
         ),
         s AS (
            SELECT t.owner_id, t.code_id, max(t.stmts) AS stmts{code_masks}
            FROM {table} t
            GROUP BY t.owner_id, t.code_id
            HAVING max(t.covered) = 0
         )
         SELECT s.owner_id, s.code_id, s.stmts, o.runs, o.clusters, o.first_seen, o.last_seen,
                o.repository
         FROM s JOIN o ON s.owner_id = o.owner_id
         WHERE true{same}",
        owner_masks = agg("ow."),
        code_masks = agg("t."),
    )
}

/// Functions and files present in every run of their owner in the window
/// that never ran in any cluster; statements descending, then by
/// repository, owner, package, file, function.
pub async fn never_ran(sink: &Sink, window: &Window) -> Result<Answer<NeverRan>, Error> {
    let runs = window.runs(sink).await?;
    let nruns = runs.len();
    let ctx = SessionContext::new();
    let owner_cols = [
        "namespace",
        "owner_type",
        "owner_name",
        "binary_name",
        "repository",
    ];
    let code_cols = [
        "namespace",
        "owner_type",
        "owner_name",
        "binary_name",
        "module",
        "package",
        "file",
        "function",
        "total_stmts",
        "covered_stmts",
    ];
    let mut keys = Keys::default();
    // Run by run (two fetched and decoded ahead), each run's text columns
    // turned into keys and dropped before the next: the window's rows are
    // held only as integers.
    let mut owners = Vec::new();
    // (table, whether its rows are functions, its batches)
    let mut tables: [(Table, bool, Vec<RecordBatch>); 2] = [
        (Table::Functions, true, Vec::new()),
        (Table::Files, false, Vec::new()),
    ];
    let per_run = futures::stream::iter(runs.iter().enumerate()).map(|(i, r)| {
        let one = std::slice::from_ref(r);
        async move {
            let (o, fu, fi) = futures::try_join!(
                load(sink, one, Table::Owners, Some(&owner_cols)),
                load(sink, one, Table::Functions, Some(&code_cols)),
                load(sink, one, Table::Files, Some(&code_cols)),
            )?;
            Ok::<_, Error>((i, o, fu, fi))
        }
    });
    let mut per_run = std::pin::pin!(per_run.buffered(2));
    while let Some((i, o, fu, fi)) = per_run.try_next().await? {
        for b in &o {
            owners.push(keys.owner_batch(b, (i, nruns))?);
        }
        for ((_, function, batches), run_batches) in tables.iter_mut().zip([fu, fi]) {
            for b in &run_batches {
                batches.push(keys.code_batch(b, *function, (i, nruns))?);
            }
        }
    }
    let rb = runs_batch(&runs)?;
    register(&ctx, "runs", vec![rb.clone()], rb.schema())?;
    register(&ctx, "owners", owners, owner_schema(nruns))?;
    // The candidates as ids, sorted by the ranks of their texts, and only
    // then spelt out.
    let mut found: Vec<Candidate> = Vec::new();
    for (table, function, batches) in tables {
        register(&ctx, table.name(), batches, code_schema(nruns))?;
        for b in sql(&ctx, "never-ran", &never_ran_sql(table.name(), nruns)).await? {
            let c = Cols {
                b: &b,
                query: "never-ran",
            };
            let (owner, code) = (c.ints("owner_id")?, c.ints("code_id")?);
            let repo = c.strings("repository")?;
            let (stmts, seen_runs, clusters, first, last) = (
                c.ints("stmts")?,
                c.ints("runs")?,
                c.ints("clusters")?,
                c.ints("first_seen")?,
                c.ints("last_seen")?,
            );
            for i in 0..b.num_rows() {
                found.push(Candidate {
                    function,
                    owner: owner[i] as u32,
                    code: code[i] as u32,
                    repository: keys.string(&repo[i]),
                    stmts: stmts[i],
                    runs: seen_runs[i],
                    clusters: clusters[i],
                    first_seen: first[i],
                    last_seen: last[i],
                });
            }
        }
    }
    let rank = keys.ranks();
    let order = |c: &Candidate| {
        let o = keys.owners.list[c.owner as usize];
        let k = keys.code.list[c.code as usize];
        let r = |id: u32| rank[id as usize];
        (
            std::cmp::Reverse(c.stmts),
            [r(c.repository), r(o[0]), r(o[1]), r(o[2]), r(o[3])],
            !c.function,
            [r(k[1]), r(k[2]), r(k[3])],
        )
    };
    found.sort_by_cached_key(order);
    let rows: Vec<NeverRan> = found
        .iter()
        .map(|c| {
            let o = keys.owners.list[c.owner as usize];
            let k = keys.code.list[c.code as usize];
            NeverRan {
                kind: if c.function { "function" } else { "file" }.to_string(),
                repository: keys.name(c.repository),
                namespace: keys.name(o[0]),
                owner_type: keys.name(o[1]),
                owner_name: keys.name(o[2]),
                binary_name: keys.name(o[3]),
                module: keys.name(k[0]),
                package: keys.name(k[1]),
                file: keys.name(k[2]),
                function: keys.name(k[3]),
                stmts: c.stmts,
                runs: c.runs,
                clusters: c.clusters,
                first_seen: rfc3339_ms(c.first_seen),
                last_seen: rfc3339_ms(c.last_seen),
            }
        })
        .collect();
    Ok(Answer {
        runs: runs.iter().map(RunSummary::from).collect(),
        rows,
    })
}

/// The order of `--never-ran`: statements descending, then repository,
/// owner, kind (functions first), package, file, function.
pub fn sort_never_ran(rows: &mut [NeverRan]) {
    rows.sort_by(|a, b| {
        b.stmts.cmp(&a.stmts).then_with(|| {
            (
                &a.repository,
                &a.namespace,
                &a.owner_type,
                &a.owner_name,
                &a.binary_name,
                &b.kind,
                &a.package,
                &a.file,
                &a.function,
            )
                .cmp(&(
                    &b.repository,
                    &b.namespace,
                    &b.owner_type,
                    &b.owner_name,
                    &b.binary_name,
                    &a.kind,
                    &b.package,
                    &b.file,
                    &b.function,
                ))
        })
    });
}

/// Coverage per owner per run, by owner then run time.
pub async fn trend(sink: &Sink, window: &Window) -> Result<Answer<TrendPoint>, Error> {
    let runs = window.runs(sink).await?;
    let ctx = SessionContext::new();
    let cols = [
        "namespace",
        "owner_type",
        "owner_name",
        "binary_name",
        "total_stmts",
        "covered_stmts",
    ];
    let owners = load(sink, &runs, Table::Owners, Some(&cols)).await?;
    let rb = runs_batch(&runs)?;
    register(&ctx, "runs", vec![rb.clone()], rb.schema())?;
    register(
        &ctx,
        "owners",
        owners,
        crate::read::loaded_schema(Table::Owners, Some(&cols)),
    )?;
    let text =         "SELECT o.namespace, o.owner_type, o.owner_name, o.binary_name, r.cluster, r.run, r.run_time,
                sum(o.total_stmts) AS total_stmts, sum(o.covered_stmts) AS covered_stmts
         FROM owners o JOIN runs r ON o.run_key = r.run_key
         GROUP BY o.namespace, o.owner_type, o.owner_name, o.binary_name, r.cluster, r.run, r.run_time";
    let mut rows = Vec::new();
    for b in sql(&ctx, "trend", text).await? {
        let c = Cols {
            b: &b,
            query: "trend",
        };
        let s = |n: &str| c.strings(n);
        let (ns, ot, on, bin, cl, run) = (
            s("namespace")?,
            s("owner_type")?,
            s("owner_name")?,
            s("binary_name")?,
            s("cluster")?,
            s("run")?,
        );
        let (time, total, covered) = (
            c.ints("run_time")?,
            c.ints("total_stmts")?,
            c.ints("covered_stmts")?,
        );
        for i in 0..b.num_rows() {
            rows.push((
                time[i],
                TrendPoint {
                    namespace: ns[i].clone(),
                    owner_type: ot[i].clone(),
                    owner_name: on[i].clone(),
                    binary_name: bin[i].clone(),
                    cluster: cl[i].clone(),
                    run: run[i].clone(),
                    run_time: rfc3339_ms(time[i]),
                    total_stmts: total[i],
                    covered_stmts: covered[i],
                    coverage_pct: pct(covered[i], total[i]),
                },
            ));
        }
    }
    rows.sort_by(|(ta, a), (tb, b)| {
        (
            &a.namespace,
            &a.owner_type,
            &a.owner_name,
            &a.binary_name,
            ta,
            &a.cluster,
            &a.run,
        )
            .cmp(&(
                &b.namespace,
                &b.owner_type,
                &b.owner_name,
                &b.binary_name,
                tb,
                &b.cluster,
                &b.run,
            ))
    });
    Ok(Answer {
        runs: runs.iter().map(RunSummary::from).collect(),
        rows: rows.into_iter().map(|(_, p)| p).collect(),
    })
}

/// Percentage rounded to two decimals (0 statements: 0).
pub fn pct(covered: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (10000.0 * covered as f64 / total as f64).round() / 100.0
    }
}
