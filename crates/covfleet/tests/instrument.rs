//! `covfleet instrument` and `covfleet go-shim install` on generated Go trees
//! that reproduce the traps the seed system met (and some it did not), built
//! for real through the shim, scraped over TCP, checked with
//! `go tool covdata`.

mod instrument_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use instrument_support::*;

/// A main package declaring names a careless injected file collides with:
/// the seed's `var log`, import names, and every builtin function.
const COLLIDE_MAIN: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"

	"example.com/sub/lib"
)

var log = "host logger"
var http, json, coverage, strings, sync, time, bytes, gzip, base64, net = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10

func min(a, b int) int { return a }
func max(a, b int) int { return b }
func copy()             {}
func print()            {}
func println()          {}
func close()            {}
func new()              {}
func make()             {}
func len()              {}
func cap()              {}
func append()           {}
func delete()           {}
func clear()            {}
func panic()            {}
func recover()          {}
func complex()          {}
func real()             {}
func imag()             {}
func init()             { _ = log }

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, _ := strconv.Atoi(in.Text())
		fmt.Println("ok", lib.Classify(n), min(n, 1), max(n, 2))
	}
}
"#;

const COLLIDE_TEST: &str = r#"package main

import "testing"

func TestMin(t *testing.T) {
	if min(1, 2) != 1 {
		t.Fatal("min")
	}
}
"#;

const SECOND_MAIN: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println("ok", in.Text())
	}
}
"#;

const SUB_LIB: &str = r#"package lib

import "strconv"

// Classify is the fizzbuzz of n.
func Classify(n int) string {
	switch {
	case n%15 == 0:
		return "fizzbuzz"
	case n%5 == 0:
		return "buzz"
	case n%3 == 0:
		return "fizz"
	}
	return strconv.Itoa(n)
}
"#;

fn traps_tree(root: &Path) {
    write_tree(
        root,
        &[
            (
                "go.mod",
                "module example.com/traps\n\ngo 1.16\n\nrequire example.com/sub v0.0.0-00010101000000-000000000000\n\nreplace example.com/sub => ./staging/sub\n",
            ),
            ("cmd/collide/main.go", COLLIDE_MAIN),
            ("cmd/collide/main_test.go", COLLIDE_TEST),
            ("cmd/second/main.go", SECOND_MAIN),
            // prometheus/plugins: a tagged generator beside a library package.
            (
                "plugins/generate.go",
                "//go:build plugins\n\npackage main\n\nfunc main() {}\n",
            ),
            (
                "plugins/minimum.go",
                "package plugins\n\nconst Minimum = 1\n",
            ),
            // installer/data: an old-style +build tools generator.
            (
                "data/assets_generate.go",
                "// +build tools\n\npackage main\n\nfunc main() {}\n",
            ),
            (
                "data/assets.go",
                "package data\n\nvar Assets = []byte(\"x\")\n",
            ),
            // go:build ignore generators, beside a library and alone.
            (
                "gen/gen.go",
                "//go:build ignore\n\npackage main\n\nfunc main() {}\n",
            ),
            ("gen/lib.go", "package gen\n\nconst X = 1\n"),
            (
                "onlyignore/gen.go",
                "// Generator.\n\n//go:build ignore\n// +build ignore\n\npackage main\n\nfunc main() {}\n",
            ),
            // Only for another GOOS; only test files; only with a tag; only with cgo.
            (
                "winonly/main_windows.go",
                "package main\n\nfunc main() {}\n",
            ),
            // Every file constrained: the server file must drop out with them
            // when the tree is built for another platform.
            (
                "linuxonly/main_linux.go",
                "package main\n\nfunc main() { run() }\n",
            ),
            (
                "linuxonly/run.go",
                "//go:build linux && (amd64 || arm64)\n\npackage main\n\nfunc run() {}\n",
            ),
            (
                "testonly/main_test.go",
                "package main\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) {}\n",
            ),
            (
                "extra/main.go",
                "//go:build extra\n\npackage main\n\nfunc main() {}\n",
            ),
            (
                "cgoonly/main.go",
                "package main\n\n// int two(void) { return 2; }\nimport \"C\"\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(C.two()) }\n",
            ),
            // Directories Go never builds as part of ./...
            ("testdata/x/main.go", "package main\n\nfunc main() {}\n"),
            ("_hidden/main.go", "package main\n\nfunc main() {}\n"),
            (".hidden/main.go", "package main\n\nfunc main() {}\n"),
            (
                "node_modules/pkg/main.go",
                "package main\n\nfunc main() {}\n",
            ),
            // The tools.go pattern pulls a sub-module's main package into vendor/.
            (
                "tools/tools.go",
                "//go:build tools\n\npackage tools\n\nimport _ \"example.com/sub/cmd/subgen\"\n",
            ),
            // operator-framework-olm's staging/: a nested module consumed via replace.
            ("staging/sub/go.mod", "module example.com/sub\n\ngo 1.16\n"),
            ("staging/sub/lib/lib.go", SUB_LIB),
            ("staging/sub/cmd/subgen/main.go", SECOND_MAIN),
        ],
    );
}

