//! The `go tool covdata` subcommands, reproduced: same inputs, same stdout,
//! same warnings and errors on stderr, same exit codes.
//!
//! Deliberate differences from Go (all on malformed input or Go crashes):
//! where Go panics (index out of range, nil map, "decreasing dir index"),
//! covfleet prints a clear `error:` line and exits 1; the rest of the run is
//! the same.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::counters::CounterFile;
use crate::gostr::to_go_bytes;
use crate::hash::{Fnv128, HashWriter, fnv128};
use crate::merge::{MergeMode, Merger};
use crate::meta::{BlobSpan, FuncDesc, MetaFile, PackageMeta};
use crate::pods::{Pod, collect_pods, go_errno_text, go_join};
use crate::report::Formatter;
use crate::{Hash, hex};

/// A run that stopped: print `stderr` verbatim, exit with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub stderr: String,
}

type Res<T> = Result<T, Failure>;

/// `fatal(...)` in cmd/covdata: `error: msg`, exit 1.
fn fatal(msg: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        stderr: format!("error: {msg}\n"),
    }
}

/// An error returned by the covdata reader, printed by main with a second prefix.
fn reader_fatal(msg: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        stderr: format!("error: error: {msg}\n\n"),
    }
}

/// Matches Go package patterns as `cmd/internal/pkgpattern.MatchSimplePattern`:
/// `...` matches any string; `x/...` also matches `x`.
#[derive(Debug, Clone)]
pub struct PkgFilter {
    patterns: Vec<regex_lite::Pattern>,
}

mod regex_lite {
    /// A pattern split on `...`, matched anchored.
    #[derive(Debug, Clone)]
    pub struct Pattern {
        parts: Vec<String>,
        slash_dots_suffix: Option<String>,
    }

    impl Pattern {
        pub fn new(p: &str) -> Self {
            let slash_dots_suffix = p.strip_suffix("/...").map(str::to_string);
            Pattern {
                parts: p.split("...").map(str::to_string).collect(),
                slash_dots_suffix,
            }
        }

        pub fn matches(&self, s: &str) -> bool {
            if let Some(prefix) = &self.slash_dots_suffix
                && s == prefix
            {
                return true;
            }
            glob(&self.parts, s)
        }
    }

    fn glob(parts: &[String], s: &str) -> bool {
        match parts {
            [] => s.is_empty(),
            [only] => s == only,
            [first, rest @ ..] => {
                let Some(mut s) = s.strip_prefix(first.as_str()) else {
                    return false;
                };
                let (last, middle) = rest
                    .split_last()
                    .map(|(l, m)| (l.as_str(), m))
                    .unwrap_or(("", &[]));
                for m in middle {
                    match s.find(m.as_str()) {
                        Some(i) => s = &s[i + m.len()..],
                        None => return false,
                    }
                }
                s.ends_with(last)
            }
        }
    }
}

impl PkgFilter {
    /// Parses a comma-separated pattern list (empty elements ignored).
    pub fn new(spec: &str) -> Self {
        PkgFilter {
            patterns: spec
                .split(',')
                .filter(|p| !p.is_empty())
                .map(regex_lite::Pattern::new)
                .collect(),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(path))
    }
}

/// Which report a dump-family run produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpKind {
    Textfmt,
    Percent,
    Func,
    Pkglist,
    Debugdump { live: bool },
}

/// What a dump run produced.
#[derive(Debug, Default)]
pub struct DumpOutput {
    pub stdout: Vec<u8>,
    /// The textfmt profile (`textfmt`, or `percent -o`), when produced.
    pub textfmt: Option<Vec<u8>>,
}

struct LoadedPod {
    meta: MetaFile,
    raw: Vec<u8>,
    spans: Vec<BlobSpan>,
}

