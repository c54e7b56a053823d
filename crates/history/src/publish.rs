//! One run of a compiled database as Parquet files, and publishing them:
//! data files first, the manifest (`runs`) last, then the files of any
//! earlier publish of the same run are deleted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringDictionaryBuilder,
    TimestampMillisecondBuilder, UInt32Array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::Int32Type;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use store::Sink;

use crate::error::Error;
use crate::schema::{LAYOUT_VERSION, Table, data_key, parse_key, valid_name};

/// What to publish the database as.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The cluster (a partition value).
    pub cluster: String,
    /// The run id; default: the run time as `YYYYMMDDTHHMMSSZ`.
    pub run: Option<String>,
}

/// One run's tables, encoded as Parquet, ready to publish.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub cluster: String,
    pub run: String,
    /// `YYYY-MM-DD` of the run time (UTC).
    pub date: String,
    /// The newest `collected_at` of the database's reports (RFC 3339).
    pub run_time: String,
    pub publish_id: String,
    /// (table, rows, Parquet bytes), the manifest (`runs`) last.
    pub tables: Vec<(Table, usize, Bytes)>,
}

impl RunFiles {
    /// Total bytes of the run's files.
    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|(_, _, b)| b.len() as u64).sum()
    }
}

/// What [`publish`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub cluster: String,
    pub run: String,
    pub date: String,
    pub run_time: String,
    pub publish_id: String,
    /// Rows per table.
    pub rows: HashMap<&'static str, usize>,
    /// Bytes written.
    pub bytes: u64,
    /// Files of earlier publishes of the same run that were deleted.
    pub replaced_files: usize,
}

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn dbe(path: &Path) -> impl Fn(db::Error) -> Error + '_ {
    move |source| Error::Db {
        path: path.to_path_buf(),
        source,
    }
}

type Dict = StringDictionaryBuilder<Int32Type>;

/// Column builders of the owner key shared by all tables but `runs`.
#[derive(Default)]
struct KeyCols {
    publish_id: Dict,
    namespace: Dict,
    owner_type: Dict,
    owner_name: Dict,
    binary_name: Dict,
    meta_hash: Dict,
}

impl KeyCols {
    fn push(&mut self, publish_id: &str, o: &db::Owner) {
        self.publish_id.append_value(publish_id);
        self.namespace.append_value(&o.namespace);
        self.owner_type.append_value(&o.owner_type);
        self.owner_name.append_value(&o.owner_name);
        self.binary_name.append_value(&o.binary_name);
        self.meta_hash.append_value(&o.meta_hash);
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.publish_id.finish()),
            Arc::new(self.namespace.finish()),
            Arc::new(self.owner_type.finish()),
            Arc::new(self.owner_name.finish()),
            Arc::new(self.binary_name.finish()),
            Arc::new(self.meta_hash.finish()),
        ]
    }
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn batch(table: Table, cols: Vec<ArrayRef>) -> Result<RecordBatch, Error> {
    RecordBatch::try_new(table.schema(), cols).map_err(|e| Error::write(table.name(), e))
}