fn cgo_default() -> bool {
    go_env("CGO_ENABLED") == "1"
}

fn dry_run(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Vec<String> {
    let mut args = vec!["instrument", "--dry-run"];
    args.extend_from_slice(extra);
    let out = covfleet(dir, &args, env);
    assert_eq!(out.code, 0, "dry run failed: {}", out.stderr);
    out.stdout.lines().map(str::to_string).collect()
}

/// `go list` over the tree: the directories holding `package main` with
/// non-test files, relative to `dir`, sorted — minus `node_modules`, which
/// Go walks but covfleet skips on purpose.
fn go_list_mains(dir: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let out = go(
        dir,
        &[
            "list",
            "-e",
            "-f",
            "{{if and (eq .Name \"main\") (or .GoFiles .CgoFiles)}}{{.Dir}}{{end}}",
            "./...",
        ],
        env,
    );
    let mut v: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let rel = Path::new(l)
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.is_empty() { ".".into() } else { rel }
        })
        .filter(|rel| {
            !Path::new(rel)
                .components()
                .any(|c| c.as_os_str() == "node_modules")
        })
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn chooses_directories_like_go_list() {
    let tmp = tempdir();
    let root = tmp.path().join("traps");
    traps_tree(&root);

    let mut expected = vec!["cmd/collide", "cmd/second", "linuxonly"];
    if cgo_default() {
        expected.insert(0, "cgoonly");
    }
    assert_eq!(dry_run(&root, &[], &[]), expected);
    assert_eq!(sorted(dry_run(&root, &[], &[])), go_list_mains(&root, &[]));

    // Per-platform, per-tag and per-cgo answers agree with go list too.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &[("CGO_ENABLED", "0")],
            &[],
            &["cmd/collide", "cmd/second", "linuxonly"],
        ),
        (
            &[("GOOS", "windows")],
            &[],
            &["cmd/collide", "cmd/second", "winonly"],
        ),
        (
            &[("CGO_ENABLED", "0")],
            &["--tags", "extra"],
            &["cmd/collide", "cmd/second", "extra", "linuxonly"],
        ),
        (
            &[("CGO_ENABLED", "0"), ("GOFLAGS", "-tags=extra")],
            &[],
            &["cmd/collide", "cmd/second", "extra", "linuxonly"],
        ),
    ];
    for (env, flags, want) in cases {
        let got = dry_run(&root, env, flags);
        assert_eq!(got, want.to_vec(), "env {env:?} flags {flags:?}");
        let mut go_env: Vec<(&str, &str)> = env.to_vec();
        if let Some(i) = flags.iter().position(|f| *f == "--tags") {
            go_env.push(("GOFLAGS", "-tags=extra"));
            assert_eq!(flags[i + 1], "extra");
        }
        assert_eq!(
            sorted(got),
            go_list_mains(&root, &go_env),
            "go list, env {env:?} flags {flags:?}"
        );
    }

    // The nested module is instrumentable when it is DIR itself.
    assert_eq!(
        dry_run(&root.join("staging/sub"), &[], &[]),
        vec!["cmd/subgen"]
    );
}

