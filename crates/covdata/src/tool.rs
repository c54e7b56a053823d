//! The `go tool covdata` subcommands, reproduced: same inputs, same stdout,
//! same warnings and errors on stderr, same exit codes.
//!
//! Deliberate differences from Go (all on malformed input or Go crashes):
//! where Go panics (index out of range, nil map, "decreasing dir index"),
//! covfleet prints a clear `error:` line and exits 1; the rest of the run is
//! the same.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::counters::CounterFile;
use crate::gostr::{from_go_bytes, to_go_bytes};
use crate::hash::{Fnv128, HashWriter, fnv128};
use crate::merge::{Merger, ModeMergePolicy};
use crate::meta::{BlobSpan, MetaFile, MetaView, PackageMeta, PackageView};
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

/// Where a dump run writes the textfmt profile (`textfmt -o`, `percent -o`).
pub struct TextfmtOut<'a> {
    pub writer: &'a mut dyn Write,
    /// The file name, for the error message when a write fails.
    pub path: &'a str,
}

impl std::fmt::Debug for TextfmtOut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextfmtOut")
            .field("path", &self.path)
            .finish()
    }
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

/// The error for package blob `i` of a meta-data file.
fn pkg_error(i: usize, file: &str, span: BlobSpan, e: &crate::Error) -> Failure {
    fatal(format!(
        "reading pkg {i} from meta-file {file}: {}{}",
        e.kind,
        e.offset
            .map(|o| format!(" (at offset {})", o + span.offset as u64))
            .unwrap_or_default()
    ))
}

impl LoadedPod {
    fn decode_packages(&mut self, file: &str) -> Res<()> {
        for (i, &s) in self.spans.iter().enumerate() {
            let p = s
                .slice(&self.raw)
                .and_then(PackageMeta::decode)
                .map_err(|e| pkg_error(i, file, s, &e))?;
            self.meta.packages.push(p);
        }
        Ok(())
    }

    /// All package blobs, decoded without copying.
    fn view(&self, file: &str) -> Res<MetaView<'_>> {
        let mut view = MetaView::for_file_len(self.raw.len());
        for (i, &s) in self.spans.iter().enumerate() {
            s.slice(&self.raw)
                .and_then(|b| view.push_package(b))
                .map_err(|e| pkg_error(i, file, s, &e))?;
        }
        Ok(view)
    }

    fn blob(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.raw[s.offset..s.offset + s.len]
    }
}

fn open_counters(path: &str) -> Res<Vec<u8>> {
    read_file(path).map_err(|e| {
        reader_fatal(format!(
            "opening counter data file {path}: open {path}: {}",
            go_errno_text(&e)
        ))
    })
}

fn counters_error(path: &str, e: &crate::Error) -> Failure {
    let at = e
        .offset
        .map(|o| format!(" (at offset {o})"))
        .unwrap_or_default();
    reader_fatal(format!("reading counter data file {path}: {}{at}", e.kind))
}

fn load_counters(path: &str) -> Res<CounterFile> {
    CounterFile::decode(&open_counters(path)?).map_err(|e| counters_error(path, &e))
}

/// A counter file decoded into two flat vectors: its records (package,
/// function, range in `values`) and all their counters.
struct FlatCounters {
    file: CounterFile,
    records: Vec<(u32, u32, std::ops::Range<usize>)>,
    values: Vec<u32>,
}

fn load_flat_counters(path: &str) -> Res<FlatCounters> {
    let raw = open_counters(path)?;
    let mut records = Vec::with_capacity(raw.len() / 8);
    let mut values = Vec::with_capacity(raw.len());
    let file = CounterFile::decode_visit(&raw, |pkg, func, c| {
        records.push((pkg, func, values.len()..values.len() + c.len()));
        values.extend_from_slice(c);
    })
    .map_err(|e| counters_error(path, &e))?;
    Ok(FlatCounters {
        file,
        records,
        values,
    })
}

