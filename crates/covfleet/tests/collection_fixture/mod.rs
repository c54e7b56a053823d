//! Builds collections of real coverage data for tests: the Go program in
//! `go/fixtures/collection` is built with `-cover -covermode=atomic` once per
//! test binary and run with `GOCOVERDIR` pointing into entry directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The instrumented fixture binary.
pub fn fixture_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../go/fixtures/collection");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("collection-fixture-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let bin = out.join("fixture");
        let st = Command::new("go")
            .args(["build", "-cover", "-covermode=atomic", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(&src)
            .status()
            .expect("go must be installed");
        assert!(st.success(), "go build of the fixture failed");
        bin
    })
}

/// Metadata of one entry (what collect writes as metadata.json).
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub image: String,
    pub hostname: String,
    pub host_process: bool,
    pub binary: String,
    /// Extra raw JSON fields (e.g. `"owner_references": [...]`).
    pub extra: Vec<(String, serde_json::Value)>,
}

impl Meta {
    pub fn pod(ns: &str, pod: &str, container: &str) -> Meta {
        Meta {
            namespace: ns.into(),
            pod: pod.into(),
            container: container.into(),
            image: format!("registry.example/{ns}/{container}:v1"),
            hostname: "node-a".into(),
            binary: "fixture".into(),
            ..Meta::default()
        }
    }

    pub fn host(hostname: &str) -> Meta {
        Meta {
            hostname: hostname.into(),
            host_process: true,
            binary: "fixture".into(),
            ..Meta::default()
        }
    }
}

/// Writes metadata.json (and info.json when `info` is given) into `dir`.
pub fn write_meta(dir: &Path, m: &Meta, info: Option<serde_json::Value>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut v = serde_json::json!({
        "pod_name": m.pod,
        "namespace": m.namespace,
        "container": {"name": m.container, "image": m.image},
        "collected_at": "2026-11-21T12:00:00Z",
        "binary_name": m.binary,
        "hostname": m.hostname,
        "host_process": m.host_process,
    });
    for (k, x) in &m.extra {
        v[k] = x.clone();
    }
    std::fs::write(
        dir.join("metadata.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
    if let Some(i) = info {
        std::fs::write(
            dir.join("info.json"),
            serde_json::to_vec_pretty(&i).unwrap(),
        )
        .unwrap();
    }
}

/// Runs the fixture once with GOCOVERDIR=dir.
pub fn run_fixture(dir: &Path, args: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(fixture_bin())
        .args(args)
        .env("GOCOVERDIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fixture {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates `collection/coverage/<name>/` with metadata and the given runs.
pub fn entry(collection: &Path, name: &str, m: &Meta, runs: &[&[&str]]) -> PathBuf {
    let dir = collection.join("coverage").join(name);
    write_meta(&dir, m, None);
    for r in runs {
        run_fixture(&dir, r);
    }
    dir
}

/// `go tool covdata textfmt -i dirs` (the oracle), as a sorted list of lines
/// without the `mode:` line and without the injected file's lines.
pub fn go_textfmt(dirs: &[&Path]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p.txt");
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let st = Command::new("go")
        .args(["tool", "covdata", "textfmt", "-i", &list.join(","), "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    profile_lines(&std::fs::read_to_string(out).unwrap())
}

/// Profile text → sorted block lines, injected file and mode line dropped.
pub fn profile_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("mode:") && !l.is_empty() && !l.contains("zz_covfleet"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// `go tool covdata percent -i dirs` → (package, percent text like "40.0%").
pub fn go_percent(dirs: &[&Path]) -> Vec<(String, String)> {
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let out = Command::new("go")
        .args(["tool", "covdata", "percent", "-i", &list.join(",")])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let pkg = it.next()?.to_string();
            let pct = it.nth(1)?.to_string();
            Some((pkg, pct))
        })
        .collect()
}

/// Per file (total, covered) statements from profile lines.
pub fn file_totals(lines: &[String]) -> std::collections::BTreeMap<String, (i64, i64)> {
    let mut m = std::collections::BTreeMap::new();
    for l in lines {
        let (file, rest) = l.rsplit_once(':').unwrap();
        let mut it = rest.split_whitespace().skip(1);
        let stmts: i64 = it.next().unwrap().parse().unwrap();
        let count: i64 = it.next().unwrap().parse().unwrap();
        let e = m.entry(file.to_string()).or_insert((0, 0));
        e.0 += stmts;
        if count > 0 {
            e.1 += stmts;
        }
    }
    m
}

/// Runs covfleet with args; returns (exit code, stdout, stderr).
pub fn covfleet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `covfleet compile --collection DIR --json [extra]`, asserting exit 0;
/// returns the JSON summary.
pub fn compile(collection: &Path, extra: &[&str]) -> serde_json::Value {
    let c = collection.display().to_string();
    let mut args = vec!["compile", "--collection", &c, "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = covfleet(&args);
    assert_eq!(code, 0, "compile failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON {out:?}: {e}"))
}

/// Copies an entry directory (real data) under a new name with new metadata.
pub fn copy_entry(collection: &Path, from: &Path, name: &str, m: &Meta) -> PathBuf {
    let dir = collection.join("coverage").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "metadata.json" {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    write_meta(&dir, m, None);
    dir
}
