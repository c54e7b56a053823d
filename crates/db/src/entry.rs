//! One collection entry (`DIR/coverage/<entry>/`): fingerprint, metadata,
//! and its coverage decoded into per-process dense counter vectors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use covdata::hash::{Fnv128, HashWriter};
use covdata::{CounterFile, CounterMode, Hash};
use serde_json::Value;

use crate::labels::Labels;
use crate::layout::Layout;
use crate::merge;
use crate::owner::{self, K8sOwnerReference, OwnerRef};
use crate::textprof;

/// A meta-data file decoded once per compile run.
#[derive(Debug)]
pub struct MetaEntry {
    pub hash: Hash,
    pub layout: Layout,
    /// The bytes to store (the covmeta file, or the synthesized one).
    pub raw: Vec<u8>,
    /// `covmeta` or `text-profile`.
    pub origin: &'static str,
}

type Slot = Arc<Mutex<Option<Arc<MetaEntry>>>>;

/// Meta-data decoded in this run, by hash (replicas share one decode; a
/// failed decode is not cached, so one corrupt copy does not spoil the
/// entries that carry a good one).
#[derive(Debug, Default)]
pub struct MetaCache {
    map: Mutex<HashMap<Hash, Slot>>,
}

impl MetaCache {
    /// The decoded meta-data for `hash` when `raw` is the very content
    /// decoded (and verified) before; otherwise `f` decodes and verifies
    /// `raw` (cached only when nothing was cached for the hash yet).
    fn get_or<E>(
        &self,
        hash: Hash,
        raw: &[u8],
        f: impl FnOnce() -> Result<MetaEntry, E>,
    ) -> Result<Arc<MetaEntry>, E> {
        let slot = {
            let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(hash).or_default().clone()
        };
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(m) if m.raw == raw => Ok(m.clone()),
            Some(_) => Ok(Arc::new(f()?)),
            None => {
                let m = Arc::new(f()?);
                *guard = Some(m.clone());
                Ok(m)
            }
        }
    }
}

/// Largest meta-data file read (a very large binary has tens of MiB).
pub const MAX_META_FILE: u64 = 512 << 20;

/// Reads a meta-data file: a regular file (not a FIFO or device, which
/// could block or never end) of at most [`MAX_META_FILE`] bytes.
fn read_meta_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    // stat before open: opening a FIFO would block until a writer comes.
    let md = fs_err::metadata(path).map_err(|e| e.to_string())?;
    if !md.is_file() {
        return Err(format!("{}: not a regular file, ignored", path.display()));
    }
    let f = fs_err::File::open(path).map_err(|e| e.to_string())?;
    let md = f.metadata().map_err(|e| e.to_string())?;
    if !md.is_file() {
        return Err(format!("{}: not a regular file, ignored", path.display()));
    }
    if md.len() > MAX_META_FILE {
        return Err(format!(
            "{}: {} bytes, more than a meta-data file can be ({MAX_META_FILE}), ignored",
            path.display(),
            md.len()
        ));
    }
    let mut raw = Vec::with_capacity(md.len() as usize);
    f.take(MAX_META_FILE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    Ok(raw)
}

/// Why one file of an entry could not be used (a warning; the entry fails
/// only when no file is usable). Both kinds name the file.
#[derive(Debug, thiserror::Error)]
enum FileError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not valid Go coverage data.
    #[error(transparent)]
    Decode(#[from] covdata::Error),
}

/// What metadata.json / info.json say about an entry (with fallbacks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryInfo {
    /// The labels every report of the entry is stored with.
    pub labels: Labels,
    pub owner: Option<OwnerRef>,
    /// Identifies the pod/container (or host) instance the processes ran in.
    pub instance: String,
    /// Identifies the process beyond its PID (metadata.json `process`: pod
    /// UID and restart count, or host start ticks), empty when unknown.
    pub process_tag: String,
    /// Phase marks the collection held when the entry was first / last
    /// written (metadata.json `marks_first` / `marks_latest`; 0 if absent).
    pub marks_first: u32,
    pub marks_latest: u32,
}

/// One process's counters (latest snapshot).
#[derive(Debug, Clone)]
pub struct ProcessCounters {
    pub pid: i64,
    /// Distinguishes processes that reused a PID.
    pub seq: u32,
    pub snapshots: u32,
    pub counters: Vec<u32>,
}