/// Reads and decodes a pod's counter files on all cores, in order.
fn load_all<T: Send>(paths: &[String], load: fn(&str) -> Res<T>) -> Vec<Res<T>> {
    use rayon::prelude::*;
    if paths.len() < 4 {
        return paths.iter().map(|p| load(p)).collect();
    }
    paths.par_iter().map(|p| load(p)).collect()
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

const OVERFLOW_WARNING: &str = "warning: uint32 overflow during counter merge";

/// One pod's counters merged over its counter files, one slot per function
/// of its meta-data file (indexed like [`MetaView::funcs`]), values in one
/// vector.
struct PodCounters {
    slots: Vec<Option<(u32, u32)>>,
    values: Vec<u32>,
    /// Records for function `n` of a package with `n` functions: Go accepts
    /// and merges them (it checks `> n`, not `>= n`) but never reports them.
    past_end: HashMap<(u32, u32), Vec<u32>>,
}

impl PodCounters {
    fn new(view: &MetaView<'_>) -> Self {
        PodCounters {
            slots: vec![None; view.funcs.len()],
            values: Vec::with_capacity(view.units.len()),
            past_end: HashMap::new(),
        }
    }

    /// The merged counters of function `idx` (`None`: no record).
    fn get(&self, idx: usize) -> Option<&[u32]> {
        self.slots[idx].map(|(start, len)| &self.values[start as usize..][..len as usize])
    }

    /// Merges one record into slot `idx` as Go's `cmerge` does: the slot
    /// grows (zero-padded) to the record's length; a longer slot is an
    /// error. Returns whether a counter saturated.
    fn merge(&mut self, merger: &Merger, idx: usize, src: &[u32]) -> Res<bool> {
        let (start, len) = match self.slots[idx] {
            Some((start, len)) if len as usize >= src.len() => (start, len),
            old => {
                let start = self.values.len();
                if let Some((s, l)) = old {
                    self.values
                        .extend_from_within(s as usize..s as usize + l as usize);
                }
                self.values.resize(start + src.len(), 0);
                (start as u32, src.len() as u32)
            }
        };
        self.slots[idx] = Some((start, len));
        let dst = &mut self.values[start as usize..][..len as usize];
        merger.merge_counters(dst, src).map_err(fatal)
    }

    fn merge_past_end(&mut self, merger: &Merger, key: (u32, u32), src: &[u32]) -> Res<bool> {
        let slot = self.past_end.entry(key).or_default();
        if slot.len() < src.len() {
            slot.resize(src.len(), 0);
        }
        merger.merge_counters(slot, src).map_err(fatal)
    }
}

/// The state of one `textfmt`/`percent`/`func`/`pkglist`/`debugdump` run.
struct DumpRun<'f> {
    kind: DumpKind,
    filter: Option<&'f PkgFilter>,
    merger: Merger,
    fmt: Option<Formatter>,
    first_meta: String,
    pkgpaths: std::collections::BTreeSet<Vec<u8>>,
    total: i64,
    covered: i64,
}

impl<'f> DumpRun<'f> {
    fn new(kind: DumpKind, filter: Option<&'f PkgFilter>) -> Self {
        let policy = match kind {
            DumpKind::Percent | DumpKind::Func | DumpKind::Pkglist => ModeMergePolicy::Relaxed,
            _ => ModeMergePolicy::Strict,
        };
        DumpRun {
            kind,
            filter,
            merger: Merger::new(policy),
            fmt: None,
            first_meta: String::new(),
            pkgpaths: Default::default(),
            total: 0,
            covered: 0,
        }
    }

    fn debug(&self) -> bool {
        matches!(self.kind, DumpKind::Debugdump { .. })
    }

    /// Reads one pod: its meta-data file, then its counter files, then
    /// reports its packages.
    fn pod(&mut self, pod: &Pod, warn: &mut dyn Write, stdout: &mut Vec<u8>) -> Res<()> {
        let lp = load_meta(pod)?;
        let (view, files) = self.open_and_load(pod, &lp, stdout)?;
        let counters = self.merge_counters(pod, &view, files, warn, stdout)?;
        self.report_packages(pod, &view, &counters, stdout)?;
        if self.debug() {
            self.merger.reset();
        }
        Ok(())
    }

