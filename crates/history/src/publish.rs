//! One run of a compiled database as Parquet files, and publishing them:
//! data files first, the manifest (`runs`) last, then the files of any
//! earlier publish of the same run are deleted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringDictionaryBuilder,
    TimestampMillisecondBuilder,
};
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

    // owners
    let mut ok = KeyCols::default();
    let (mut o_mode, mut o_module, mut o_repo, mut o_commit, mut o_images) = (
        Dict::new(),
        Dict::new(),
        Dict::new(),
        Dict::new(),
        Dict::new(),
    );
    let mut o_nums: [Int64Builder; 5] = Default::default();
    // files
    let mut fk = KeyCols::default();
    let (mut f_repo, mut f_module, mut f_pkg, mut f_file) =
        (Dict::new(), Dict::new(), Dict::new(), Dict::new());
    let mut f_nums: [Int64Builder; 4] = Default::default();
    // functions
    let mut nk = KeyCols::default();
    let (mut n_repo, mut n_module, mut n_pkg, mut n_file, mut n_func) = (
        Dict::new(),
        Dict::new(),
        Dict::new(),
        Dict::new(),
        Dict::new(),
    );
    let mut n_i32: [Int32Builder; 4] = Default::default();
    let mut n_i64: [Int64Builder; 3] = Default::default();
    // blocks
    let mut bk = KeyCols::default();
    let (mut b_module, mut b_pkg, mut b_file, mut b_func) =
        (Dict::new(), Dict::new(), Dict::new(), Dict::new());
    let mut b_i32: [Int32Builder; 6] = Default::default();
    let mut b_count = Int64Builder::new();

    let (mut run_total, mut run_covered) = (0i64, 0i64);
    for o in &owners {
        let repository = o
            .source_url
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| o.module_path.clone());
        ok.push(pid, o);
        o_mode.append_value(&o.mode);
        o_module.append_value(&o.module_path);
        o_repo.append_value(&repository);
        o_commit.append_option(o.source_commit.as_deref());
        o_images.append_value(o.images.join("\n"));
        for (b, v) in o_nums.iter_mut().zip([
            o.instance_count,
            o.process_count,
            o.file_count,
            o.total_stmts,
            o.covered_stmts,
        ]) {
            b.append_value(v);
        }
        run_total += o.total_stmts;
        run_covered += o.covered_stmts;

        let (meta, counters) = database.owner_meta(o.id).map_err(dbe(path))?;
        // Per file of this owner, in first-seen order: (package, functions,
        // blocks, total, covered).
        let mut files: Vec<(&str, &str, i64, i64, i64, i64)> = Vec::new();
        let mut file_ix: HashMap<&str, usize> = HashMap::new();
        let mut unit = 0usize;
        for p in &meta.packages {
            for f in &p.funcs {
                let first = unit;
                unit += f.units.len();
                if db::is_injected_file(&f.file) {
                    continue;
                }
                let counts = counters.get(first..unit).unwrap_or(&[]);
                let (mut total, mut covered, mut cblocks, mut maxc) = (0i64, 0i64, 0i32, 0i64);
                let (mut st, mut en) = (u32::MAX, 0u32);
                for (bi, (u, &c)) in f.units.iter().zip(counts).enumerate() {
                    total += i64::from(u.stmts);
                    if c > 0 {
                        covered += i64::from(u.stmts);
                        cblocks += 1;
                    }
                    maxc = maxc.max(i64::from(c));
                    st = st.min(u.st_line);
                    en = en.max(u.en_line);
                    bk.push(pid, o);
                    b_module.append_value(&p.module_path);
                    b_pkg.append_value(&p.path);
                    b_file.append_value(&f.file);
                    b_func.append_value(&f.name);
                    for (b, v) in b_i32.iter_mut().zip([
                        i32::try_from(bi).unwrap_or(i32::MAX),
                        to_i32(u.st_line),
                        to_i32(u.st_col),
                        to_i32(u.en_line),
                        to_i32(u.en_col),
                        to_i32(u.stmts),
                    ]) {
                        b.append_value(v);
                    }
                    b_count.append_value(i64::from(c));
                }
                if st == u32::MAX {
                    st = 0;
                }
                nk.push(pid, o);
                n_repo.append_value(&repository);
                n_module.append_value(&p.module_path);
                n_pkg.append_value(&p.path);
                n_file.append_value(&f.file);
                n_func.append_value(&f.name);
                let nblocks = i32::try_from(f.units.len()).unwrap_or(i32::MAX);
                for (b, v) in n_i32
                    .iter_mut()
                    .zip([to_i32(st), to_i32(en), nblocks, cblocks])
                {
                    b.append_value(v);
                }
                for (b, v) in n_i64.iter_mut().zip([total, covered, maxc]) {
                    b.append_value(v);
                }
                let ix = *file_ix.entry(f.file.as_str()).or_insert_with(|| {
                    files.push((p.path.as_str(), f.file.as_str(), 0, 0, 0, 0));
                    files.len() - 1
                });
                let e = &mut files[ix];
                e.2 += 1;
                e.3 += i64::from(nblocks);
                e.4 += total;
                e.5 += covered;
            }
        }
        for (pkg, file, nf, nb, total, covered) in files {
            fk.push(pid, o);
            f_repo.append_value(&repository);
            f_module.append_value(meta_module(&meta, pkg));
            f_pkg.append_value(pkg);
            f_file.append_value(file);
            for (b, v) in f_nums.iter_mut().zip([nf, nb, total, covered]) {
                b.append_value(v);
            }
        }
    }

    let mut cols = ok.finish();
    cols.extend([
        Arc::new(o_mode.finish()) as ArrayRef,
        Arc::new(o_module.finish()),
        Arc::new(o_repo.finish()),
        Arc::new(o_commit.finish()),
        Arc::new(o_images.finish()),
    ]);
    cols.extend(o_nums.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    let owners_b = batch(Table::Owners, cols)?;

    let mut cols = fk.finish();
    for d in [&mut f_repo, &mut f_module, &mut f_pkg, &mut f_file] {
        cols.push(Arc::new(d.finish()));
    }
    cols.extend(f_nums.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    let files_b = batch(Table::Files, cols)?;

    let mut cols = nk.finish();
    for d in [
        &mut n_repo,
        &mut n_module,
        &mut n_pkg,
        &mut n_file,
        &mut n_func,
    ] {
        cols.push(Arc::new(d.finish()));
    }
    cols.extend(n_i32.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.extend(n_i64.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    let funcs_b = batch(Table::Functions, cols)?;

    let mut cols = bk.finish();
    for d in [&mut b_module, &mut b_pkg, &mut b_file, &mut b_func] {
        cols.push(Arc::new(d.finish()));
    }
    cols.extend(b_i32.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.push(Arc::new(b_count.finish()));
    let blocks_b = batch(Table::Blocks, cols)?;

    let mut r_pid = Dict::new();
    r_pid.append_value(pid);
    let mut r_ver = Int32Builder::new();
    r_ver.append_value(LAYOUT_VERSION);
    let mut r_time = TimestampMillisecondBuilder::new().with_timezone("UTC");
    r_time.append_value(ms_of(time));
    let mut r_pub = TimestampMillisecondBuilder::new().with_timezone("UTC");
    r_pub.append_value(now_ms);
    let mut r_ver_s = Dict::new();
    r_ver_s.append_value(env!("CARGO_PKG_VERSION"));
    let mut r_nums: [Int64Builder; 3] = Default::default();
    for (b, v) in r_nums
        .iter_mut()
        .zip([owners.len() as i64, run_total, run_covered])
    {
        b.append_value(v);
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(r_pid.finish()),
        Arc::new(r_ver.finish()),
        Arc::new(r_time.finish()),
        Arc::new(r_pub.finish()),
        Arc::new(r_ver_s.finish()),
    ];
    cols.extend(r_nums.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    let runs_b = batch(Table::Runs, cols)?;

    let mut tables = Vec::new();
    for (t, b) in [
        (Table::Owners, &owners_b),
        (Table::Files, &files_b),
        (Table::Functions, &funcs_b),
        (Table::Blocks, &blocks_b),
        (Table::Runs, &runs_b),
    ] {
        tables.push((t, b.num_rows(), encode(t, b)?));
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
    for t in [
        Table::Runs,
        Table::Owners,
        Table::Files,
        Table::Functions,
        Table::Blocks,
    ] {
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
