//! Real collections for the analysis tests (`export`, `report --func`,
//! `diff`, `patch`): `go/fixtures/analysis` copied into a git repository,
//! built with `-cover -covermode=atomic`, run with `GOCOVERDIR` into entry
//! directories, compiled by covfleet.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const MODULE: &str = "example.com/covfleet/analysis";

/// Runs a command, asserting success; returns stdout.
pub fn run(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn git(repo: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(repo))
}

/// A `go` command with a clean environment.
pub fn go(dir: &Path) -> Command {
    let mut c = Command::new("go");
    c.current_dir(dir)
        .env("GOFLAGS", "")
        .env("GOWORK", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0");
    c
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// The fixture's source, a git repository with one commit, and its binary.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub src: PathBuf,
    pub bin: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../go/fixtures/analysis"),
            &src,
        );
        git(&src, &["init", "-q"]);
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "fixture"]);
        let bin = tmp.path().join("bin/analysis");
        Fixture::build(&src, &bin);
        Fixture { tmp, src, bin }
    }

    /// `go build -cover -covermode=atomic` of `src` into `bin`.
    pub fn build(src: &Path, bin: &Path) {
        run(go(src)
            .args(["build", "-cover", "-covermode=atomic", "-o"])
            .arg(bin)
            .arg("."));
    }

    /// A fresh collection directory under the fixture's temp dir.
    pub fn collection(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        std::fs::create_dir_all(d.join("coverage")).unwrap();
        d
    }
}

/// Writes an entry's metadata.json: a pod when `pod` is given, else a host process.
pub fn entry(collection: &Path, name: &str, pod: Option<(&str, &str)>) -> PathBuf {
    let dir = collection.join("coverage").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let v = match pod {
        Some((ns, pod)) => serde_json::json!({
            "pod_name": pod, "namespace": ns,
            "container": {"name": "api", "image": "registry.example/shop/api:v1"},
            "collected_at": "2026-11-21T12:00:00Z", "binary_name": "analysis",
            "hostname": "node-a", "host_process": false,
        }),
        None => serde_json::json!({
            "pod_name": "", "namespace": "", "container": {"name": "", "image": ""},
            "collected_at": "2026-11-21T12:00:00Z", "binary_name": "analysis",
            "hostname": "node-a", "host_process": true,
        }),
    };
    std::fs::write(dir.join("metadata.json"), v.to_string()).unwrap();
    dir
}

/// Runs the binary once with GOCOVERDIR=dir.
pub fn exercise(bin: &Path, dir: &Path, args: &[&str]) {
    run(Command::new(bin).args(args).env("GOCOVERDIR", dir));
}

/// Runs covfleet; returns (exit code, stdout, stderr).
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

/// covfleet, asserting exit 0; returns stdout.
pub fn covfleet_ok(args: &[&str]) -> String {
    let (code, out, err) = covfleet(args);
    assert_eq!(code, 0, "covfleet {args:?}: {err}");
    out
}

pub fn compile(collection: &Path) {
    covfleet_ok(&[
        "compile",
        "--collection",
        collection.to_str().unwrap(),
        "--quiet",
    ]);
}

/// The cache root: `$COVFLEET_CACHE`, else `~/.cache/covfleet`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("COVFLEET_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/covfleet")))
        .unwrap_or_else(|| std::env::temp_dir().join("covfleet-cache"))
}

/// A Go converter from the module proxy, as scripts/lib.sh `ensure_go_oracles`
/// installs it (installed here the same way when missing).
pub fn go_oracle(module: &str, version: &str) -> PathBuf {
    let tool = module.rsplit('/').next().unwrap();
    let dir = cache_root()
        .join("go-oracles")
        .join(format!("{tool}-{version}"));
    let bin = dir.join(tool);
    if !bin.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("go")
            .args(["install", &format!("{module}@{version}")])
            .env("GOBIN", &dir)
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local"));
    }
    bin
}