    /// Takes a pod's counter mode and granularity and decodes its packages.
    fn open<'l>(
        &mut self,
        pod: &Pod,
        lp: &'l LoadedPod,
        stdout: &mut Vec<u8>,
    ) -> Res<MetaView<'l>> {
        let (mode, gran) = (lp.meta.mode, lp.meta.granularity);
        self.merger
            .set_mode_and_granularity(&pod.meta_file, mode, gran)
            .map_err(fatal)?;
        if self.debug() {
            let _ = writeln!(stdout, "Cover mode: {mode}\nCover granularity: {gran}");
        }
        if self.fmt.is_none() {
            self.fmt = Some(Formatter::new(mode));
            self.first_meta = pod.meta_file.clone();
        }
        lp.view(&pod.meta_file)
    }

    /// [`DumpRun::open`], and the pod's counter files read and decoded:
    /// for a large meta-data file on another thread meanwhile (errors
    /// are reported in the same order either way: the meta-data's first).
    fn open_and_load<'l>(
        &mut self,
        pod: &Pod,
        lp: &'l LoadedPod,
        stdout: &mut Vec<u8>,
    ) -> Res<(MetaView<'l>, Vec<Res<FlatCounters>>)> {
        /// Below this, a thread costs more than it saves.
        const LARGE_META: usize = 256 * 1024;
        if lp.raw.len() < LARGE_META || pod.counter_files.is_empty() {
            let view = self.open(pod, lp, stdout)?;
            return Ok((view, load_all(&pod.counter_files, load_flat_counters)));
        }
        std::thread::scope(|s| {
            let files = s.spawn(|| load_all(&pod.counter_files, load_flat_counters));
            let view = self.open(pod, lp, stdout);
            let files = files
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok((view?, files))
        })
    }

    fn selected(&self, p: &PackageView<'_>) -> bool {
        self.filter
            .is_none_or(|f| f.matches(&from_go_bytes(p.path)))
    }

    /// `textfmt` of a run with a single pod: formatted straight from its
    /// view (see [`crate::onepod`]), with the errors, in the order, of the
    /// general path ([`DumpRun::pod`] then [`DumpRun::finish`]), which it
    /// takes when two packages share an import path.
    fn single_textfmt(
        mut self,
        pod: &Pod,
        out: TextfmtOut<'_>,
        warn: &mut dyn Write,
        stdout: &mut Vec<u8>,
    ) -> Res<()> {
        let lp = load_meta(pod)?;
        let (view, files) = self.open_and_load(pod, &lp, stdout)?;
        let counters = self.merge_counters(pod, &view, files, warn, stdout)?;
        let mut order: Vec<usize> = (0..view.packages.len())
            .filter(|&i| self.selected(&view.packages[i]))
            .collect();
        order.sort_by(|&a, &b| view.packages[a].path.cmp(view.packages[b].path));
        if order
            .windows(2)
            .any(|w| view.packages[w[0]].path == view.packages[w[1]].path)
        {
            self.report_packages(pod, &view, &counters, stdout)?;
            return self.finish(Some(out), stdout);
        }
        for p in view.packages.iter().filter(|p| self.selected(p)) {
            for idx in p.funcs.clone() {
                func_counters(pod, &view, p, idx, &counters)?;
            }
        }
        let mode = lp.meta.mode;
        if mode.0 == 0 {
            return Err(no_mode(&self.first_meta));
        }
        let counts = |idx: usize| counters.get(idx);
        crate::onepod::emit_textual(mode, &view, &order, counts, out.writer)
            .and_then(|()| out.writer.flush())
            .map_err(|e| write_failure(out.path, &e))
    }

    /// Merges the pod's counter files, in order, into one slot per function.
    fn merge_counters(
        &self,
        pod: &Pod,
        view: &MetaView<'_>,
        files: Vec<Res<FlatCounters>>,
        warn: &mut dyn Write,
        stdout: &mut Vec<u8>,
    ) -> Res<PodCounters> {
        let mut acc = PodCounters::new(view);
        for (cf_path, cf) in pod.counter_files.iter().zip(files) {
            let cf = cf?;
            if self.debug() {
                debug_counter_file(stdout, cf_path, &cf.file);
            }
            for (pkg, func, range) in cf.records {
                let src = &cf.values[range];
                let funcs = view.packages.get(pkg as usize).map(|p| p.funcs.clone());
                let n = funcs.as_ref().map(|f| f.len() as u32);
                let overflow = match funcs {
                    Some(f) if (func as usize) < f.len() => {
                        acc.merge(&self.merger, f.start + func as usize, src)?
                    }
                    Some(f) if func as usize == f.len() => {
                        acc.merge_past_end(&self.merger, (pkg, func), src)?
                    }
                    _ => {
                        let _ = writeln!(
                            warn,
                            "warning: func payload inconsistency: id [p={pkg},f={func}] nf={} len(ctrs)={} in VisitFuncCounterData, ignored",
                            n.unwrap_or(0),
                            src.len()
                        );
                        continue;
                    }
                };
                if overflow {
                    let _ = writeln!(warn, "{OVERFLOW_WARNING}");
                }
            }
        }
        Ok(acc)
    }

    /// Visits the pod's packages and functions: adds their units to the
    /// report (or prints them, for debugdump).
    fn report_packages(
        &mut self,
        pod: &Pod,
        view: &MetaView<'_>,
        acc: &PodCounters,
        stdout: &mut Vec<u8>,
    ) -> Res<()> {
        let kind = self.kind;
        let formats = matches!(kind, DumpKind::Textfmt | DumpKind::Percent | DumpKind::Func);
        for p in &view.packages {
            if !self.selected(p) {
                continue;
            }
            if kind == DumpKind::Pkglist {
                self.pkgpaths.insert(p.path.to_vec());
            }
            let fm = self.fmt.as_mut().expect("formatter set by pod()");
            if formats {
                fm.set_package(p.path);
                fm.reserve(view.package_units(p).len());
            }
            let mut preamble = false;
            for (idx, fd) in view.funcs[p.funcs.clone()].iter().enumerate() {
                let idx = p.funcs.start + idx;
                let units = &view.units[fd.units()];
                let found = acc.get(idx);
                let counters = func_counters(pod, view, p, idx, acc)?;
                if formats {
                    if units.is_empty() {
                        continue;
                    }
                    if let Some(id) = fm.add_func(view.str(fd.file), view.str(fd.name), fd.literal)
                    {
                        fm.add_units(id, units, counters);
                    }
                    continue;
                }
                let DumpKind::Debugdump { live } = kind else {
                    continue;
                };
                for (i, u) in units.iter().enumerate() {
                    self.total += i64::from(u.stmts);
                    if counters.is_some_and(|c| c[i] != 0) {
                        self.covered += i64::from(u.stmts);
                    }
                }
                if live && found.is_none() {
                    continue;
                }
                if !preamble {
                    for part in [
                        &b"\nPackage path: "[..],
                        p.path,
                        b"\nPackage name: ",
                        p.name,
                        b"\nModule path: ",
                        p.module_path,
                        b"\n",
                    ] {
                        stdout.extend_from_slice(part);
                    }
                    preamble = true;
                }
                for part in [
                    &b"\nFunc: "[..],
                    view.str(fd.name),
                    b"\nSrcfile: ",
                    view.str(fd.file),
                    b"\n",
                ] {
                    stdout.extend_from_slice(part);
                }
                let _ = writeln!(stdout, "Literal: {}", fd.literal);
                for (i, u) in units.iter().enumerate() {
                    let count = counters.map_or(0, |c| c[i]);
                    let _ = writeln!(
                        stdout,
                        "{i}: L{}:C{} -- L{}:C{} NS={} = {count}",
                        u.st_line, u.st_col, u.en_line, u.en_col, u.stmts
                    );
                }
            }
        }
        Ok(())
    }

    /// Prints the report after the last pod.
    fn finish(self, textfmt: Option<TextfmtOut<'_>>, stdout: &mut Vec<u8>) -> Res<()> {
        if let Some(fm) = &self.fmt {
            if matches!(self.kind, DumpKind::Textfmt | DumpKind::Func) && fm.mode().0 == 0 {
                return Err(no_mode(&self.first_meta));
            }
            match self.kind {
                DumpKind::Percent => {
                    let _ = fm.emit_percent(stdout);
                }
                DumpKind::Func => {
                    let _ = fm.emit_funcs(stdout);
                }
                _ => {}
            }
            if let Some(out) = textfmt {
                fm.emit_textual(out.writer)
                    .and_then(|()| out.writer.flush())
                    .map_err(|e| write_failure(out.path, &e))?;
            }
        }
        if self.debug() {
            let _ = writeln!(
                stdout,
                "totalStmts: {} coveredStmts: {}",
                self.total, self.covered
            );
        }
        for p in &self.pkgpaths {
            stdout.extend_from_slice(p);
            stdout.push(b'\n');
        }
        Ok(())
    }
}