/// One binary's coverage in an entry.
#[derive(Debug)]
pub struct ReportData {
    pub meta: Arc<MetaEntry>,
    /// Identity of the program that wrote this meta-data, when it differs
    /// from the entry's (an entry holding several programs' `GOCOVERDIR`
    /// data: each meta hash is named after its own counter files' `argv[0]`).
    pub info: Option<EntryInfo>,
    pub format: &'static str,
    pub processes: Vec<ProcessCounters>,
    pub total_stmts: u64,
    pub covered_stmts: u64,
    /// Snapshots kept at phase marks (`phasemark.<seq>.<hash>.<pid>`): per
    /// mark, the processes' counters added.
    pub marks: Vec<(u32, Vec<u32>)>,
}

/// Everything compile learns from one entry.
#[derive(Debug)]
pub struct EntryResult {
    pub dir_name: String,
    pub fingerprint: String,
    pub info: EntryInfo,
    pub reports: Vec<ReportData>,
    /// Set when nothing usable could be read (the entry is recorded as failed).
    pub error: Option<String>,
    pub warnings: Vec<String>,
}

/// A stat-only fingerprint: names, sizes and modification times of the
/// entry's files. Unchanged fingerprint ⇒ the entry is skipped.
pub fn fingerprint(dir: &Path) -> std::io::Result<String> {
    let mut items: Vec<(String, u64, i128)> = Vec::new();
    for e in fs_err::read_dir(dir)? {
        let e = e?;
        let md = match e.metadata() {
            Ok(m) => m,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        if !md.is_file() {
            continue;
        }
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        items.push((
            e.file_name().to_string_lossy().into_owned(),
            md.len(),
            mtime,
        ));
    }
    items.sort();
    let mut h = Fnv128::new();
    for (n, len, t) in &items {
        h.write(n.as_bytes());
        h.write(&[0]);
        h.write(&len.to_le_bytes());
        h.write(&t.to_le_bytes());
    }
    Ok(covdata::hex(&h.finish()))
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Largest metadata.json / info.json read.
pub const MAX_JSON_FILE: u64 = 16 << 20;
/// Largest counter file or text profile read.
pub const MAX_DATA_FILE: u64 = 512 << 20;

fn read_json(path: &Path, warnings: &mut Vec<String>) -> Option<Value> {
    match crate::regular::read_regular(path, MAX_JSON_FILE) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(v) => Some(v),
            Err(e) => {
                warnings.push(format!("{}: not valid JSON: {e}", path.display()));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    }
}

/// Reads metadata.json and info.json (binary name may still be empty).
pub fn read_info(dir: &Path, warnings: &mut Vec<String>) -> EntryInfo {
    let md = read_json(&dir.join("metadata.json"), warnings).unwrap_or(Value::Null);
    let info = read_json(&dir.join("info.json"), warnings).unwrap_or(Value::Null);
    let container = md.get("container").cloned().unwrap_or(Value::Null);
    let labels = Labels {
        namespace: s(&md, "namespace"),
        pod_name: s(&md, "pod_name"),
        container_name: match s(&container, "name") {
            n if n.is_empty() => s(&md, "container_name"),
            n => n,
        },
        image: match s(&container, "image") {
            n if n.is_empty() => s(&md, "image"),
            n => n,
        },
        binary_name: match s(&md, "binary_name") {
            n if n.is_empty() => s(&info, "binary"),
            n => n,
        },
        hostname: s(&md, "hostname"),
        host_process: md
            .get("host_process")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        collected_at: s(&md, "collected_at"),
        source_url: Some(s(&info, "source_url")).filter(|x| !x.is_empty()),
        source_commit: Some(s(&info, "source_commit")).filter(|x| !x.is_empty()),
    };
    let mut e = EntryInfo {
        labels,
        owner: None,
        instance: String::new(),
        process_tag: match md.get("process") {
            Some(Value::Object(m)) => {
                let mut kv: Vec<String> = m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                kv.sort();
                kv.join(";")
            }
            _ => String::new(),
        },
        marks_first: mark_count(&md, "marks_first"),
        marks_latest: mark_count(&md, "marks_latest"),
    };
    let refs = md
        .get("owner_references")
        .or_else(|| md.get("ownerReferences"));
    if let Some(refs) = refs
        && let Ok(refs) = serde_json::from_value::<Vec<K8sOwnerReference>>(refs.clone())
    {
        e.owner = owner::from_owner_references(&refs);
        if let Some(o) = &mut e.owner
            && o.kind == "StaticPod"
        {
            let by_name = owner::from_pod_name(&e.labels.pod_name, &e.labels.hostname);
            o.name = if by_name.kind == "StaticPod" {
                by_name.name
            } else {
                e.labels.pod_name.clone()
            };
        }
    }
    if e.labels.namespace == "_host_" || e.labels.pod_name.is_empty() {
        e.labels.host_process = true;
    }
    e
}

fn mark_count(md: &Value, k: &str) -> u32 {
    md.get(k)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Parses `phasemark.<seq>.<hash>.<pid>` (a snapshot kept at a phase mark).
fn mark_name(name: &str) -> Option<(u32, Hash, i64)> {
    let rest = name.strip_prefix("phasemark.")?;
    let mut it = rest.split('.');
    let seq = it.next()?.parse().ok()?;
    let h = covdata::parse_hex(it.next()?)?;
    let pid = it.next()?.parse().ok()?;
    it.next().is_none().then_some((seq, h, pid))
}

/// Parses `covcounters.<hash>.<pid>.<n>` (None for other names).
fn counter_name(name: &str) -> Option<(Hash, i64, u64)> {
    let rest = name.strip_prefix("covcounters.")?;
    let mut it = rest.split('.');
    let h = covdata::parse_hex(it.next()?)?;
    let pid = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    it.next().is_none().then_some((h, pid, n))
}

fn is_text_profile_name(name: &str) -> bool {
    name.ends_with(".out") || name.ends_with(".coverprofile")
}

/// The coverage files of an entry directory, sorted by kind.
#[derive(Debug, Default)]
struct Listing {
    /// `covmeta.<hash>` files.
    metas: BTreeMap<Hash, PathBuf>,
    /// `covcounters.<hash>.<pid>.<n>` files by (hash, pid), with their `n`.
    counters: BTreeMap<(Hash, i64), Vec<(u64, PathBuf)>>,
    /// Legacy text profiles (`*.out`, `*.coverprofile`).
    texts: Vec<PathBuf>,
    /// `phasemark.<seq>.<hash>.<pid>` files by hash: (seq, file).
    marks: BTreeMap<Hash, Vec<(u32, PathBuf)>>,
}

/// Decodes one entry directory: lists its files, decodes the binary data
/// (or, without any, the text profiles), then completes the labels.
pub fn process(dir: &Path, dir_name: &str, fingerprint: String, cache: &MetaCache) -> EntryResult {
    let mut warnings = Vec::new();
    let mut info = read_info(dir, &mut warnings);
    let mut result = EntryResult {
        dir_name: dir_name.to_string(),
        fingerprint,
        info: EntryInfo::default(),
        reports: Vec::new(),
        error: None,
        warnings: Vec::new(),
    };
    let listing = match list_files(dir, &mut warnings) {
        Ok(l) => l,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    let mut argv0 = String::new();
    // argv[0] of each meta hash's counter files (the program that wrote it).
    let mut names: BTreeMap<Hash, String> = BTreeMap::new();
    if !listing.metas.is_empty() {
        result.reports = binary_reports(&listing, cache, &mut argv0, &mut names, &mut warnings);
    } else if !listing.texts.is_empty() {
        result.reports = text_reports(&listing.texts, cache, &mut warnings);
    }
    if info.labels.binary_name.is_empty() {
        info.labels.binary_name = if argv0.is_empty() {
            dir_name.to_string()
        } else {
            program_name(&argv0)
        };
    }
    if listing.metas.len() > 1 {
        // Several programs in one entry: each report is named after the
        // program whose counter files carry its meta hash.
        for rep in &mut result.reports {
            if let Some(name) = names.get(&rep.meta.hash)
                && *name != info.labels.binary_name
            {
                let mut ri = info.clone();
                ri.labels.binary_name = name.clone();
                finish_info(&mut ri, dir_name);
                rep.info = Some(ri);
            }
        }
    }
    finish_info(&mut info, dir_name);
    if result.reports.is_empty() {
        result.error = Some(if warnings.is_empty() {
            "no coverage data (no covmeta.* or mode: text profile)".to_string()
        } else {
            warnings.join("; ")
        });
    }
    result.info = info;
    result.warnings = warnings;
    result
}

/// The program name in an `argv[0]`: its last path component.
fn program_name(argv0: &str) -> String {
    argv0.rsplit('/').next().unwrap_or(argv0).to_string()
}

/// Sorts the entry's files by kind; badly named coverage files are warnings.
fn list_files(dir: &Path, warnings: &mut Vec<String>) -> std::io::Result<Listing> {
    let mut l = Listing::default();
    for e in fs_err::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if let Some(h) = name.strip_prefix("covmeta.") {
            match covdata::parse_hex(h) {
                Some(h) => {
                    l.metas.insert(h, path);
                }
                None => warnings.push(format!(
                    "{}: not a covmeta.<hash> name, ignored",
                    path.display()
                )),
            }
        } else if let Some((seq, h, _pid)) = mark_name(&name) {
            l.marks.entry(h).or_default().push((seq, path));
        } else if let Some((h, pid, n)) = counter_name(&name) {
            l.counters.entry((h, pid)).or_default().push((n, path));
        } else if name.starts_with("covcounters.") {
            warnings.push(format!(
                "{}: not a covcounters.<hash>.<pid>.<n> name, ignored",
                path.display()
            ));
        } else if is_text_profile_name(&name) {
            l.texts.push(path);
        }
    }
    Ok(l)
}

/// One report per meta-data file: the latest snapshot of each process whose
/// counters belong to it. Sets `argv0` from the first counter file and
/// `names` to each meta hash's program (from its own counter files).
fn binary_reports(
    l: &Listing,
    cache: &MetaCache,
    argv0: &mut String,
    names: &mut BTreeMap<Hash, String>,
    warnings: &mut Vec<String>,
) -> Vec<ReportData> {
    let mut reports = Vec::new();
    for (hash, mpath) in &l.metas {
        let mut counters = l.counters.range((*hash, i64::MIN)..=(*hash, i64::MAX));
        if l.metas.len() > 1 && counters.next().is_none() {
            // Several programs wrote here and this one left no counters (it
            // never exited normally): which program it is cannot be told,
            // and a 0% row under another program's name would count its
            // statements a second time.
            warnings.push(format!(
                "{}: no counter data in an entry holding several programs, ignored",
                mpath.display()
            ));
            continue;
        }
        // Every entry's own file is read and must be the content its hash
        // names: a copy under another binary's hash with altered content is
        // this entry's error, never that binary's data.
        let raw = match read_meta_file(mpath) {
            Ok(raw) => raw,
            Err(e) => {
                warnings.push(e);
                continue;
            }
        };
        let meta = match cache.get_or(*hash, &raw, || {
            let (m, _) = covdata::hash::verify_meta(&raw)
                .map_err(|e| format!("{}: {e}", mpath.display()))?;
            if m.hash != *hash {
                return Err(format!(
                    "{}: its content is meta-data {}, not the hash in its name",
                    mpath.display(),
                    covdata::hex(&m.hash)
                ));
            }
            Ok(MetaEntry {
                hash: *hash,
                layout: Layout::new(&m),
                raw: raw.clone(),
                origin: "covmeta",
            })
        }) {
            Ok(m) => m,
            Err(e) => {
                warnings.push(e.to_string());
                continue;
            }
        };
        let mut processes = Vec::new();
        let mut program = String::new();
        for ((_, pid), files) in l.counters.range((*hash, i64::MIN)..=(*hash, i64::MAX)) {
            let snaps = decode_snapshots(&meta, files, &mut program, warnings);
            for (seq, (c, n)) in merge::latest_per_process(snaps).into_iter().enumerate() {
                processes.push(ProcessCounters {
                    pid: *pid,
                    seq: seq as u32,
                    snapshots: n,
                    counters: c,
                });
            }
        }
        if !program.is_empty() {
            if argv0.is_empty() {
                *argv0 = program.clone();
            }
            names.insert(*hash, program_name(&program));
        }
        let mut rep = finish_report(meta, "binary", processes);
        if let Some(files) = l.marks.get(hash) {
            rep.marks = decode_marks(&rep.meta, files, warnings);
        }
        reports.push(rep);
    }
    for ((h, _), files) in &l.counters {
        if !l.metas.contains_key(h) {
            warnings.push(format!(
                "{}: counter data without covmeta.{} in the entry, ignored",
                files[0].1.display(),
                covdata::hex(h)
            ));
        }
    }
    reports
}

/// The snapshots kept at phase marks: per mark, the processes' counters
/// added (an entry holds one process; a copy that does not decode is a
/// warning and leaves the mark out).
fn decode_marks(
    meta: &MetaEntry,
    files: &[(u32, PathBuf)],
    warnings: &mut Vec<String>,
) -> Vec<(u32, Vec<u32>)> {
    let mut by_seq: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut unused = String::new();
    for (seq, path) in files {
        for (c, _) in decode_snapshots(
            meta,
            std::slice::from_ref(&(0, path.clone())),
            &mut unused,
            warnings,
        ) {
            let acc = by_seq
                .entry(*seq)
                .or_insert_with(|| vec![0; meta.layout.len()]);
            merge::add_into(acc, &c, meta.layout.mode);
        }
    }
    by_seq.into_iter().collect()
}

/// The counter files of one process, each scattered into a dense vector in
/// the meta-data's order.
fn decode_snapshots(
    meta: &MetaEntry,
    files: &[(u64, PathBuf)],
    argv0: &mut String,
    warnings: &mut Vec<String>,
) -> Vec<(Vec<u32>, u32)> {
    let mut snaps = Vec::new();
    for (_, cpath) in files {
        let decoded = crate::regular::read_regular(cpath, MAX_DATA_FILE)
            .map_err(FileError::from)
            .and_then(|b| CounterFile::decode(&b).map_err(|e| FileError::from(e.with_path(cpath))));
        match decoded {
            Ok(cf) => {
                if argv0.is_empty()
                    && let Some(a) = cf.os_args.first().filter(|a| !a.is_empty())
                {
                    *argv0 = a.clone();
                }
                let mut dense = vec![0u32; meta.layout.len()];
                let skipped = meta.layout.scatter(&cf.funcs, &mut dense);
                if skipped > 0 {
                    warnings.push(format!(
                        "{}: {skipped} function records not in covmeta.{}, ignored",
                        cpath.display(),
                        covdata::hex(&meta.hash)
                    ));
                }
                snaps.push((dense, 1u32));
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    snaps
}

/// Text profiles are only used when there is no binary data (a cached text
/// file may be stale). `coverage.out` wins when present; otherwise all are
/// merged into one report.
fn text_reports(
    texts: &[PathBuf],
    cache: &MetaCache,
    warnings: &mut Vec<String>,
) -> Vec<ReportData> {
    let chosen: Vec<_> = match texts
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "coverage.out"))
    {
        Some(p) => vec![p.clone()],
        None => texts.to_vec(),
    };
    let mut loaded = Vec::new();
    for p in &chosen {
        match crate::regular::read_regular(p, MAX_DATA_FILE).and_then(|b| {
            String::from_utf8(b).map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))
        }) {
            Ok(t) if t.starts_with("mode:") => loaded.push((p.display().to_string(), t)),
            Ok(_) => {}
            Err(e) => warnings.push(e.to_string()),
        }
    }
    if loaded.is_empty() {
        return Vec::new();
    }
    let refs: Vec<(&str, &str)> = loaded
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let tp = match textprof::parse(&refs) {
        Ok(tp) => tp,
        Err(e) => {
            warnings.push(crate::error::chain(&e));
            return Vec::new();
        }
    };
    let hash = tp.meta.hash;
    let raw = tp.meta.encode();
    let meta = cache.get_or(hash, &raw, || {
        Ok::<_, std::convert::Infallible>(MetaEntry {
            hash,
            layout: Layout::new(&tp.meta),
            raw: raw.clone(),
            origin: "text-profile",
        })
    });
    let meta = match meta {
        Ok(meta) => meta,
        Err(never) => match never {},
    };
    let p = ProcessCounters {
        pid: 0,
        seq: 0,
        snapshots: 1,
        counters: tp.counters,
    };
    vec![finish_report(meta, "text", vec![p])]
}

/// Owner and instance identity, once the binary name is known.
pub fn finish_info(info: &mut EntryInfo, dir_name: &str) {
    if info.labels.host_process {
        if info.labels.namespace.is_empty() {
            info.labels.namespace = "_host_".into();
        }
        if info.owner.is_none() {
            info.owner = Some(OwnerRef {
                kind: "Host".into(),
                name: info.labels.binary_name.clone(),
            });
        }
        info.instance = format!(
            "host/{}/{}",
            if info.labels.hostname.is_empty() {
                dir_name
            } else {
                &info.labels.hostname
            },
            info.labels.binary_name
        );
    } else {
        if info.owner.is_none() {
            info.owner = Some(owner::from_pod_name(
                &info.labels.pod_name,
                &info.labels.hostname,
            ));
        }
        info.instance = format!(
            "pod/{}/{}/{}",
            info.labels.namespace, info.labels.pod_name, info.labels.container_name
        );
    }
}

fn finish_report(
    meta: Arc<MetaEntry>,
    format: &'static str,
    processes: Vec<ProcessCounters>,
) -> ReportData {
    let mut sum = vec![0u32; meta.layout.len()];
    let mode: CounterMode = meta.layout.mode;
    for p in &processes {
        merge::add_into(&mut sum, &p.counters, mode);
    }
    let (total, covered) = meta.layout.stmt_totals(&sum);
    ReportData {
        meta,
        info: None,
        format,
        processes,
        total_stmts: total,
        covered_stmts: covered,
        marks: Vec::new(),
    }
}
