//! A synthetic fleet for history tests: two Go binaries (their coverage
//! files encoded with the `covdata` crate, as Go writes them), deployed to
//! three clusters, many runs, code paths that stop running partway, and a
//! rebuild of one binary in the middle (a new meta hash). The expected
//! answers are computed from the model here, independently of covfleet.
//! Shared by crates/history/tests and crates/covfleet/tests/history.rs.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use covdata::{
    CounterFile, CounterGranularity, CounterMode, FuncCounters, FuncDesc, MetaFile, PackageMeta,
    Unit,
};

pub const CLUSTERS: [&str; 3] = ["east", "west", "north"];

/// One function of a binary: its file, name and statements per block.
#[derive(Debug, Clone)]
pub struct Func {
    pub file: &'static str,
    pub name: &'static str,
    pub stmts: Vec<u32>,
    /// When it runs.
    pub runs: Runs,
}

/// When a function runs.
#[derive(Debug, Clone, Copy)]
pub enum Runs {
    Always,
    Never,
    /// When cluster + run is even.
    Alternate,
    /// Only in this cluster.
    OnlyIn(usize),
    /// Only in runs before this one (stops partway).
    Before(usize),
}

impl Runs {
    pub fn at(self, cluster: usize, run: usize) -> bool {
        match self {
            Runs::Always => true,
            Runs::Never => false,
            Runs::Alternate => (cluster + run).is_multiple_of(2),
            Runs::OnlyIn(c) => cluster == c,
            Runs::Before(r) => run < r,
        }
    }
}

use Runs::{Alternate, Always, Before, Never, OnlyIn};

/// One deployed program: (namespace, pod prefix, binary, clusters, module).
#[derive(Debug, Clone)]
pub struct App {
    pub namespace: &'static str,
    pub binary: &'static str,
    pub module: &'static str,
    pub clusters: &'static [usize],
}

pub const API: App = App {
    namespace: "shop",
    binary: "api",
    module: "example.com/shop",
    clusters: &[0, 1, 2],
};
pub const WORKER: App = App {
    namespace: "ops",
    binary: "worker",
    module: "example.com/ops",
    clusters: &[0, 1],
};

/// The shape of a fleet history.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    /// Runs per cluster.
    pub runs: usize,
    /// From this run on, `api` is rebuilt (new meta hash).
    pub rebuild: usize,
    /// `Migrate` runs only before this run.
    pub stop: usize,
}

impl Fleet {
    /// `runs` runs per cluster, the rebuild at the middle, `Migrate`
    /// stopping after a third.
    pub fn new(runs: usize) -> Fleet {
        Fleet {
            runs,
            rebuild: runs / 2,
            stop: (runs / 3).max(1),
        }
    }

    /// The functions of `app` in run `run` (in meta-data order).
    pub fn funcs(&self, app: &App, run: usize) -> Vec<Func> {
        let stop = self.stop;
        let f = |file, name, stmts: &[u32], runs| Func {
            file,
            name,
            stmts: stmts.to_vec(),
            runs,
        };
        if app.binary == "api" {
            let v2 = run >= self.rebuild;
            let mut v = vec![
                f(
                    "handlers.go",
                    "Serve",
                    if v2 { &[2, 3, 1, 4] } else { &[2, 3, 1] },
                    Always,
                ),
                f("handlers.go", "Checkout", &[3, 2], Alternate),
                f("handlers.go", "LegacyExport", &[4, 4, 2], Never),
                f("util.go", "Parse", &[1, 2], Always),
                f("util.go", "Debug", &[5], Never),
                f("dead.go", "DeadA", &[2, 2], Never),
                f("dead.go", "DeadB", &[3], Never),
            ];
            // Migrate: runs in the first runs only (stops partway).
            v.push(f("migrate.go", "Migrate", &[6, 1], Before(stop)));
            if v2 {
                v.push(f("new.go", "NewThing", &[7], Never));
            } else {
                v.push(f("old.go", "OldThing", &[8, 1], Never));
            }
            v
        } else {
            vec![
                f("loop.go", "Loop", &[2, 2], Always),
                f("loop.go", "Drain", &[3], OnlyIn(1)),
                f("loop.go", "Panic", &[2, 1], Never),
                f("idle.go", "Idle", &[9], Never),
            ]
        }
    }

    /// The meta-data file of `app` in run `run`.
    pub fn meta(&self, app: &App, run: usize) -> MetaFile {
        let funcs = self.funcs(app, run);
        let pkg_path = format!("{}/{}", app.module, app.binary);
        let mut pkg = PackageMeta {
            path: pkg_path.clone(),
            name: "main".into(),
            module_path: app.module.into(),
            hash: [0; 16],
            funcs: funcs
                .iter()
                .map(|f| FuncDesc {
                    name: f.name.into(),
                    file: format!("{pkg_path}/{}", f.file),
                    units: f
                        .stmts
                        .iter()
                        .enumerate()
                        .map(|(i, &s)| Unit {
                            st_line: 10 * (i as u32 + 1),
                            st_col: 2,
                            en_line: 10 * (i as u32 + 1) + 3,
                            en_col: 3,
                            stmts: s,
                        })
                        .collect(),
                    literal: false,
                })
                .collect(),
        };
        pkg.hash = pkg.compute_hash();
        let mut m = MetaFile {
            version: 1,
            hash: [0; 16],
            mode: CounterMode::ATOMIC,
            granularity: CounterGranularity::PER_BLOCK,
            packages: vec![pkg],
        };
        m.hash = m.runtime_hash();
        m
    }