/// Encodes one batch as a Parquet file (zstd).
pub fn encode(table: Table, batch: &RecordBatch) -> Result<Bytes, Error> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| Error::write(table.name(), e))?,
        ))
        .set_created_by(format!("covfleet {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(|e| Error::write(table.name(), e))?;
    w.write(batch).map_err(|e| Error::write(table.name(), e))?;
    w.close().map_err(|e| Error::write(table.name(), e))?;
    Ok(Bytes::from(buf))
}

/// The run time of a database: the newest `collected_at` of its reports
/// (now when it has none).
fn run_time(database: &db::Database) -> Result<SystemTime, Error> {
    let mut newest: Option<SystemTime> = None;
    for r in database.reports().map_err(dbe(database.path()))? {
        if r.labels.collected_at.is_empty() {
            continue;
        }
        let t =
            humantime::parse_rfc3339_weak(&r.labels.collected_at).map_err(|_| Error::BadTime {
                what: format!(
                    "{}: collected_at of {}",
                    database.path().display(),
                    r.dir_name
                ),
                value: r.labels.collected_at.clone(),
            })?;
        newest = Some(newest.map_or(t, |n| n.max(t)));
    }
    Ok(newest.unwrap_or_else(SystemTime::now))
}

/// A publish id: unique per publish, ordered by time.
fn new_publish_id(now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{now_ms:013}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Reads a compiled database into one run's Parquet files.
pub fn encode_run(database: &db::Database, spec: &RunSpec) -> Result<RunFiles, Error> {
    let path = database.path();
    if !valid_name(&spec.cluster) {
        return Err(Error::BadName {
            what: "cluster",
            value: spec.cluster.clone(),
        });
    }
    let time = run_time(database)?;
    let time_s = humantime::format_rfc3339_seconds(time).to_string();
    let run = match &spec.run {
        Some(r) => r.clone(),
        None => time_s.replace(['-', ':'], ""),
    };
    if !valid_name(&run) {
        return Err(Error::BadName {
            what: "run",
            value: run,
        });
    }
    let date = time_s.get(..10).unwrap_or("1970-01-01").to_string();
    let now_ms = ms_of(SystemTime::now());
    let publish_id = new_publish_id(now_ms);
    let pid = publish_id.as_str();

    let owners = database.owners().map_err(dbe(path))?;
    let mut cols = RunColumns::default();
    for o in &owners {
        let (meta, counters) = database.owner_meta(o.id).map_err(dbe(path))?;
        cols.push_owner(pid, o, &meta, &counters);
    }
    let totals = RunTotals {
        owners: owners.len() as i64,
        total: cols.run_total,
        covered: cols.run_covered,
    };
    let runs_b = runs_batch(pid, ms_of(time), now_ms, &totals)?;
    let mut tables = Vec::new();
    for (t, b) in cols.finish()?.into_iter().chain([(Table::Runs, runs_b)]) {
        tables.push((t, b.num_rows(), encode(t, &b)?));
    }
    Ok(RunFiles {
        cluster: spec.cluster.clone(),
        run,
        date,
        run_time: time_s,
        publish_id: publish_id.clone(),
        tables,
    })
}

/// The builders of the owners table: one row per owner.
#[derive(Default)]
struct OwnerColumns {
    key: KeyCols,
    mode: Dict,
    module: Dict,
    repo: Dict,
    commit: Dict,
    images: Dict,
    /// instance_count, process_count, file_count, total_stmts, covered_stmts.
    nums: [Int64Builder; 5],
}

impl OwnerColumns {
    fn push(&mut self, pid: &str, o: &db::Owner, repository: &str) {
        self.key.push(pid, o);
        self.mode.append_value(&o.mode);
        self.module.append_value(&o.module_path);
        self.repo.append_value(repository);
        self.commit.append_option(o.source_commit.as_deref());
        self.images.append_value(o.images.join("\n"));
        let values = [
            o.instance_count,
            o.process_count,
            o.file_count,
            o.total_stmts,
            o.covered_stmts,
        ];
        for (b, v) in self.nums.iter_mut().zip(values) {
            b.append_value(v);
        }
    }

    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let mut cols = self.key.finish();
        for d in [
            &mut self.mode,
            &mut self.module,
            &mut self.repo,
            &mut self.commit,
            &mut self.images,
        ] {
            cols.push(Arc::new(d.finish()));
        }
        cols.extend(finish_all(&mut self.nums));
        batch(Table::Owners, cols)
    }
}

/// The builders of the files table: one row per (owner, file).
#[derive(Default)]
struct FileColumns {
    key: KeyCols,
    repo: Dict,
    module: Dict,
    pkg: Dict,
    file: Dict,
    /// functions, blocks, total_stmts, covered_stmts.
    nums: [Int64Builder; 4],
}

impl FileColumns {
    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let mut cols = self.key.finish();
        for d in [
            &mut self.repo,
            &mut self.module,
            &mut self.pkg,
            &mut self.file,
        ] {
            cols.push(Arc::new(d.finish()));
        }
        cols.extend(finish_all(&mut self.nums));
        batch(Table::Files, cols)
    }
}

/// The builders of the functions table: one row per (owner, function).
#[derive(Default)]
struct FunctionColumns {
    key: KeyCols,
    repo: Dict,
    module: Dict,
    pkg: Dict,
    file: Dict,
    func: Dict,
    /// start_line, end_line, blocks, covered_blocks.
    i32s: [Int32Builder; 4],
    /// total_stmts, covered_stmts, max_count.
    i64s: [Int64Builder; 3],
}

impl FunctionColumns {
    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let mut cols = self.key.finish();
        for d in [
            &mut self.repo,
            &mut self.module,
            &mut self.pkg,
            &mut self.file,
            &mut self.func,
        ] {
            cols.push(Arc::new(d.finish()));
        }
        cols.extend(finish_all(&mut self.i32s));
        cols.extend(finish_all(&mut self.i64s));
        batch(Table::Functions, cols)
    }
}

/// The builders of the blocks table: one row per (owner, block).
#[derive(Default)]
struct BlockColumns {
    key: KeyCols,
    code: CodeCols,
    count: Int64Builder,
}