fn read_file(path: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

fn load_meta(pod: &Pod) -> Res<LoadedPod> {
    let raw = read_file(&pod.meta_file)
        .map_err(|_| reader_fatal(format!("unable to open meta-file {}", pod.meta_file)))?;
    let (meta, spans) = MetaFile::decode_header(&raw)
        .map_err(|e| reader_fatal(format!("decoding meta-file {}: {}", pod.meta_file, e.kind)))?;
    Ok(LoadedPod { meta, raw, spans })
}

impl LoadedPod {
    fn decode_packages(&mut self, file: &str) -> Res<()> {
        for (i, s) in self.spans.iter().enumerate() {
            let p = s
                .slice(&self.raw)
                .and_then(PackageMeta::decode)
                .map_err(|e| {
                    fatal(format!(
                        "reading pkg {i} from meta-file {file}: {}{}",
                        e.kind,
                        e.offset
                            .map(|o| format!(" (at offset {})", o + s.offset as u64))
                            .unwrap_or_default()
                    ))
                })?;
            self.meta.packages.push(p);
        }
        Ok(())
    }

    fn blob(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.raw[s.offset..s.offset + s.len]
    }
}

fn load_counters(path: &str) -> Res<CounterFile> {
    let raw = read_file(path).map_err(|e| {
        reader_fatal(format!(
            "opening counter data file {path}: open {path}: {}",
            go_errno_text(&e)
        ))
    })?;
    CounterFile::decode(&raw).map_err(|e| {
        let at = e
            .offset
            .map(|o| format!(" (at offset {o})"))
            .unwrap_or_default();
        reader_fatal(format!("reading counter data file {path}: {}{at}", e.kind))
    })
}

/// Reads and decodes a pod's counter files on all cores, in order.
fn load_all_counters(paths: &[String]) -> Vec<Res<CounterFile>> {
    use rayon::prelude::*;
    if paths.len() < 4 {
        return paths.iter().map(|p| load_counters(p)).collect();
    }
    paths.par_iter().map(|p| load_counters(p)).collect()
}

fn collect(dirs: &[String], warn: &mut dyn Write) -> Res<Vec<Pod>> {
    let pods = collect_pods(dirs).map_err(|e| Failure {
        code: 1,
        stderr: format!("error: reading inputs: {e}\n"),
    })?;
    if pods.is_empty() {
        let _ = writeln!(
            warn,
            "warning: no applicable files found in input directories"
        );
    }
    Ok(pods)
}

/// Appends strings with their original (Go) bytes.
fn put(out: &mut Vec<u8>, parts: &[&str]) {
    for p in parts {
        out.extend_from_slice(&to_go_bytes(p));
    }
}

fn go_slice(args: &[String]) -> String {
    format!("[{}]", args.join(" "))
}

/// Runs `textfmt`, `percent`, `func`, `pkglist` or `debugdump` over `dirs`.
/// Warnings go to `warn` as they happen; stdout is returned.
pub fn dump(
    kind: DumpKind,
    dirs: &[String],
    filter: Option<&PkgFilter>,
    want_textfmt: bool,
    warn: &mut dyn Write,
    stdout: &mut Vec<u8>,
) -> Res<Option<Vec<u8>>> {
    let policy = match kind {
        DumpKind::Percent | DumpKind::Func | DumpKind::Pkglist => MergeMode::Relaxed,
        _ => MergeMode::Strict,
    };
    let mut merger = Merger::new(policy);
    let mut fmt: Option<Formatter> = None;
    let mut first_meta = String::new();
    let mut pkgpaths: std::collections::BTreeSet<String> = Default::default();
    let (mut total, mut covered) = (0i64, 0i64);
    for pod in collect(dirs, warn)? {
        let mut lp = load_meta(&pod)?;
        let (mode, gran) = (lp.meta.mode, lp.meta.granularity);
        merger
            .set_mode_and_granularity(&pod.meta_file, mode, gran)
            .map_err(fatal)?;
        if let DumpKind::Debugdump { .. } = kind {
            let _ = writeln!(stdout, "Cover mode: {mode}\nCover granularity: {gran}");
        }
        if fmt.is_none() {
            fmt = Some(Formatter::new(mode));
            first_meta = pod.meta_file.clone();
        }
        lp.decode_packages(&pod.meta_file)?;
        let nf: Vec<u32> = lp
            .meta
            .packages
            .iter()
            .map(|p| p.funcs.len() as u32)
            .collect();
        let mut acc: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
        for (cf_path, cf) in pod
            .counter_files
            .iter()
            .zip(load_all_counters(&pod.counter_files))
        {
            let cf = cf?;
            if let DumpKind::Debugdump { .. } = kind {
                let _ = write!(stdout, "data file {cf_path}");
                if !cf.goos.is_empty() {
                    put(stdout, &[" GOOS=", &cf.goos]);
                }
                if !cf.goarch.is_empty() {
                    put(stdout, &[" GOARCH=", &cf.goarch]);
                }
                if !cf.os_args.is_empty() {
                    put(stdout, &["  program args: ", &go_slice(&cf.os_args), "\n"]);
                }
                let _ = writeln!(stdout);
            }
            for f in cf.funcs {
                let n = nf.get(f.pkg as usize).copied();
                if n.is_none_or(|n| f.func > n) {
                    let _ = writeln!(
                        warn,
                        "warning: func payload inconsistency: id [p={},f={}] nf={} len(ctrs)={} in VisitFuncCounterData, ignored",
                        f.pkg,
                        f.func,
                        n.unwrap_or(0),
                        f.counters.len()
                    );
                    continue;
                }
                let slot = acc.entry((f.pkg, f.func)).or_default();
                if slot.len() < f.counters.len() {
                    slot.resize(f.counters.len(), 0);
                }
                if merger.merge_counters(slot, &f.counters).map_err(fatal)? {
                    let _ = writeln!(warn, "warning: uint32 overflow during counter merge");
                }
            }
        }
        let fm = fmt.as_mut().expect("formatter set above");
        for (pi, p) in lp.meta.packages.iter().enumerate() {
            if filter.is_some_and(|f| !f.matches(&p.path)) {
                continue;
            }
            let mut preamble = false;
            if kind == DumpKind::Pkglist {
                pkgpaths.insert(p.path.clone());
            }
            fm.set_package(&p.path);
            for (fi, fd) in p.funcs.iter().enumerate() {
                // A record with no counters leaves Go's slice nil: read as zeros.
                let found = acc.get(&(pi as u32, fi as u32));
                let counters = found.filter(|c| !c.is_empty());
                let show = match kind {
                    DumpKind::Debugdump { live } => !(live && found.is_none()),
                    _ => false,
                };
                if show {
                    if !preamble {
                        put(
                            stdout,
                            &["\nPackage path: ", &p.path, "\nPackage name: ", &p.name],
                        );
                        put(stdout, &["\nModule path: ", &p.module_path, "\n"]);
                        preamble = true;
                    }
                    put(
                        stdout,
                        &["\nFunc: ", &fd.name, "\nSrcfile: ", &fd.file, "\n"],
                    );
                    let _ = writeln!(stdout, "Literal: {}", fd.literal);
                }
                if let Some(c) = counters
                    && c.len() < fd.units.len()
                {
                    return Err(fatal(format!(
                        "counter data for function {} (package {}, meta-file {}) has {} counters for {} units",
                        fd.name,
                        p.path,
                        pod.meta_file,
                        c.len(),
                        fd.units.len()
                    )));
                }
                for (i, u) in fd.units.iter().enumerate() {
                    let count = counters.map_or(0, |c| c[i]);
                    fm.add_unit(&fd.file, &fd.name, fd.literal, *u, count);
                    if show {
                        let _ = writeln!(
                            stdout,
                            "{i}: L{}:C{} -- L{}:C{} NS={} = {count}",
                            u.st_line, u.st_col, u.en_line, u.en_col, u.stmts
                        );
                    }
                    total += i64::from(u.stmts);
                    if count != 0 {
                        covered += i64::from(u.stmts);
                    }
                }
            }
        }
        if let DumpKind::Debugdump { .. } = kind {
            merger.reset();
        }
    }
    let mut textfmt = None;
    if let Some(fm) = &fmt {
        if matches!(kind, DumpKind::Textfmt | DumpKind::Func) && fm.mode().0 == 0 {
            return Err(fatal(format!(
                "meta-data file {} has no counter mode (0); go tool covdata panics on it (\"internal error, counter mode unset\")",
                first_meta
            )));
        }
        match kind {
            DumpKind::Percent => {
                let _ = fm.emit_percent(stdout);
            }
            DumpKind::Func => {
                let _ = fm.emit_funcs(stdout);
            }
            _ => {}
        }
        if want_textfmt {
            let mut t = Vec::new();
            let _ = fm.emit_textual(&mut t);
            textfmt = Some(t);
        }
    }
    if let DumpKind::Debugdump { .. } = kind {
        let _ = writeln!(stdout, "totalStmts: {total} coveredStmts: {covered}");
    }
    if kind == DumpKind::Pkglist {
        let mut paths: Vec<Vec<u8>> = pkgpaths
            .iter()
            .map(|p| to_go_bytes(p).into_owned())
            .collect();
        paths.sort();
        for p in paths {
            stdout.extend_from_slice(&p);
            stdout.push(b'\n');
        }
    }
    Ok(textfmt)
}

/// Which of the merge family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    Merge { pcombine: bool },
    Subtract,
    Intersect,
}