#[test]
fn traps_tree_builds_serves_and_undoes_byte_for_byte() {
    let tmp = tempdir();
    let root = tmp.path().join("traps");
    traps_tree(&root);

    // Vendor first: tools.go drags the sub-module's main package into vendor/.
    go(&root, &["mod", "vendor"], &[]);
    assert!(
        root.join("vendor/example.com/sub/cmd/subgen/main.go")
            .is_file()
    );
    let vendor_before = snapshot(&root.join("vendor"));
    let before = snapshot(&root);

    let out = covfleet(&root, &["instrument", "."], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut expected = vec![
        "cmd/collide/zz_covfleet_coverage_server.go",
        "cmd/second/zz_covfleet_coverage_server.go",
        "linuxonly/zz_covfleet_coverage_server.go",
    ];
    if cgo_default() {
        expected.insert(0, "cgoonly/zz_covfleet_coverage_server.go");
    }
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected);
    let after = snapshot(&root);
    let added: Vec<&PathBuf> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(added.len(), expected.len(), "instrument added {added:?}");
    assert!(
        before.iter().all(|(k, v)| after.get(k) == Some(v)),
        "instrument changed an existing file"
    );

    // Idempotent.
    let again = covfleet(&root, &["instrument", "."], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, "", "second run wrote files");
    assert_eq!(snapshot(&root), after);

    // Re-vendoring after instrumentation changes nothing (the seed's Cachi2 failure).
    go(&root, &["mod", "vendor"], &[]);
    assert_eq!(
        snapshot(&root.join("vendor")),
        vendor_before,
        "go mod vendor changed vendor/"
    );

    // Control: had the sub-module's main been instrumented, vendor/ would change.
    let sub_main = root.join("staging/sub/cmd/subgen/zz_covfleet_coverage_server.go");
    std::fs::write(&sub_main, gosrc::SERVER_SOURCE).unwrap();
    go(&root, &["mod", "vendor"], &[]);
    assert_ne!(
        snapshot(&root.join("vendor")),
        vendor_before,
        "control: vendor/ should pick up the file"
    );
    std::fs::remove_file(&sub_main).unwrap();
    go(&root, &["mod", "vendor"], &[]);
    assert_eq!(snapshot(&root.join("vendor")), vendor_before);

    // Build everything through the shim: go build ./... and go install ./cmd/...
    let shim_dir = tmp.path().join("shim");
    let out = covfleet(
        tmp.path(),
        &["go-shim", "install", "--dir", shim_dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = format!("{}:{}", shim_dir.display(), std::env::var("PATH").unwrap());
    let gobin = tmp.path().join("bin");
    let env = [("PATH", path.as_str()), ("GOBIN", gobin.to_str().unwrap())];
    run_ok(
        Command::new(shim_dir.join("go"))
            .args(["build", "./..."])
            .current_dir(&root)
            .envs(go_test_env())
            .envs(env),
    );
    run_ok(
        Command::new(shim_dir.join("go"))
            .args(["install", "./cmd/..."])
            .current_dir(&root)
            .envs(go_test_env())
            .envs(env),
    );
    // The all-constrained directory keeps its constraint on the server file,
    // so a build for another platform skips the directory instead of failing
    // with "function main is undeclared in the main package".
    let narrowed =
        std::fs::read_to_string(root.join("linuxonly").join(gosrc::SERVER_FILE_NAME)).unwrap();
    assert!(
        narrowed.contains("\n//go:build go1.20 && (linux || linux && (amd64 || arm64))\n"),
        "{}",
        &narrowed[..300]
    );
    run_ok(
        Command::new(shim_dir.join("go"))
            .args(["build", "-o", "/dev/null", "./linuxonly/..."])
            .current_dir(&root)
            .envs(go_test_env())
            .envs(env)
            .env("GOOS", "darwin"),
    );
    // go vet and go test (not instrumented by the shim) still work on the instrumented package.
    run_ok(
        Command::new(shim_dir.join("go"))
            .args(["vet", "./cmd/..."])
            .current_dir(&root)
            .envs(go_test_env())
            .envs(env),
    );
    run_ok(
        Command::new(shim_dir.join("go"))
            .args(["test", "./cmd/collide"])
            .current_dir(&root)
            .envs(go_test_env())
            .envs(env),
    );

    for bin in ["collide", "second"] {
        let mut p = Served::start(&gobin.join(bin), &[("SOURCE_GIT_COMMIT", "deadbeef")]);
        p.send_line("30");
        let head = http(p.port, "HEAD", "/anything", &[]);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("x-art-coverage-server"), Some("1"));
        assert_eq!(head.header("x-art-coverage-binary"), Some(bin));
        assert_eq!(
            head.header("x-art-coverage-source-commit"),
            Some("deadbeef")
        );
        let dir = tmp.path().join(format!("scrape-{bin}"));
        let payload = p.scrape_into(&dir);
        assert!(payload.meta_filename.starts_with("covmeta."));
        let text = covdata_textfmt(&dir);
        let own = format!("example.com/traps/cmd/{bin}/main.go:");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&own) && !l.ends_with(" 0")),
            "no covered line of {own} in\n{text}"
        );
        p.finish();
    }

    // Undo: byte-for-byte the tree we started from.
    let out = covfleet(&root, &["instrument", "--undo", "."], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected);
    assert_eq!(snapshot(&root), before, "undo did not restore the tree");
}