impl BlockColumns {
    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let mut cols = self.key.finish();
        cols.extend(self.code.finish());
        cols.push(Arc::new(self.count.finish()));
        batch(Table::Blocks, cols)
    }
}

/// The builders of the block key (module, package, file, function, block)
/// shared by `blocks` and `block_positions`.
#[derive(Default)]
struct CodeCols {
    module: Dict,
    pkg: Dict,
    file: Dict,
    func: Dict,
    block: Int32Builder,
}

impl CodeCols {
    fn push(&mut self, p: &covdata::PackageMeta, f: &covdata::FuncDesc, block: usize) {
        self.module.append_value(&p.module_path);
        self.pkg.append_value(&p.path);
        self.file.append_value(&f.file);
        self.func.append_value(&f.name);
        self.block
            .append_value(i32::try_from(block).unwrap_or(i32::MAX));
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.module.finish()),
            Arc::new(self.pkg.finish()),
            Arc::new(self.file.finish()),
            Arc::new(self.func.finish()),
            Arc::new(self.block.finish()),
        ]
    }
}

/// The builders of the block_positions table: one row per (build, block).
#[derive(Default)]
struct PositionColumns {
    publish_id: Dict,
    meta_hash: Dict,
    code: CodeCols,
    /// st_line, st_col, en_line, en_col, stmts.
    i32s: [Int32Builder; 5],
}

impl PositionColumns {
    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.publish_id.finish()),
            Arc::new(self.meta_hash.finish()),
        ];
        cols.extend(self.code.finish());
        cols.extend(finish_all(&mut self.i32s));
        batch(Table::BlockPositions, cols)
    }
}

/// One function's totals, gathered while its blocks are written.
#[derive(Default)]
struct FuncTotals {
    total: i64,
    covered: i64,
    covered_blocks: i32,
    max_count: i64,
}

/// A file's running totals for one owner: (package, file, functions,
/// blocks, total, covered).
type FileTotals<'m> = (&'m str, &'m str, i64, i64, i64, i64);

/// Where a row of `functions` or `blocks` goes in the written file: the
/// rows are filled owner by owner, and written build first, then code
/// order (function or block), then owner. The owners of one build share
/// every code column, so that order turns those columns into long runs
/// (run-length encoded to almost nothing) and puts the counts of one block
/// side by side; the file is about a sixth of the size it has in owner
/// order (docs/history.md, "Sizes and speed"). Readers never depend on row
/// order.
#[derive(Default)]
struct RowOrder {
    /// (build, code ordinal, owner) packed above the row number.
    keys: Vec<u128>,
}

impl RowOrder {
    fn push(&mut self, build: u32, code: u32, owner: u32) {
        let row = self.keys.len() as u128;
        self.keys.push(
            (u128::from(build) << 96) | (u128::from(code) << 64) | (u128::from(owner) << 32) | row,
        );
    }

    /// The batch's rows in this order.
    fn apply(mut self, table: Table, b: RecordBatch) -> Result<RecordBatch, Error> {
        self.keys.sort_unstable();
        let rows: UInt32Array = self.keys.iter().map(|k| *k as u32).collect();
        take_record_batch(&b, &rows).map_err(|e| Error::write(table.name(), e))
    }
}

/// Every table of one run but `runs`, filled owner by owner.
#[derive(Default)]
struct RunColumns {
    owners: OwnerColumns,
    files: FileColumns,
    functions: FunctionColumns,
    blocks: BlockColumns,
    positions: PositionColumns,
    function_order: RowOrder,
    block_order: RowOrder,
    /// Meta hashes seen so far (the index is the build's ordinal); a
    /// build's positions are written with its first owner.
    builds: HashMap<String, u32>,
    owners_seen: u32,
    run_total: i64,
    run_covered: i64,
}

impl RunColumns {
    /// Adds one owner's row, and the rows of its files, functions and blocks.
    fn push_owner(&mut self, pid: &str, o: &db::Owner, meta: &covdata::MetaFile, counters: &[u32]) {
        let repository = o
            .source_url
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| o.module_path.clone());
        self.owners.push(pid, o, &repository);
        self.run_total += o.total_stmts;
        self.run_covered += o.covered_stmts;
        // A build's positions once per run, with its first owner.
        let next = self.builds.len() as u32;
        let build = *self.builds.entry(o.meta_hash.clone()).or_insert(next);
        let new_build = build == next;
        let owner = self.owners_seen;
        self.owners_seen += 1;
        let at = (build, owner);