struct PkState {
    idx: u32,
    ctab: BTreeMap<u32, Vec<u32>>,
    blob: Vec<u8>,
    combined: Option<(PackageMeta, HashMap<Hash, u32>)>,
}

#[derive(Default)]
struct ArgState {
    init: bool,
    os_args: Option<Vec<String>>,
    goos: String,
    goarch: String,
}

impl ArgState {
    fn merge(&mut self, cf: &CounterFile) {
        if !self.init {
            self.init = true;
            self.os_args = Some(cf.os_args.clone());
            self.goos = cf.goos.clone();
            self.goarch = cf.goarch.clone();
            return;
        }
        if self.os_args.as_deref() != Some(&cf.os_args[..]) {
            self.os_args = None;
        }
        if self.goos != cf.goos {
            self.goos.clear();
        }
        if self.goarch != cf.goarch {
            self.goarch.clear();
        }
    }

    fn summary(&self) -> Vec<(String, String)> {
        let os_args = self.os_args.clone().unwrap_or_default();
        let mut args = Vec::new();
        if !os_args.is_empty() {
            args.push(("argc".to_string(), os_args.len().to_string()));
            for (i, a) in os_args.iter().enumerate() {
                args.push((format!("argv{i}"), a.clone()));
            }
        }
        if !self.goos.is_empty() {
            args.push(("GOOS".into(), self.goos.clone()));
        }
        if !self.goarch.is_empty() {
            args.push(("GOARCH".into(), self.goarch.clone()));
        }
        args.sort();
        args
    }
}