#[test]
fn refuses_cov_identifiers_and_foreign_files() {
    let tmp = tempdir();
    let root = tmp.path().join("refuse");
    write_tree(
        &root,
        &[
            ("go.mod", "module example.com/refuse\n\ngo 1.21\n"),
            ("a/main.go", "package main\n\nfunc main() {}\n"),
            (
                "a/cov.go",
                "package main\n\nvar (\n\tx = 1\n\t_covPort = 2\n)\n",
            ),
            ("b/main.go", "package main\n\nfunc main() {}\n"),
            ("c/main.go", "package main\n\nfunc main() {}\n"),
            (
                "c/zz_covfleet_coverage_server.go",
                "package main\n\n// the user's own file\n",
            ),
        ],
    );
    let before = snapshot(&root);
    let out = covfleet(&root, &["instrument"], &[]);
    assert_eq!(out.code, 1, "stdout {} stderr {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("a/cov.go:5") && out.stderr.contains("_covPort"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("c/zz_covfleet_coverage_server.go")
            && out.stderr.contains("not written by covfleet"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "b/zz_covfleet_coverage_server.go");
    let undo = covfleet(&root, &["instrument", "--undo"], &[]);
    assert_eq!(undo.code, 0);
    assert_eq!(
        snapshot(&root),
        before,
        "undo must leave the user's file alone"
    );

    let missing = covfleet(&root, &["instrument", "does-not-exist"], &[]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("does-not-exist"));
}

/// Issue 13 #14: a write error in one directory does not stop `--undo`
/// mid-tree: the other directories are undone, each failure is named once,
/// a summary line is printed and the exit code is 1.
#[test]
fn issue13_14_undo_goes_on_past_a_read_only_directory() {
    let tmp = tempdir();
    let root = tmp.path().join("ro");
    write_tree(
        &root,
        &[
            ("go.mod", "module example.com/ro\n\ngo 1.21\n"),
            ("a/main.go", "package main\n\nfunc main() {}\n"),
            ("b/main.go", "package main\n\nfunc main() {}\n"),
        ],
    );
    let out = covfleet(&root, &["instrument"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let a = root.join("a/zz_covfleet_coverage_server.go");
    let b = root.join("b/zz_covfleet_coverage_server.go");
    assert!(a.is_file() && b.is_file());
    // Tests run as root, which ignores file modes: make `a` read-only with a
    // bind mount in a private mount namespace instead.
    let ro = root.join("a").display().to_string();
    let script = format!(
        "mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && cd {r} && {bin} instrument --undo; echo rc=$?",
        bin = env!("CARGO_BIN_EXE_covfleet"),
        r = root.display()
    );
    let res = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&res.stdout);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stdout.contains("rc=1"), "{stdout}\n{stderr}");
    assert!(!b.exists(), "b was not undone: {stdout}\n{stderr}");
    assert!(a.is_file());
    assert!(
        stdout.contains("b/zz_covfleet_coverage_server.go"),
        "{stdout}"
    );
    assert_eq!(
        stderr.matches("a/zz_covfleet_coverage_server.go").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("1 directory undone, 1 failed"), "{stderr}");
}

/// The acceptance check: over Go's own `cmd` tree, `instrument --dry-run`
/// lists exactly what `go list` calls `package main` with non-test files.
#[test]
fn agrees_with_go_list_over_goroot_cmd() {
    let goroot = PathBuf::from(go_env("GOROOT"));
    let cmd = goroot.join("src/cmd");
    let t0 = Instant::now();
    let ours = sorted(dry_run(&cmd, &[], &[]));
    let ours_time = t0.elapsed();
    let t1 = Instant::now();
    let theirs = go_list_mains(&cmd, &[]);
    let go_time = t1.elapsed();
    eprintln!(
        "GOROOT/src/cmd: covfleet instrument --dry-run {ours_time:?}, go list {go_time:?} ({} directories)",
        ours.len()
    );
    assert!(ours.len() > 10, "suspiciously few main packages: {ours:?}");
    assert_eq!(ours, theirs);
}

const E2E_MAIN: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"

	"example.com/e2e/work"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, _ := strconv.Atoi(in.Text())
		fmt.Println("ok", work.Collatz(n))
	}
}
"#;