/// Function `idx`'s merged counters (`None`: no record, or one with no
/// counters, which leaves Go's slice nil: read as zeros); an error when it
/// has fewer counters than units.
fn func_counters<'c>(
    pod: &Pod,
    view: &MetaView<'_>,
    p: &PackageView<'_>,
    idx: usize,
    acc: &'c PodCounters,
) -> Res<Option<&'c [u32]>> {
    let fd = &view.funcs[idx];
    let counters = acc.get(idx).filter(|c| !c.is_empty());
    match counters {
        Some(c) if c.len() < fd.num_units as usize => Err(fatal(format!(
            "counter data for function {} (package {}, meta-file {}) has {} counters for {} units",
            from_go_bytes(view.str(fd.name)),
            from_go_bytes(p.path),
            pod.meta_file,
            c.len(),
            fd.num_units
        ))),
        _ => Ok(counters),
    }
}

fn no_mode(meta_file: &str) -> Failure {
    fatal(format!(
        "meta-data file {meta_file} has no counter mode (0); go tool covdata panics on it (\"internal error, counter mode unset\")"
    ))
}

fn write_failure(path: &str, e: &std::io::Error) -> Failure {
    Failure {
        code: 1,
        stderr: format!("error: writing to {path}: {e}\n"),
    }
}