        // Per file of this owner, in first-seen order.
        let mut files: Vec<FileTotals> = Vec::new();
        let mut file_ix: HashMap<&str, usize> = HashMap::new();
        let mut unit = 0usize;
        let funcs = meta
            .packages
            .iter()
            .flat_map(|p| p.funcs.iter().map(move |f| (p, f)));
        for (fi, (p, f)) in funcs.enumerate() {
            let first = unit;
            unit += f.units.len();
            if db::is_injected_file(&f.file) {
                continue;
            }
            let counts = counters.get(first..unit).unwrap_or(&[]);
            let (sum, st, en) = self.push_blocks(pid, o, (p, f, first), counts, at, new_build);
            let nblocks = i32::try_from(f.units.len()).unwrap_or(i32::MAX);
            self.function_order.push(build, fi as u32, owner);
            self.push_function(pid, o, &repository, p, f, (st, en, nblocks), &sum);
            let ix = *file_ix.entry(f.file.as_str()).or_insert_with(|| {
                files.push((p.path.as_str(), f.file.as_str(), 0, 0, 0, 0));
                files.len() - 1
            });
            let e = &mut files[ix];
            e.2 += 1;
            e.3 += i64::from(nblocks);
            e.4 += sum.total;
            e.5 += sum.covered;
        }
        let fc = &mut self.files;
        for (pkg, file, nf, nb, total, covered) in files {
            fc.key.push(pid, o);
            fc.repo.append_value(&repository);
            fc.module.append_value(meta_module(meta, pkg));
            fc.pkg.append_value(pkg);
            fc.file.append_value(file);
            for (b, v) in fc.nums.iter_mut().zip([nf, nb, total, covered]) {
                b.append_value(v);
            }
        }
    }

    /// Writes a function's blocks (and their positions when `new_build`);
    /// returns its totals and its first and last line.
    /// `first` is the function's first block in the build's counters;
    /// `(build, owner)` are the ordinals of [`RowOrder`].
    fn push_blocks(
        &mut self,
        pid: &str,
        o: &db::Owner,
        (p, f, first): (&covdata::PackageMeta, &covdata::FuncDesc, usize),
        counts: &[u32],
        (build, owner): (u32, u32),
        new_build: bool,
    ) -> (FuncTotals, u32, u32) {
        let mut sum = FuncTotals::default();
        let (mut st, mut en) = (u32::MAX, 0u32);
        let bc = &mut self.blocks;
        for (bi, (u, &c)) in f.units.iter().zip(counts).enumerate() {
            sum.total += i64::from(u.stmts);
            if c > 0 {
                sum.covered += i64::from(u.stmts);
                sum.covered_blocks += 1;
            }
            sum.max_count = sum.max_count.max(i64::from(c));
            st = st.min(u.st_line);
            en = en.max(u.en_line);
            self.block_order.push(build, (first + bi) as u32, owner);
            bc.key.push(pid, o);
            bc.code.push(p, f, bi);
            bc.count.append_value(i64::from(c));
            if new_build {
                let pc = &mut self.positions;
                pc.publish_id.append_value(pid);
                pc.meta_hash.append_value(&o.meta_hash);
                pc.code.push(p, f, bi);
                let values = [u.st_line, u.st_col, u.en_line, u.en_col, u.stmts];
                for (b, v) in pc.i32s.iter_mut().zip(values) {
                    b.append_value(to_i32(v));
                }
            }
        }
        if st == u32::MAX {
            st = 0;
        }
        (sum, st, en)
    }

    #[allow(clippy::too_many_arguments)]
    fn push_function(
        &mut self,
        pid: &str,
        o: &db::Owner,
        repository: &str,
        p: &covdata::PackageMeta,
        f: &covdata::FuncDesc,
        (st, en, nblocks): (u32, u32, i32),
        sum: &FuncTotals,
    ) {
        let nc = &mut self.functions;
        nc.key.push(pid, o);
        nc.repo.append_value(repository);
        nc.module.append_value(&p.module_path);
        nc.pkg.append_value(&p.path);
        nc.file.append_value(&f.file);
        nc.func.append_value(&f.name);
        let i32s = [to_i32(st), to_i32(en), nblocks, sum.covered_blocks];
        for (b, v) in nc.i32s.iter_mut().zip(i32s) {
            b.append_value(v);
        }
        for (b, v) in nc
            .i64s
            .iter_mut()
            .zip([sum.total, sum.covered, sum.max_count])
        {
            b.append_value(v);
        }
    }

    fn finish(mut self) -> Result<Vec<(Table, RecordBatch)>, Error> {
        Ok(vec![
            (Table::Owners, self.owners.finish()?),
            (Table::Files, self.files.finish()?),
            (
                Table::Functions,
                self.function_order
                    .apply(Table::Functions, self.functions.finish()?)?,
            ),
            (
                Table::Blocks,
                self.block_order
                    .apply(Table::Blocks, self.blocks.finish()?)?,
            ),
            (Table::BlockPositions, self.positions.finish()?),
        ])
    }
}