    /// Counters of `app` in (cluster, run): a running function's first
    /// block always counts, its later blocks on some runs.
    pub fn counts(&self, app: &App, cluster: usize, run: usize) -> Vec<Vec<u32>> {
        self.funcs(app, run)
            .iter()
            .map(|f| {
                (0..f.stmts.len())
                    .map(|j| {
                        let on = f.runs.at(cluster, run)
                            && (j == 0 || !(run + j + cluster).is_multiple_of(3));
                        if on { (run + j + 1) as u32 } else { 0 }
                    })
                    .collect()
            })
            .collect()
    }

    /// RFC 3339 time of (cluster, run): one run a day, clusters minutes apart.
    pub fn time(&self, cluster: usize, run: usize) -> String {
        format!("2026-10-{:02}T06:{:02}:00Z", run + 1, cluster * 10)
    }

    /// Writes the collection of (cluster, run) into `dir/coverage/`: two
    /// replicas of each app, each holding part of the counts (merged by max).
    pub fn write_collection(&self, dir: &Path, cluster: usize, run: usize) {
        for app in [API, WORKER] {
            if !app.clusters.contains(&cluster) {
                continue;
            }
            let meta = self.meta(&app, run);
            let hex = covdata::hex(&meta.hash);
            let counts = self.counts(&app, cluster, run);
            for replica in 0..2usize {
                // A Deployment's pod name: `<name>-<template hash>-<5 of its alphabet>`.
                let a = b"bcdfghjklmnpqrstvwxz2456789";
                let sfx: String = [replica, run % 27, run / 27 % 27, 3, 4]
                    .iter()
                    .map(|&i| a[i] as char)
                    .collect();
                let pod = format!("{}-7d9f8b6c5d-{sfx}", app.binary);
                let entry = dir
                    .join("coverage")
                    .join(format!("{}-{pod}", app.namespace));
                std::fs::create_dir_all(&entry).unwrap();
                std::fs::write(entry.join(format!("covmeta.{hex}")), meta.encode()).unwrap();
                let funcs = counts
                    .iter()
                    .enumerate()
                    .map(|(fi, c)| FuncCounters {
                        pkg: 0,
                        func: fi as u32,
                        counters: c
                            .iter()
                            .enumerate()
                            .map(|(j, &v)| if (fi + j) % 2 == replica { v } else { 0 })
                            .collect(),
                    })
                    .collect();
                let cf = CounterFile {
                    meta_hash: meta.hash,
                    args: CounterFile::args_for(&[format!("/{}", app.binary)], "linux", "amd64"),
                    os_args: vec![format!("/{}", app.binary)],
                    goos: "linux".into(),
                    goarch: "amd64".into(),
                    funcs,
                    ..Default::default()
                };
                std::fs::write(
                    entry.join(format!(
                        "covcounters.{hex}.{}.{}",
                        100 + replica,
                        1000 + run
                    )),
                    cf.encode(),
                )
                .unwrap();
                let md = serde_json::json!({
                    "pod_name": pod,
                    "namespace": app.namespace,
                    "container": {"name": app.binary, "image": format!("registry.example/{}:{}", app.binary, if run >= self.rebuild { 2 } else { 1 })},
                    "collected_at": self.time(cluster, run),
                    "binary_name": app.binary,
                    "hostname": format!("node-{replica}"),
                    "host_process": false,
                });
                std::fs::write(
                    entry.join("metadata.json"),
                    serde_json::to_vec(&md).unwrap(),
                )
                .unwrap();
            }
        }
    }

    /// Every (cluster, run) of the fleet.
    pub fn all_runs(&self) -> Vec<(usize, usize)> {
        (0..self.runs)
            .flat_map(|r| (0..CLUSTERS.len()).map(move |c| (c, r)))
            .collect()
    }