/// debugdump's line for one counter file.
fn debug_counter_file(stdout: &mut Vec<u8>, path: &str, cf: &CounterFile) {
    let _ = write!(stdout, "data file {path}");
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

/// Runs `textfmt`, `percent`, `func`, `pkglist` or `debugdump` over `dirs`.
/// Warnings go to `warn` as they happen; the report is appended to
/// `stdout`; the textfmt profile, when `textfmt` is given, is written there.
pub fn dump(
    kind: DumpKind,
    dirs: &[String],
    filter: Option<&PkgFilter>,
    textfmt: Option<TextfmtOut<'_>>,
    warn: &mut dyn Write,
    stdout: &mut Vec<u8>,
) -> Res<()> {
    let mut run = DumpRun::new(kind, filter);
    let pods = collect(dirs, warn)?;
    match (&pods[..], kind, textfmt) {
        ([pod], DumpKind::Textfmt, Some(out)) => run.single_textfmt(pod, out, warn, stdout),
        (_, _, textfmt) => {
            for pod in &pods {
                run.pod(pod, warn, stdout)?;
            }
            run.finish(textfmt, stdout)
        }
    }
}

/// Which of the merge family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    Merge { pcombine: bool },
    Subtract,
    Intersect,
}

struct PkState {
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
    /// Go's `sstate.inidx` (subtract and intersect), see [`MetaMerge::enter_dir`].
    inidx: Option<usize>,
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

/// Counters of one pod keyed by (package, function), merged over its files.
type FuncMap = HashMap<(u32, u32), Vec<u32>>;

impl MetaMerge {
    fn new(kind: MergeKind, outdir: &str) -> Self {
        let policy = if matches!(kind, MergeKind::Merge { .. }) {
            ModeMergePolicy::Relaxed
        } else {
            ModeMergePolicy::Strict
        };
        MetaMerge {
            merger: Merger::new(policy),
            pkgs: Vec::new(),
            pkm: HashMap::new(),
            args: ArgState::default(),
            outdir: outdir.to_string(),
            files_written: Vec::new(),
            inidx: None,
        }
    }