const E2E_WORK: &str = r#"package work

// Collatz counts the steps from n to 1.
func Collatz(n int) int {
	steps := 0
	for n > 1 {
		if n%2 == 0 {
			n /= 2
		} else {
			n = 3*n + 1
		}
		steps++
	}
	return steps
}

// Unused is never called.
func Unused() int {
	return 42
}
"#;

/// For the same work, the live scrape equals what Go writes at exit
/// (GOCOVERDIR), for the program's own files.
#[test]
fn live_scrape_equals_gocoverdir_at_exit() {
    let tmp = tempdir();
    let root = tmp.path().join("e2e");
    write_tree(
        &root,
        &[
            ("go.mod", "module example.com/e2e\n\ngo 1.22\n"),
            ("main.go", E2E_MAIN),
            ("work/work.go", E2E_WORK),
        ],
    );
    let out = covfleet(&root, &["instrument"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let bin = tmp.path().join("e2e-bin");
    // Plain flags, no shim.
    go(
        &root,
        &[
            "build",
            "-cover",
            "-covermode=atomic",
            "-o",
            bin.to_str().unwrap(),
            ".",
        ],
        &[],
    );

    let gocoverdir = tmp.path().join("gocoverdir");
    std::fs::create_dir_all(&gocoverdir).unwrap();
    let mut p = Served::start(&bin, &[("GOCOVERDIR", gocoverdir.to_str().unwrap())]);
    for n in ["7", "27", "1"] {
        p.send_line(n);
    }
    let live = tmp.path().join("live");
    let payload = p.scrape_into(&live);
    p.finish();

    let names: Vec<String> = std::fs::read_dir(&gocoverdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&payload.meta_filename),
        "GOCOVERDIR has {names:?}, scrape named {}",
        payload.meta_filename
    );

    let own = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("example.com/e2e/") && !l.contains(gosrc::SERVER_FILE_NAME))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let live_text = own(&covdata_textfmt(&live));
    let exit_text = own(&covdata_textfmt(&gocoverdir));
    assert!(
        live_text
            .iter()
            .any(|l| l.starts_with("example.com/e2e/work/work.go:") && !l.ends_with(" 0"))
    );
    assert!(
        live_text
            .iter()
            .any(|l| l.starts_with("example.com/e2e/work/work.go:") && l.ends_with(" 0")),
        "Unused must stay 0"
    );
    assert_eq!(live_text, exit_text);
}

#[test]
fn nometa_first_request_names_counters_with_the_real_hash() {
    let tmp = tempdir();
    let root = tmp.path().join("nometa");
    write_tree(
        &root,
        &[
            ("go.mod", "module example.com/nometa\n\ngo 1.22\n"),
            (
                "main.go",
                E2E_MAIN
                    .replace("example.com/e2e/work", "example.com/nometa/work")
                    .as_str(),
            ),
            ("work/work.go", E2E_WORK),
        ],
    );
    assert_eq!(covfleet(&root, &["instrument"], &[]).code, 0);
    let bin = tmp.path().join("nometa-bin");
    go(
        &root,
        &[
            "build",
            "-cover",
            "-covermode=atomic",
            "-o",
            bin.to_str().unwrap(),
            ".",
        ],
        &[],
    );
    let p = Served::start(&bin, &[]);
    let first = p.payload("/coverage?nometa=1");
    assert_eq!(first.meta_filename, "");
    let full = p.payload("/coverage");
    let hash = full
        .meta_filename
        .strip_prefix("covmeta.")
        .unwrap()
        .to_string();
    assert!(
        first
            .counters_filename
            .starts_with(&format!("covcounters.{hash}.{}.", p.pid())),
        "{}",
        first.counters_filename
    );
    p.finish();
}

