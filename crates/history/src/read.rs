//! Reading a dataset: the committed runs (those with a manifest, the newest
//! publish of each cluster and run), and their tables conformed to the
//! current schema (columns an older file lacks are read as nulls).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, RecordBatch, StringArray, new_null_array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use store::Sink;

use crate::error::Error;
use crate::schema::{LAYOUT_VERSION, Table, blocks_v1_schema, data_key, dict, parse_key};

/// Requests in flight when reading a dataset.
const CONCURRENCY: usize = 16;

/// One committed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub cluster: String,
    pub date: String,
    pub run: String,
    pub publish_id: String,
    pub layout_version: i32,
    /// Milliseconds since the epoch.
    pub run_time_ms: i64,
    pub published_at_ms: i64,
}

impl RunRef {
    /// `cluster/run`, unique in a dataset.
    pub fn key(&self) -> String {
        format!("{}/{}", self.cluster, self.run)
    }
    /// The run time, RFC 3339 (seconds).
    pub fn run_time(&self) -> String {
        rfc3339_ms(self.run_time_ms)
    }
}

/// Milliseconds since the epoch as RFC 3339 (seconds, UTC).
pub fn rfc3339_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Milliseconds since the epoch of `t`.
pub fn ms_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn fetch(sink: &Sink, key: &str) -> Result<Bytes, Error> {
    sink.get(key).await?.ok_or_else(|| {
        Error::read(
            key,
            "missing (was the run replaced while reading? try again)",
        )
    })
}

/// Decodes a Parquet file, reading only `columns` of `target` (all when
/// `None`), conformed to `target`: missing columns become nulls.
pub fn decode(
    key: &str,
    data: Bytes,
    target: &SchemaRef,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, Error> {
    let want: Vec<Field> = target
        .fields()
        .iter()
        .filter(|f| columns.is_none_or(|c| c.contains(&f.name().as_str())))
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| Error::read(key, e))?;
    let present: Vec<&str> = want
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| builder.schema().field_with_name(n).is_ok())
        .collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), present.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| Error::read(key, e))?;
    let out_schema = Arc::new(Schema::new(want.clone()));
    let mut out = Vec::new();
    for b in reader {
        let b = b.map_err(|e| Error::read(key, e))?;
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(want.len());
        for f in &want {
            let col = match b.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => c.clone(),
                Some(c) => cast(c, f.data_type())
                    .map_err(|e| Error::read(key, format!("column {}: {e}", f.name())))?,
                None => new_null_array(f.data_type(), b.num_rows()),
            };
            cols.push(col);
        }
        out.push(RecordBatch::try_new(out_schema.clone(), cols).map_err(|e| Error::read(key, e))?);
    }
    Ok(out)
}