    /// Reads the pod's counter files and combines them: `merge` merges every
    /// file; `subtract`/`intersect` take the files of input dir 0 as the base
    /// and let the later dirs' files zero or prune it.
    fn pod_counters(&mut self, kind: MergeKind, pod: &Pod, warn: &mut dyn Write) -> Res<FuncMap> {
        let mut pmm = FuncMap::new();
        // For intersect: the functions the current later dir has seen.
        let mut imm: Option<HashSet<(u32, u32)>> =
            (kind == MergeKind::Intersect).then(Default::default);
        let decoded = load_all(&pod.counter_files, load_counters);
        for ((k, cf_path), cf) in pod.counter_files.iter().enumerate().zip(decoded) {
            let cf = cf?;
            if matches!(kind, MergeKind::Merge { .. }) {
                self.args.merge(&cf);
            } else {
                self.enter_dir(kind, cf_path, pod.origins[k], &mut pmm, &mut imm)?;
            }
            for f in cf.funcs {
                let key = (f.pkg, f.func);
                if self.inidx == Some(0) || matches!(kind, MergeKind::Merge { .. }) {
                    let slot = pmm.entry(key).or_default();
                    if slot.len() < f.counters.len() {
                        slot.resize(f.counters.len(), 0);
                    }
                    if self
                        .merger
                        .merge_counters(slot, &f.counters)
                        .map_err(fatal)?
                    {
                        let _ = writeln!(warn, "{OVERFLOW_WARNING}");
                    }
                } else if let Some(val) = pmm.get_mut(&key) {
                    subtract_or_intersect(kind, cf_path, &f, val)?;
                    if let Some(set) = imm.as_mut() {
                        set.insert(key);
                    }
                }
            }
        }
        if let Some(set) = &imm {
            pmm.retain(|k, _| set.contains(k));
        }
        Ok(pmm)
    }

    /// Tracks Go's `sstate.inidx` (the input dir of the last counter file
    /// seen). Like Go, it is set once per run and not reset between pods, so
    /// a pod whose first file comes from an earlier dir than the previous
    /// pod's last file is an error (Go panics: "decreasing dir index").
    fn enter_dir(
        &mut self,
        kind: MergeKind,
        cf_path: &str,
        dir_idx: usize,
        pmm: &mut FuncMap,
        imm: &mut Option<HashSet<(u32, u32)>>,
    ) -> Res<()> {
        if self.inidx == Some(dir_idx) {
            return Ok(());
        }
        if let Some(prev) = self.inidx.filter(|&i| i > dir_idx) {
            return Err(fatal(format!(
                "counter file {cf_path} comes from input dir {dir_idx} after a file from dir {prev}: go tool covdata panics here (\"decreasing dir index\"); run {} on one pod at a time",
                if kind == MergeKind::Subtract {
                    "subtract"
                } else {
                    "intersect"
                }
            )));
        }
        if dir_idx == 0 {
            *imm = None;
        } else if kind == MergeKind::Intersect {
            if let Some(set) = imm.as_ref() {
                pmm.retain(|k, _| set.contains(k));
            }
            *imm = Some(Default::default());
        }
        self.inidx = Some(dir_idx);
        Ok(())
    }