/// The shim's argument handling, against a fake `go` that prints its arguments.
#[test]
fn shim_adds_cover_flags_to_build_and_install_only() {
    let tmp = tempdir();
    let shim_dir = tmp.path().join("shim");
    let shim2 = tmp.path().join("shim2");
    let fake = tmp.path().join("fake");
    for d in [&shim_dir, &shim2] {
        let out = covfleet(
            tmp.path(),
            &["go-shim", "install", "--dir", d.to_str().unwrap()],
            &[],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout.trim(), d.join("go").to_str().unwrap());
    }
    write_tree(
        &fake,
        &[("go", "#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done\n")],
    );
    make_executable(&fake.join("go"));
    // Two shims on PATH (one of them twice) must not recurse into each other.
    let path = format!(
        "{}:{}:{}:{}:/usr/bin:/bin",
        shim_dir.display(),
        shim2.display(),
        shim_dir.display(),
        fake.display()
    );
    let run = |args: &[&str], goflags: &str| -> String {
        let out = Command::new(shim_dir.join("go"))
            .args(args)
            .env("PATH", &path)
            .env("GOFLAGS", goflags)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["build", "./x"],
            "",
            "[build] [-cover] [-covermode=atomic] [./x]",
        ),
        (
            &["install", "./cmd/..."],
            "",
            "[install] [-cover] [-covermode=atomic] [./cmd/...]",
        ),
        (&["test", "./..."], "", "[test] [./...]"),
        (&["run", "."], "", "[run] [.]"),
        (&["vet", "./..."], "", "[vet] [./...]"),
        (&["list", "-m"], "", "[list] [-m]"),
        (&["env", "GOROOT"], "", "[env] [GOROOT]"),
        (
            &["build", "-covermode=count", "."],
            "",
            "[build] [-cover] [-covermode=count] [.]",
        ),
        (
            &["build", "-cover", "."],
            "",
            "[build] [-covermode=atomic] [-cover] [.]",
        ),
        (
            &["build", "--cover", "-coverpkg=./...", "."],
            "",
            "[build] [-covermode=atomic] [--cover] [-coverpkg=./...] [.]",
        ),
        (
            &["build", "-cover=false", "."],
            "",
            "[build] [-cover=false] [.]",
        ),
        (
            &["build", "-C", "sub dir", "-o", "out", "."],
            "",
            "[build] [-C] [sub dir] [-cover] [-covermode=atomic] [-o] [out] [.]",
        ),
        (
            &["install", "-C=sub", "."],
            "",
            "[install] [-C=sub] [-cover] [-covermode=atomic] [.]",
        ),
        (
            &["build", "-ldflags", "-X main.v=a b *", "."],
            "",
            "[build] [-cover] [-covermode=atomic] [-ldflags] [-X main.v=a b *] [.]",
        ),
        (
            &["build", "."],
            "-mod=mod -covermode=set",
            "[build] [-cover] [.]",
        ),
        (&["build", "."], "-cover", "[build] [-covermode=atomic] [.]"),
        (&[], "", ""),
    ];
    for (args, goflags, want) in cases {
        assert_eq!(
            run(args, goflags),
            *want,
            "go {args:?} with GOFLAGS={goflags:?}"
        );
    }

    // COVFLEET_REAL_GO wins; no real go at all is a clear error.
    let out = Command::new(shim_dir.join("go"))
        .args(["build", "."])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no real go found"));
    let out = Command::new(shim_dir.join("go"))
        .args(["build", "."])
        .env("PATH", "/nonexistent")
        .env("COVFLEET_REAL_GO", fake.join("go"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>()
            .join(" "),
        "[build] [-cover] [-covermode=atomic] [.]"
    );

    // Never overwrite a real go.
    let out = covfleet(
        tmp.path(),
        &["go-shim", "install", "--dir", fake.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code, 2, "a refused install is a setup error");
    assert!(
        out.stderr.contains("not written by covfleet"),
        "{}",
        out.stderr
    );
    assert!(
        std::fs::read_to_string(fake.join("go"))
            .unwrap()
            .contains("for a in")
    );
}

#[test]
fn snapshot_helper_sees_content_changes() {
    let tmp = tempdir();
    write_tree(tmp.path(), &[("a/b.txt", "x")]);
    let s1: BTreeMap<PathBuf, Vec<u8>> = snapshot(tmp.path());
    write_tree(tmp.path(), &[("a/b.txt", "y")]);
    assert_ne!(s1, snapshot(tmp.path()));
}