/// The run's totals, for its manifest row.
struct RunTotals {
    owners: i64,
    total: i64,
    covered: i64,
}

/// The `runs` table's single row: the run's manifest.
fn runs_batch(pid: &str, time_ms: i64, now_ms: i64, t: &RunTotals) -> Result<RecordBatch, Error> {
    let mut r_pid = Dict::new();
    r_pid.append_value(pid);
    let mut r_ver = Int32Builder::new();
    r_ver.append_value(LAYOUT_VERSION);
    let mut r_time = TimestampMillisecondBuilder::new().with_timezone("UTC");
    r_time.append_value(time_ms);
    let mut r_pub = TimestampMillisecondBuilder::new().with_timezone("UTC");
    r_pub.append_value(now_ms);
    let mut r_ver_s = Dict::new();
    r_ver_s.append_value(env!("CARGO_PKG_VERSION"));
    let mut r_nums: [Int64Builder; 3] = Default::default();
    for (b, v) in r_nums.iter_mut().zip([t.owners, t.total, t.covered]) {
        b.append_value(v);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(r_pid.finish()),
        Arc::new(r_ver.finish()),
        Arc::new(r_time.finish()),
        Arc::new(r_pub.finish()),
        Arc::new(r_ver_s.finish()),
    ];
    cols.extend(finish_all(&mut r_nums));
    batch(Table::Runs, cols)
}

/// Finishes a group of builders into columns, in order.
fn finish_all<B: arrow::array::ArrayBuilder>(builders: &mut [B]) -> Vec<ArrayRef> {
    builders.iter_mut().map(|b| b.finish()).collect()
}

fn meta_module(meta: &covdata::MetaFile, pkg: &str) -> String {
    meta.packages
        .iter()
        .find(|p| p.path == pkg)
        .map(|p| p.module_path.clone())
        .unwrap_or_default()
}

/// Writes a run: its data files, then its manifest (the `runs` file), then
/// deletes what earlier publishes of the same cluster and run left (their
/// manifests first, so no reader ever sees two versions' data mixed or a run
/// without its data).
pub async fn publish(sink: &Sink, files: &RunFiles) -> Result<Published, Error> {
    let key = |t: Table| {
        data_key(
            t,
            &files.cluster,
            &files.date,
            &files.run,
            &files.publish_id,
        )
    };
    // Data first, the manifest last (Table::ALL's order; `tables` keeps it).
    let mut ordered: Vec<&(Table, usize, Bytes)> = files.tables.iter().collect();
    ordered.sort_by_key(|(t, _, _)| Table::ALL.iter().position(|x| x == t));
    let data: Vec<_> = ordered
        .iter()
        .filter(|(t, _, _)| *t != Table::Runs)
        .collect();
    futures::future::try_join_all(data.iter().map(|(t, _, b)| {
        let k = key(*t);
        let b = b.clone();
        async move { sink.put(&k, b).await }
    }))
    .await?;
    for (t, _, b) in ordered.iter().filter(|(t, _, _)| *t == Table::Runs) {
        sink.put(&key(*t), b.clone()).await?;
    }
    let mut replaced = 0;
    // Manifests first, then the data of every table (also tables a newer
    // layout added: a run published again keeps none of its old files).
    let order =
        std::iter::once(Table::Runs).chain(Table::ALL.into_iter().filter(|t| *t != Table::Runs));
    for t in order {
        let dir = format!("{}/cluster={}", t.name(), files.cluster);
        for l in sink.list(&dir).await? {
            let Some(rel) = l.key.strip_prefix(&format!("{}/", t.name())) else {
                continue;
            };
            if let Some(p) = parse_key(rel)
                && p.run == files.run
                && p.publish_id != files.publish_id
            {
                sink.delete(&l.key).await?;
                replaced += 1;
            }
        }
    }
    Ok(Published {
        cluster: files.cluster.clone(),
        run: files.run.clone(),
        date: files.date.clone(),
        run_time: files.run_time.clone(),
        publish_id: files.publish_id.clone(),
        rows: files
            .tables
            .iter()
            .map(|(t, n, _)| (t.name(), *n))
            .collect(),
        bytes: files.bytes(),
        replaced_files: replaced,
    })
}