    /// Adds the pod's packages (those the filter keeps) and their counters
    /// to the output state; with `pcombine`, functions are matched across
    /// pods by their identity hash.
    fn add_packages(
        &mut self,
        lp: &LoadedPod,
        pmm: &FuncMap,
        filter: Option<&PkgFilter>,
        pcombine: bool,
        warn: &mut dyn Write,
    ) -> Res<()> {
        for (pi, p) in lp.meta.packages.iter().enumerate() {
            if filter.is_some_and(|f| !f.matches(&p.path)) {
                continue;
            }
            let sidx = self.package_state(lp, pi, p, pcombine);
            for (fi, fd) in p.funcs.iter().enumerate() {
                let st = &mut self.pkgs[sidx];
                let mut fidx = fi as u32;
                if let Some((pm, ftab)) = st.combined.as_mut() {
                    fidx = *ftab.entry(fd.identity_hash()).or_insert_with(|| {
                        pm.funcs.push(fd.clone());
                        (pm.funcs.len() - 1) as u32
                    });
                }
                let Some(ctrs) = pmm.get(&(pi as u32, fi as u32)) else {
                    continue;
                };
                match st.ctab.get_mut(&fidx) {
                    Some(g) => {
                        if self.merger.merge_counters(g, ctrs).map_err(fatal)? {
                            let _ = writeln!(warn, "{OVERFLOW_WARNING}");
                        }
                    }
                    None => {
                        st.ctab.insert(fidx, ctrs.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// The output state of package `pi` (by import path), created if new.
    fn package_state(
        &mut self,
        lp: &LoadedPod,
        pi: usize,
        p: &PackageMeta,
        pcombine: bool,
    ) -> usize {
        if let Some(&i) = self.pkm.get(&p.path) {
            return i;
        }
        let i = self.pkgs.len();
        self.pkgs.push(PkState {
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
        self.pkm.insert(p.path.clone(), i);
        i
    }

    /// Without `pcombine`, each pod is written out on its own: its meta-data
    /// file (copied, or rebuilt from the kept packages under a filter) and
    /// one counter file.
    fn emit_pod(&mut self, pod: &Pod, lp: &mut LoadedPod, filtered: bool) -> Res<()> {
        let hash = if filtered {
            self.emit_meta(false)?
        } else {
            let base = pod
                .meta_file
                .rsplit('/')
                .next()
                .unwrap_or(&pod.meta_file)
                .to_string();
            let raw = std::mem::take(&mut lp.raw);
            self.write(&base, &raw)?;
            lp.meta.hash
        };
        self.emit_counters(hash)?;
        self.pkm.clear();
        self.pkgs.clear();
        self.merger.reset();
        Ok(())
    }
}

/// Applies one later-dir record to the base counters: `subtract` zeroes
/// what it covered, `intersect` zeroes what it did not.
fn subtract_or_intersect(
    kind: MergeKind,
    cf_path: &str,
    f: &crate::FuncCounters,
    val: &mut [u32],
) -> Res<()> {
    if f.counters.len() > val.len() {
        return Err(fatal(format!(
            "counter file {cf_path}: function [p={},f={}] has {} counters, more than the {} it is combined with",
            f.pkg,
            f.func,
            f.counters.len(),
            val.len()
        )));
    }
    for (v, &c) in val.iter_mut().zip(&f.counters) {
        let zero = if kind == MergeKind::Subtract {
            c != 0
        } else {
            c == 0
        };
        if zero {
            *v = 0;
        }
    }
    Ok(())
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
    let mut mm = MetaMerge::new(kind, outdir);
    for pod in collect(dirs, warn)? {
        let mut lp = load_meta(&pod)?;
        mm.merger
            .set_mode_and_granularity(&pod.meta_file, lp.meta.mode, lp.meta.granularity)
            .map_err(fatal)?;
        lp.decode_packages(&pod.meta_file)?;
        let pmm = mm.pod_counters(kind, &pod, warn)?;
        mm.add_packages(&lp, &pmm, filter, pcombine, warn)?;
        if !pcombine {
            mm.emit_pod(&pod, &mut lp, filter.is_some())?;
        }
    }
    if pcombine {
        let hash = mm.emit_meta(true)?;
        mm.emit_counters(hash)?;
    }
    Ok(mm.files_written)
}
