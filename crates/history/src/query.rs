//! The history questions, answered by DataFusion over the committed runs of
//! a window: functions and files shipped in every run that never ran
//! ([`never_ran`]), and coverage per owner per run ([`trend`]).

use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringDictionaryBuilder, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
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

/// The never-ran query over `functions` (or `files`, with `function` empty).
/// Kept in step with the DuckDB query in docs/history.md.
fn never_ran_sql(table: &str, kind: &str) -> String {
    let (func_col, func_key) = if table == "functions" {
        ("t.function", ", t.function")
    } else {
        ("''", "")
    };
    // A candidate is in every run of its owner: its clusters and first and
    // last runs are its owner's, taken from the small owners table (no join
    // of the big table with runs).
    format!(
        "WITH owner_runs AS (
            SELECT o.namespace, o.owner_type, o.owner_name, o.binary_name,
                   count(DISTINCT o.run_key) AS runs, count(DISTINCT o.cluster) AS clusters,
                   min(r.run_time) AS first_seen, max(r.run_time) AS last_seen
            FROM owners o JOIN runs r ON o.run_key = r.run_key
            GROUP BY o.namespace, o.owner_type, o.owner_name, o.binary_name
         ),
         seen AS (
            SELECT t.namespace, t.owner_type, t.owner_name, t.binary_name,
                   t.module, t.package, t.file{func_key},
                   max(t.repository) AS repository,
                   max(t.total_stmts) AS stmts,
                   count(DISTINCT t.run_key) AS runs
            FROM {table} t
            GROUP BY t.namespace, t.owner_type, t.owner_name, t.binary_name,
                     t.module, t.package, t.file{func_key}
            HAVING sum(t.covered_stmts) = 0
         )
         SELECT '{kind}' AS kind, s.repository, s.namespace, s.owner_type, s.owner_name, s.binary_name,
                s.module, s.package, s.file, {func} AS function, s.stmts, s.runs, o.clusters,
                o.first_seen, o.last_seen
         FROM seen s JOIN owner_runs o
           ON s.namespace = o.namespace AND s.owner_type = o.owner_type
          AND s.owner_name = o.owner_name AND s.binary_name = o.binary_name
         WHERE s.runs = o.runs",
        func = func_col.replace("t.", "s."),
    )
}

/// Functions and files present in every run of their owner in the window
/// that never ran in any cluster; statements descending, then by
/// repository, owner, package, file, function.
pub async fn never_ran(sink: &Sink, window: &Window) -> Result<Answer<NeverRan>, Error> {
    let runs = window.runs(sink).await?;
    let ctx = SessionContext::new();
    let owner_cols = ["namespace", "owner_type", "owner_name", "binary_name"];
    let code_cols = [
        "namespace",
        "owner_type",
        "owner_name",
        "binary_name",
        "repository",
        "module",
        "package",
        "file",
        "function",
        "total_stmts",
        "covered_stmts",
    ];
    let (owners, files, functions) = futures::try_join!(
        load(sink, &runs, Table::Owners, Some(&owner_cols)),
        load(sink, &runs, Table::Files, Some(&code_cols)),
        load(sink, &runs, Table::Functions, Some(&code_cols)),
    )?;
    let rb = runs_batch(&runs)?;
    register(&ctx, "runs", vec![rb.clone()], rb.schema())?;
    register(
        &ctx,
        "owners",
        owners,
        crate::read::loaded_schema(Table::Owners, Some(&owner_cols)),
    )?;
    register(
        &ctx,
        "files",
        files,
        crate::read::loaded_schema(Table::Files, Some(&code_cols)),
    )?;
    register(
        &ctx,
        "functions",
        functions,
        crate::read::loaded_schema(Table::Functions, Some(&code_cols)),
    )?;
    let mut rows = Vec::new();
    for (table, kind) in [("functions", "function"), ("files", "file")] {
        for b in sql(&ctx, "never-ran", &never_ran_sql(table, kind)).await? {
            let c = Cols {
                b: &b,
                query: "never-ran",
            };
            let s = |n: &str| c.strings(n);
            let (kind, repo, ns, ot, on, bin, module, pkg, file, func) = (
                s("kind")?,
                s("repository")?,
                s("namespace")?,
                s("owner_type")?,
                s("owner_name")?,
                s("binary_name")?,
                s("module")?,
                s("package")?,
                s("file")?,
                s("function")?,
            );
            let (stmts, nruns, clusters, first, last) = (
                c.ints("stmts")?,
                c.ints("runs")?,
                c.ints("clusters")?,
                c.ints("first_seen")?,
                c.ints("last_seen")?,
            );
            for i in 0..b.num_rows() {
                rows.push(NeverRan {
                    kind: kind[i].clone(),
                    repository: repo[i].clone(),
                    namespace: ns[i].clone(),
                    owner_type: ot[i].clone(),
                    owner_name: on[i].clone(),
                    binary_name: bin[i].clone(),
                    module: module[i].clone(),
                    package: pkg[i].clone(),
                    file: file[i].clone(),
                    function: func[i].clone(),
                    stmts: stmts[i],
                    runs: nruns[i],
                    clusters: clusters[i],
                    first_seen: rfc3339_ms(first[i]),
                    last_seen: rfc3339_ms(last[i]),
                });
            }
        }
    }
    sort_never_ran(&mut rows);
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