/// Every committed run of the dataset: runs with a manifest, the newest
/// publish of each (cluster, run). Fails on a manifest of a newer layout.
pub async fn committed_runs(sink: &Sink) -> Result<Vec<RunRef>, Error> {
    let listed = sink.list(Table::Runs.name()).await?;
    let prefix = format!("{}/", Table::Runs.name());
    let keys: Vec<(String, crate::schema::KeyParts)> = listed
        .into_iter()
        .filter_map(|l| {
            let p = parse_key(l.key.strip_prefix(&prefix)?)?;
            Some((l.key, p))
        })
        .collect();
    let schema = Table::Runs.schema();
    let cols = ["publish_id", "layout_version", "run_time", "published_at"];
    let mut runs: Vec<RunRef> = futures::stream::iter(keys)
        .map(|(key, p)| {
            let schema = schema.clone();
            async move {
                let data = fetch(sink, &key).await?;
                let batches = decode(&key, data, &schema, Some(&cols))?;
                let b = batches
                    .first()
                    .filter(|b| b.num_rows() == 1)
                    .ok_or_else(|| Error::read(&key, "a manifest holds exactly one row"))?;
                let int = |name: &str| -> Result<i64, Error> {
                    let c = cast(
                        b.column(cols.iter().position(|c| *c == name).unwrap_or(0)),
                        &DataType::Int64,
                    )
                    .map_err(|e| Error::read(&key, e))?;
                    let c = c.as_primitive::<Int64Type>();
                    if c.is_null(0) {
                        return Err(Error::read(&key, format!("{name} is null")));
                    }
                    Ok(c.value(0))
                };
                let version = i32::try_from(int("layout_version")?).unwrap_or(i32::MAX);
                if version > LAYOUT_VERSION {
                    return Err(Error::LayoutTooNew {
                        key,
                        found: version,
                        supported: LAYOUT_VERSION,
                    });
                }
                Ok::<_, Error>(RunRef {
                    cluster: p.cluster,
                    date: p.date,
                    run: p.run,
                    publish_id: p.publish_id,
                    layout_version: version,
                    run_time_ms: int("run_time")?,
                    published_at_ms: int("published_at")?,
                })
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    // Newest publish of each run (an older one is being replaced).
    runs.sort_by(|a, b| {
        (&a.cluster, &a.run, b.published_at_ms, &b.publish_id).cmp(&(
            &b.cluster,
            &b.run,
            a.published_at_ms,
            &a.publish_id,
        ))
    });
    runs.dedup_by(|b, a| a.cluster == b.cluster && a.run == b.run);
    runs.sort_by(|a, b| {
        (a.run_time_ms, &a.cluster, &a.run).cmp(&(b.run_time_ms, &b.cluster, &b.run))
    });
    Ok(runs)
}

fn constant(value: &str, n: usize) -> ArrayRef {
    let keys = Int32Array::from(vec![0; n]);
    let values: ArrayRef = Arc::new(StringArray::from(vec![value]));
    Arc::new(DictionaryArray::<Int32Type>::new(keys, values))
}

/// The partition columns readers add (and `run_key`, `cluster/run`).
fn partition_fields() -> Vec<Field> {
    ["cluster", "date", "run", "run_key"]
        .iter()
        .map(|n| Field::new(*n, dict(), false))
        .collect()
}

/// The schema [`load`] returns: the partition columns, `run_key`, then the
/// chosen columns (nullable).
pub fn loaded_schema(table: Table, columns: Option<&[&str]>) -> SchemaRef {
    let mut fields = partition_fields();
    fields.extend(
        table
            .schema()
            .fields()
            .iter()
            .filter(|f| columns.is_none_or(|c| c.contains(&f.name().as_str())))
            .map(|f| f.as_ref().clone().with_nullable(true)),
    );
    Arc::new(Schema::new(fields))
}

/// One table of the given runs, with the partition columns `cluster`,
/// `date`, `run` and `run_key` in front. Runs of a layout older than the
/// table ([`Table::since_version`]) have no rows in it; older files are
/// conformed to the current schema (a version 1 `blocks` file is read
/// without its position columns: see [`load_blocks`] for them).
pub async fn load(
    sink: &Sink,
    runs: &[RunRef],
    table: Table,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, Error> {
    let schema = loaded_schema(table, columns);
    let target = table.schema();
    let runs = runs
        .iter()
        .filter(|r| r.layout_version >= table.since_version());
    let per_run: Vec<Vec<RecordBatch>> = futures::stream::iter(runs)
        .map(|r| {
            let (schema, target) = (&schema, &target);
            async move {
                let (key, batches) = load_file(sink, r, table, target, columns).await?;
                with_partitions(&key, r, batches, schema)
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(per_run.into_iter().flatten().collect())
}

/// One run's file of `table`, decoded to `target` (see [`decode`]).
async fn load_file(
    sink: &Sink,
    r: &RunRef,
    table: Table,
    target: &SchemaRef,
    columns: Option<&[&str]>,
) -> Result<(String, Vec<RecordBatch>), Error> {
    let key = data_key(table, &r.cluster, &r.date, &r.run, &r.publish_id);
    let data = fetch(sink, &key).await?;
    let batches = decode(&key, data, target, columns)?;
    Ok((key, batches))
}

/// `batches` of run `r` with the partition columns in front (`schema`).
fn with_partitions(
    key: &str,
    r: &RunRef,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, Error> {
    let run_key = r.key();
    batches
        .into_iter()
        .map(|b| {
            let n = b.num_rows();
            let mut cols = vec![
                constant(&r.cluster, n),
                constant(&r.date, n),
                constant(&r.run, n),
                constant(&run_key, n),
            ];
            cols.extend(b.columns().iter().cloned());
            RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::read(key, e))
        })
        .collect()
}

/// The blocks of the given runs with their positions, whatever the layout
/// they were written with: the partition columns, then the columns of
/// [`blocks_v1_schema`] (a version 2 run's `blocks` joined with its
/// `block_positions` on meta hash and block key; a version 1 run's
/// `blocks` as written).
pub async fn load_blocks(sink: &Sink, runs: &[RunRef]) -> Result<Vec<RecordBatch>, Error> {
    let full = blocks_v1_schema();
    let mut fields = partition_fields();
    fields.extend(
        full.fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true)),
    );
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let per_run: Vec<Vec<RecordBatch>> = futures::stream::iter(runs)
        .map(|r| {
            let (schema, full) = (&schema, &full);
            async move {
                if r.layout_version < Table::BlockPositions.since_version() {
                    let (key, batches) = load_file(sink, r, Table::Blocks, full, None).await?;
                    return with_partitions(&key, r, batches, schema);
                }
                let blocks_t = Table::Blocks.schema();
                let pos_t = Table::BlockPositions.schema();
                let ((key, blocks), (pkey, positions)) = futures::try_join!(
                    load_file(sink, r, Table::Blocks, &blocks_t, None),
                    load_file(sink, r, Table::BlockPositions, &pos_t, None),
                )?;
                let at = index_positions(&pkey, &positions)?;
                let joined = blocks
                    .iter()
                    .map(|b| join_positions(&key, b, &at, full))
                    .collect::<Result<Vec<_>, Error>>()?;
                with_partitions(&key, r, joined, schema)
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(per_run.into_iter().flatten().collect())
}

/// The columns that locate a block in a build, in schema order: meta hash,
/// module, package, file, function.
const BLOCK_KEY: [&str; 5] = ["meta_hash", "module", "package", "file", "function"];
/// The per-build columns of a block, in schema order.
const POSITIONS: [&str; 5] = ["start_line", "start_col", "end_line", "end_col", "stmts"];

/// The block key of each row of `b` as one string, and its ordinals.
fn block_keys(key: &str, b: &RecordBatch) -> Result<(Vec<String>, Vec<i32>), Error> {
    let strings = BLOCK_KEY
        .iter()
        .map(|n| column(key, b, n, &DataType::Utf8))
        .collect::<Result<Vec<_>, Error>>()?;
    let strings: Vec<&StringArray> = strings.iter().map(|c| c.as_string::<i32>()).collect();
    let keys = (0..b.num_rows())
        .map(|i| {
            let mut k = String::new();
            for c in &strings {
                k.push_str(if c.is_null(i) { "" } else { c.value(i) });
                k.push('\0');
            }
            k
        })
        .collect();
    let ordinals = column(key, b, "block", &DataType::Int32)?;
    let ordinals = ordinals.as_primitive::<Int32Type>();
    Ok((keys, (0..b.num_rows()).map(|i| ordinals.value(i)).collect()))
}

fn column(key: &str, b: &RecordBatch, name: &str, ty: &DataType) -> Result<ArrayRef, Error> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| Error::read(key, format!("no column {name}")))?;
    cast(c, ty).map_err(|e| Error::read(key, format!("column {name}: {e}")))
}

/// Block key → the block's positions and statements (nulls for none).
type PositionIndex = std::collections::HashMap<(String, i32), [Option<i32>; 5]>;

fn index_positions(key: &str, batches: &[RecordBatch]) -> Result<PositionIndex, Error> {
    let mut at = PositionIndex::new();
    for b in batches {
        let (keys, ordinals) = block_keys(key, b)?;
        let cols = POSITIONS
            .iter()
            .map(|n| column(key, b, n, &DataType::Int32))
            .collect::<Result<Vec<_>, Error>>()?;
        let cols: Vec<&Int32Array> = cols.iter().map(|c| c.as_primitive::<Int32Type>()).collect();
        for (i, (k, o)) in keys.into_iter().zip(ordinals).enumerate() {
            let v = std::array::from_fn(|j| (!cols[j].is_null(i)).then(|| cols[j].value(i)));
            at.insert((k, o), v);
        }
    }
    Ok(at)
}

/// A version 2 `blocks` batch with its positions, shaped as `full`.
fn join_positions(
    key: &str,
    b: &RecordBatch,
    at: &PositionIndex,
    full: &SchemaRef,
) -> Result<RecordBatch, Error> {
    let (keys, ordinals) = block_keys(key, b)?;
    let found: Vec<Option<&[Option<i32>; 5]>> =
        keys.into_iter().zip(ordinals).map(|k| at.get(&k)).collect();
    let mut cols = Vec::with_capacity(full.fields().len());
    for f in full.fields() {
        let col = match POSITIONS.iter().position(|n| n == f.name()) {
            Some(j) => Arc::new(
                found
                    .iter()
                    .map(|p| p.and_then(|p| p[j]))
                    .collect::<Int32Array>(),
            ) as ArrayRef,
            None => b
                .column_by_name(f.name())
                .cloned()
                .unwrap_or_else(|| new_null_array(f.data_type(), b.num_rows())),
        };
        cols.push(col);
    }
    let schema = Arc::new(Schema::new(
        full.fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, cols).map_err(|e| Error::read(key, e))
}