/// State of `metaMerge` in cmd/covdata.
struct MetaMerge {
    merger: Merger,
    pkgs: Vec<PkState>,
    pkm: HashMap<String, usize>,
    args: ArgState,
    outdir: String,
    files_written: Vec<String>,
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl MetaMerge {
    fn write(&mut self, name: &str, data: &[u8]) -> Res<()> {
        let path = go_join(&self.outdir, name);
        std::fs::write(&path, data).map_err(|e| {
            fatal(format!(
                "unable to write output file {path}: {}",
                go_errno_text(&e)
            ))
        })?;
        self.files_written.push(path);
        Ok(())
    }

    fn emit_meta(&mut self, pcombine: bool) -> Res<Hash> {
        let mut fh = Fnv128::new();
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        for p in &self.pkgs {
            let blob = match (&p.combined, pcombine) {
                (Some((pm, _)), true) => {
                    let mut pm = pm.clone();
                    pm.hash = pm.compute_hash();
                    pm.encode()
                }
                _ => p.blob.clone(),
            };
            fh.write(&fnv128(&blob));
            blobs.push(blob);
        }
        let hash = fh.finish();
        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let data =
            MetaFile::encode_from_blobs(hash, self.merger.mode(), self.merger.granularity(), &refs);
        self.write(&format!("covmeta.{}", hex(&hash)), &data)?;
        Ok(hash)
    }

    fn emit_counters(&mut self, hash: Hash) -> Res<()> {
        let mut cf = CounterFile {
            meta_hash: hash,
            args: self.args.summary(),
            ..Default::default()
        };
        for (pidx, p) in self.pkgs.iter().enumerate() {
            for (&fid, ctrs) in &p.ctab {
                cf.funcs.push(crate::FuncCounters {
                    pkg: pidx as u32,
                    func: fid,
                    counters: ctrs.clone(),
                });
            }
        }
        let data = cf.encode();
        self.write(
            &format!("covcounters.{}.0.{}", hex(&hash), now_nanos()),
            &data,
        )?;
        self.args = ArgState::default();
        Ok(())
    }
}

/// Runs `merge`, `subtract` or `intersect` from `dirs` into `outdir`.
/// Returns the files written.
pub fn merge(
    kind: MergeKind,
    dirs: &[String],
    outdir: &str,
    filter: Option<&PkgFilter>,
    warn: &mut dyn Write,
) -> Res<Vec<String>> {
    let pcombine = matches!(kind, MergeKind::Merge { pcombine: true });
    let policy = if matches!(kind, MergeKind::Merge { .. }) {
        MergeMode::Relaxed
    } else {
        MergeMode::Strict
    };
    let mut mm = MetaMerge {
        merger: Merger::new(policy),
        pkgs: Vec::new(),
        pkm: HashMap::new(),
        args: ArgState::default(),
        outdir: outdir.to_string(),
        files_written: Vec::new(),
    };
    // Go's `sstate.inidx`: the input dir of the last counter file seen. Like
    // Go, it starts at -1 once per run and is not reset between pods, so a
    // pod whose first file comes from an earlier dir than the previous pod's
    // last file is an error (Go panics: "decreasing dir index").
    let mut inidx: Option<usize> = None;
    for pod in collect(dirs, warn)? {
        let mut lp = load_meta(&pod)?;
        let file_hash = lp.meta.hash;
        mm.merger
            .set_mode_and_granularity(&pod.meta_file, lp.meta.mode, lp.meta.granularity)
            .map_err(fatal)?;
        lp.decode_packages(&pod.meta_file)?;
        // Counters of this pod, merged across its files (dir 0 only for
        // subtract/intersect; later dirs modify them).
        let mut pmm: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
        let mut imm: Option<std::collections::HashSet<(u32, u32)>> =
            (kind == MergeKind::Intersect).then(Default::default);
        let prune = |pmm: &mut HashMap<(u32, u32), Vec<u32>>,
                     imm: &std::collections::HashSet<(u32, u32)>| {
            pmm.retain(|k, _| imm.contains(k));
        };
        let decoded = load_all_counters(&pod.counter_files);
        for ((k, cf_path), cf) in pod.counter_files.iter().enumerate().zip(decoded) {
            let cf = cf?;
            let dir_idx = pod.origins[k];
            if matches!(kind, MergeKind::Merge { .. }) {
                mm.args.merge(&cf);
            } else if inidx != Some(dir_idx) {
                if inidx.is_some_and(|i| i > dir_idx) {
                    return Err(fatal(format!(
                        "counter file {cf_path} comes from input dir {dir_idx} after a file from dir {}: go tool covdata panics here (\"decreasing dir index\"); run {} on one pod at a time",
                        inidx.unwrap_or(0),
                        if kind == MergeKind::Subtract {
                            "subtract"
                        } else {
                            "intersect"
                        }
                    )));
                }
                if dir_idx == 0 {
                    imm = None;
                } else if kind == MergeKind::Intersect {
                    if let Some(set) = &imm {
                        prune(&mut pmm, set);
                    }
                    imm = Some(Default::default());
                }
                inidx = Some(dir_idx);
            }
            for f in cf.funcs {
                let key = (f.pkg, f.func);
                if inidx == Some(0) || matches!(kind, MergeKind::Merge { .. }) {
                    let slot = pmm.entry(key).or_default();
                    if slot.len() < f.counters.len() {
                        slot.resize(f.counters.len(), 0);
                    }
                    if mm.merger.merge_counters(slot, &f.counters).map_err(fatal)? {
                        let _ = writeln!(warn, "warning: uint32 overflow during counter merge");
                    }
                    continue;
                }
                let Some(val) = pmm.get_mut(&key) else {
                    continue;
                };
                if f.counters.len() > val.len() {
                    return Err(fatal(format!(
                        "counter file {cf_path}: function [p={},f={}] has {} counters, more than the {} it is combined with",
                        f.pkg,
                        f.func,
                        f.counters.len(),
                        val.len()
                    )));
                }
                if let Some(set) = imm.as_mut() {
                    set.insert(key);
                }
                for (i, &c) in f.counters.iter().enumerate() {
                    let zero = if kind == MergeKind::Subtract {
                        c != 0
                    } else {
                        c == 0
                    };
                    if zero {
                        val[i] = 0;
                    }
                }
            }
        }
        if let Some(set) = &imm {
            prune(&mut pmm, set);
        }
        // Visit packages and functions.
        for (pi, p) in lp.meta.packages.iter().enumerate() {
            if filter.is_some_and(|f| !f.matches(&p.path)) {
                continue;
            }
            let sidx = match mm.pkm.get(&p.path) {
                Some(&i) => i,
                None => {
                    let i = mm.pkgs.len();
                    mm.pkgs.push(PkState {
                        idx: i as u32,
                        ctab: BTreeMap::new(),
                        blob: if pcombine {
                            Vec::new()
                        } else {
                            lp.blob(pi).to_vec()
                        },
                        combined: pcombine.then(|| {
                            (
                                PackageMeta {
                                    path: p.path.clone(),
                                    name: p.name.clone(),
                                    module_path: p.module_path.clone(),
                                    ..Default::default()
                                },
                                HashMap::new(),
                            )
                        }),
                    });
                    mm.pkm.insert(p.path.clone(), i);
                    i
                }
            };
            for (fi, fd) in p.funcs.iter().enumerate() {
                let st = &mut mm.pkgs[sidx];
                let mut fidx = fi as u32;
                if let Some((pm, ftab)) = st.combined.as_mut() {
                    let h = fd.identity_hash();
                    fidx = *ftab.entry(h).or_insert_with(|| {
                        pm.funcs.push(FuncDesc { ..fd.clone() });
                        (pm.funcs.len() - 1) as u32
                    });
                }
                let Some(ctrs) = pmm.get(&(pi as u32, fi as u32)) else {
                    continue;
                };
                let _ = st.idx;
                match st.ctab.get_mut(&fidx) {
                    Some(g) => {
                        if mm.merger.merge_counters(g, ctrs).map_err(fatal)? {
                            let _ = writeln!(warn, "warning: uint32 overflow during counter merge");
                        }
                    }
                    None => {
                        st.ctab.insert(fidx, ctrs.clone());
                    }
                }
            }
        }
        if !pcombine {
            let hash = if filter.is_some() {
                mm.emit_meta(false)?
            } else {
                let base = pod
                    .meta_file
                    .rsplit('/')
                    .next()
                    .unwrap_or(&pod.meta_file)
                    .to_string();
                let raw = std::mem::take(&mut lp.raw);
                mm.write(&base, &raw)?;
                file_hash
            };
            mm.emit_counters(hash)?;
            mm.pkm.clear();
            mm.pkgs.clear();
            mm.merger.reset();
        }
    }
    if pcombine {
        let hash = mm.emit_meta(true)?;
        mm.emit_counters(hash)?;
    }
    Ok(mm.files_written)
}