    /// Expected `--never-ran` over the given runs, as comparable tuples
    /// (kind, namespace, binary, file, function, stmts, runs, clusters,
    /// first seen, last seen), sorted.
    pub fn expected_never_ran(&self, runs: &[(usize, usize)]) -> Vec<Expected> {
        let mut out = Vec::new();
        for app in [API, WORKER] {
            let app_runs: Vec<(usize, usize)> = runs
                .iter()
                .copied()
                .filter(|(c, _)| app.clusters.contains(c))
                .collect();
            if app_runs.is_empty() {
                continue;
            }
            let pkg = format!("{}/{}", app.module, app.binary);
            // key (file, function or "") → (runs seen, clusters, max stmts, covered, times)
            #[derive(Default)]
            struct Seen {
                runs: usize,
                clusters: BTreeSet<usize>,
                stmts: u32,
                covered: u32,
                times: BTreeSet<String>,
            }
            let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
            for &(c, r) in &app_runs {
                let funcs = self.funcs(&app, r);
                let counts = self.counts(&app, c, r);
                let mut files: BTreeMap<String, (u32, u32)> = BTreeMap::new();
                for (f, cnt) in funcs.iter().zip(&counts) {
                    let total: u32 = f.stmts.iter().sum();
                    let covered: u32 = f
                        .stmts
                        .iter()
                        .zip(cnt)
                        .filter(|(_, n)| **n > 0)
                        .map(|(s, _)| s)
                        .sum();
                    let file = format!("{pkg}/{}", f.file);
                    let e = files.entry(file.clone()).or_default();
                    e.0 += total;
                    e.1 += covered;
                    let s = seen.entry((file, f.name.to_string())).or_default();
                    s.runs += 1;
                    s.clusters.insert(c);
                    s.stmts = s.stmts.max(total);
                    s.covered += covered;
                    s.times.insert(self.time(c, r));
                }
                for (file, (total, covered)) in files {
                    let s = seen.entry((file, String::new())).or_default();
                    s.runs += 1;
                    s.clusters.insert(c);
                    s.stmts = s.stmts.max(total);
                    s.covered += covered;
                    s.times.insert(self.time(c, r));
                }
            }
            for ((file, func), s) in seen {
                if s.runs == app_runs.len() && s.covered == 0 {
                    out.push(Expected {
                        kind: if func.is_empty() { "file" } else { "function" }.into(),
                        namespace: app.namespace.into(),
                        binary: app.binary.into(),
                        file,
                        function: func,
                        stmts: i64::from(s.stmts),
                        runs: s.runs as i64,
                        clusters: s.clusters.len() as i64,
                        first_seen: s.times.first().cloned().unwrap_or_default(),
                        last_seen: s.times.last().cloned().unwrap_or_default(),
                    });
                }
            }
        }
        out.sort();
        out
    }

    /// Expected `--trend`: (namespace, binary, cluster name, run time) →
    /// (total, covered statements), over the given runs.
    pub fn expected_trend(
        &self,
        runs: &[(usize, usize)],
    ) -> BTreeMap<(String, String, String, String), (i64, i64)> {
        let mut out = BTreeMap::new();
        for app in [API, WORKER] {
            for &(c, r) in runs.iter().filter(|(c, _)| app.clusters.contains(c)) {
                let funcs = self.funcs(&app, r);
                let counts = self.counts(&app, c, r);
                let (mut t, mut cov) = (0i64, 0i64);
                for (f, cnt) in funcs.iter().zip(&counts) {
                    for (s, n) in f.stmts.iter().zip(cnt) {
                        t += i64::from(*s);
                        if *n > 0 {
                            cov += i64::from(*s);
                        }
                    }
                }
                out.insert(
                    (
                        app.namespace.into(),
                        app.binary.into(),
                        CLUSTERS[c].into(),
                        self.time(c, r),
                    ),
                    (t, cov),
                );
            }
        }
        out
    }
}

/// One expected never-ran row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub kind: String,
    pub namespace: String,
    pub binary: String,
    pub file: String,
    pub function: String,
    pub stmts: i64,
    pub runs: i64,
    pub clusters: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// DuckDB's python (`COVFLEET_DUCKDB_PYTHON`, set by `scripts/test.sh
/// setup`), or `None` (the comparison is skipped, loudly) unless
/// `COVFLEET_REQUIRE_DUCKDB` is set.
pub fn duckdb_python() -> Option<std::path::PathBuf> {
    match std::env::var_os("COVFLEET_DUCKDB_PYTHON") {
        Some(p) if Path::new(&p).is_file() => Some(p.into()),
        _ if std::env::var_os("COVFLEET_REQUIRE_DUCKDB").is_some() => {
            panic!(
                "COVFLEET_DUCKDB_PYTHON is not set to DuckDB's python, and COVFLEET_REQUIRE_DUCKDB is set"
            )
        }
        _ => {
            eprintln!(
                "\n!!! SKIPPING the DuckDB comparison: COVFLEET_DUCKDB_PYTHON not set (run scripts/test.sh setup) !!!\n"
            );
            None
        }
    }
}

/// The rows DuckDB answers to `question` with the SQL of docs/history.md
/// over `dataset` (scripts/history_duckdb.py).
pub fn duckdb(py: &Path, dataset: &Path, question: &str) -> Vec<serde_json::Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(py)
        .arg(root.join("scripts/history_duckdb.py"))
        .arg(root.join("docs/history.md"))
        .arg(dataset)
        .arg(question)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb {question}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}
