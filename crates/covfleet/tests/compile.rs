//! `covfleet compile` on collections of real coverage data, checked against
//! `go tool covdata` run on the same inputs.

mod collection_fixture;

use std::path::{Path, PathBuf};

use collection_fixture::*;
use db::Database;

/// A collection with a 2-replica Deployment (one pod restarted), a DaemonSet
/// pod, and a host process on two nodes. Returns (collection, entries by owner).
struct Fleet {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    deploy: Vec<PathBuf>,
    ds: Vec<PathBuf>,
    host: Vec<PathBuf>,
}

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let deploy = vec![
        // Two processes (a restart) in one pod: they add.
        entry(
            &dir,
            "a1",
            &Meta::pod("shop", "api-7d9f8b6c54-x2kqz", "api"),
            &[&["-mode", "calc", "-n", "5"], &["-mode", "calc", "-n", "2"]],
        ),
        entry(
            &dir,
            "a2",
            &Meta::pod("shop", "api-7d9f8b6c54-zz7wq", "api"),
            &[&["-mode", "words", "-n", "3"]],
        ),
    ];
    let ds = vec![entry(
        &dir,
        "d1",
        &Meta::pod("infra", "agent-b7x2k", "agent"),
        &[&["-mode", "both", "-n", "2"]],
    )];
    let host = vec![
        entry(
            &dir,
            "h1",
            &Meta::host("node-a"),
            &[&["-mode", "calc", "-n", "1"]],
        ),
        entry(
            &dir,
            "h2",
            &Meta::host("node-b"),
            &[&["-mode", "calc", "-n", "9"]],
        ),
    ];
    Fleet {
        _tmp: tmp,
        dir,
        deploy,
        ds,
        host,
    }
}

fn owner_by_name(db: &Database, name: &str) -> db::Owner {
    db.owners()
        .unwrap()
        .into_iter()
        .find(|o| o.owner_name == name)
        .unwrap_or_else(|| panic!("no owner {name}"))
}

fn refs(v: &[PathBuf]) -> Vec<&Path> {
    v.iter().map(PathBuf::as_path).collect()
}

#[test]
fn owners_are_inferred_and_grouped() {
    let f = fleet();
    let s = compile(&f.dir, &[]);
    assert_eq!(s["compiled"], 5);
    assert_eq!(s["failed"], 0);
    let db = Database::open_collection(&f.dir).unwrap();
    let owners = db.owners().unwrap();
    let keys: Vec<(String, String, String, String)> = owners
        .iter()
        .map(|o| {
            (
                o.namespace.clone(),
                o.owner_type.clone(),
                o.owner_name.clone(),
                o.binary_name.clone(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (
                "_host_".into(),
                "Host".into(),
                "fixture".into(),
                "fixture".into()
            ),
            (
                "infra".into(),
                "DaemonSet".into(),
                "agent".into(),
                "fixture".into()
            ),
            (
                "shop".into(),
                "Deployment".into(),
                "api".into(),
                "fixture".into()
            ),
        ]
    );
    let api = owner_by_name(&db, "api");
    assert_eq!(api.report_count, 2);
    assert_eq!(api.instance_count, 2);
    assert_eq!(api.process_count, 3);
    assert_eq!(api.module_path, "example.com/covfleet/fixture");
    assert_eq!(api.images, vec!["registry.example/shop/api:v1".to_string()]);
    let reports = db.owner_reports(api.id).unwrap();
    assert_eq!(
        reports
            .iter()
            .map(|r| r.labels.pod_name.as_str())
            .collect::<Vec<_>>(),
        ["api-7d9f8b6c54-x2kqz", "api-7d9f8b6c54-zz7wq"]
    );
    assert_eq!(db.owner(api.id).unwrap().unwrap(), api);
    assert_eq!(db.pending_groups().unwrap(), 0);
}

#[test]
fn sum_merge_equals_go_tool_covdata_textfmt() {
    let f = fleet();
    compile(&f.dir, &["--merge", "sum"]);
    let db = Database::open_collection(&f.dir).unwrap();
    for (name, dirs) in [("api", &f.deploy), ("agent", &f.ds), ("fixture", &f.host)] {
        let o = owner_by_name(&db, name);
        assert_eq!(o.merge, "sum");
        let ours = profile_lines(&db.owner_profile(o.id).unwrap());
        let theirs = go_textfmt(&refs(dirs));
        assert_eq!(
            ours, theirs,
            "owner {name}: merged profile differs from go tool covdata textfmt"
        );
        assert!(!db.owner_profile(o.id).unwrap().contains("zz_covfleet"));
    }
}

#[test]
fn file_stats_and_percent_match_go_tool_covdata() {
    let f = fleet();
    compile(&f.dir, &[]);
    let db = Database::open_collection(&f.dir).unwrap();
    for (name, dirs) in [("api", &f.deploy), ("agent", &f.ds), ("fixture", &f.host)] {
        let o = owner_by_name(&db, name);
        let go_lines = go_textfmt(&refs(dirs));
        let want = file_totals(&go_lines);
        let stats = db.owner_file_stats(o.id).unwrap();
        let got: std::collections::BTreeMap<String, (i64, i64)> = stats
            .iter()
            .map(|s| (s.file_path.clone(), (s.total_stmts, s.covered_stmts)))
            .collect();
        assert_eq!(got, want, "owner {name}: per-file statistics");
        assert!(got.keys().all(|k| !k.contains("zz_covfleet")));
        let (t, c) = want.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
        assert_eq!(
            (o.total_stmts, o.covered_stmts),
            (t, c),
            "owner {name}: totals"
        );
        assert!((o.coverage_pct - 100.0 * c as f64 / t as f64).abs() < 1e-9);
        let (rt, rc, _) = db.recount(o.id).unwrap();
        assert_eq!((rt as i64, rc as i64), (t, c));
        // Packages without the injected file: Go's own percent line.
        for (pkg, pct) in go_percent(&refs(dirs)) {
            if pkg == "example.com/covfleet/fixture" {
                continue;
            }
            let (pt, pc) = stats
                .iter()
                .filter(|s| s.package_path == pkg)
                .fold((0, 0), |a, s| (a.0 + s.total_stmts, a.1 + s.covered_stmts));
            assert_eq!(
                format!("{:.1}%", 100.0 * pc as f64 / pt as f64),
                pct,
                "owner {name} package {pkg}"
            );
        }
    }
}

#[test]
fn replicas_merge_with_max_by_default() {
    let f = fleet();
    compile(&f.dir, &[]);
    let db = Database::open_collection(&f.dir).unwrap();
    let o = owner_by_name(&db, "fixture");
    assert_eq!(o.merge, "max");
    // Per block: the max over the two hosts' profiles.
    let a = go_textfmt(&[&f.host[0]]);
    let b = go_textfmt(&[&f.host[1]]);
    let split = |l: &String| {
        let (k, c) = l.rsplit_once(' ').unwrap();
        (k.to_string(), c.parse::<u64>().unwrap())
    };
    let want: Vec<String> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| {
            let ((kx, cx), (ky, cy)) = (split(x), split(y));
            assert_eq!(kx, ky);
            format!("{kx} {}", cx.max(cy))
        })
        .collect();
    assert_eq!(profile_lines(&db.owner_profile(o.id).unwrap()), want);
    // Fib's loop ran 8 times in the n=9 run: the max, not 8 + 0.
    let blocks = db
        .file_blocks(o.id, "example.com/covfleet/fixture/calc/calc.go")
        .unwrap();
    assert!(blocks.iter().any(|b| b.count == 28), "{blocks:?}");
    let lines = db
        .line_coverage(o.id, "example.com/covfleet/fixture/calc/calc.go")
        .unwrap();
    assert!(lines.iter().any(|l| l.status() == "miss"));
    assert!(lines.iter().any(|l| l.status() == "hit"));
}

#[test]
fn snapshots_of_one_process_count_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // One process writing 3 intermediate snapshots plus its exit snapshot,
    // and a second process (a restart) that adds.
    let e = entry(
        dir,
        "s1",
        &Meta::pod("ns", "web-0", "web"),
        &[
            &["-mode", "both", "-n", "5", "-snapshots", "3"],
            &["-mode", "calc", "-n", "2"],
        ],
    );
    compile(dir, &["--merge", "sum"]);
    let db = Database::open_collection(dir).unwrap();
    let o = owner_by_name(&db, "web");
    assert_eq!(o.owner_type, "StatefulSet");
    assert_eq!(o.process_count, 2);
    let r = &db.owner_reports(o.id).unwrap()[0];
    assert_eq!((r.processes, r.snapshots), (2, 5));
    // Oracle: go tool covdata on only the latest file of each process.
    let latest = tmp.path().join("latest");
    std::fs::create_dir(&latest).unwrap();
    let mut by_pid: std::collections::BTreeMap<String, (u128, PathBuf)> = Default::default();
    for f in std::fs::read_dir(&e).unwrap() {
        let p = f.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if n.starts_with("covmeta.") {
            std::fs::copy(&p, latest.join(&n)).unwrap();
        } else if n.starts_with("covcounters.") {
            let parts: Vec<&str> = n.split('.').collect();
            let t: u128 = parts[3].parse().unwrap();
            let slot = by_pid.entry(parts[2].to_string()).or_insert((0, p.clone()));
            if t >= slot.0 {
                *slot = (t, p.clone());
            }
        }
    }
    assert_eq!(by_pid.len(), 2);
    for (_, p) in by_pid.values() {
        std::fs::copy(p, latest.join(p.file_name().unwrap())).unwrap();
    }
    let ours = profile_lines(&db.owner_profile(o.id).unwrap());
    assert_eq!(ours, go_textfmt(&[&latest]));
    // …whereas go tool covdata over the whole directory sums the snapshots.
    assert_ne!(ours, go_textfmt(&[&e]));
}

#[test]
fn text_profiles_are_compiled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = dir.join("coverage/unit-tests");
    std::fs::create_dir_all(&e).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../go/fixtures/collection");
    let st = std::process::Command::new("go")
        .args([
            "test",
            "-covermode=count",
            "-coverpkg=./...",
            "-coverprofile",
        ])
        .arg(e.join("coverage.out"))
        .arg("./...")
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let text = std::fs::read_to_string(e.join("coverage.out")).unwrap();
    compile(dir, &[]);
    let db = Database::open_collection(dir).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1);
    let o = &owners[0];
    assert_eq!(o.mode, "count");
    assert_eq!(db.owner_reports(o.id).unwrap()[0].format, "text");
    // `go test` writes one line per block per test binary: merge them as
    // `go tool cover` does (sum), then compare.
    let mut merged: std::collections::BTreeMap<String, (String, u64)> = Default::default();
    for l in profile_lines(&text) {
        let (rest, c) = l.rsplit_once(' ').unwrap();
        let (k, s) = rest.rsplit_once(' ').unwrap();
        let e = merged.entry(k.to_string()).or_insert((s.to_string(), 0));
        e.1 += c.parse::<u64>().unwrap();
    }
    let want: Vec<String> = merged
        .into_iter()
        .map(|(k, (s, c))| format!("{k} {s} {c}"))
        .collect();
    assert_eq!(profile_lines(&db.owner_profile(o.id).unwrap()), want);
    let stats = db.owner_file_stats(o.id).unwrap();
    let calc = stats
        .iter()
        .find(|s| s.file_path.ends_with("calc/calc.go"))
        .unwrap();
    assert_eq!(
        calc.covered_stmts, calc.total_stmts,
        "calc's tests cover all of calc.go"
    );
}

/// The seed-04 flow: an operator built as a test binary whose only test
/// runs main() (`go test -c -cover -covermode=atomic -tags testrunmain`, run
/// with `-test.run '^TestRunMain$' -test.coverprofile=...`). The text profile
/// it writes when main returns is an entry compile reads, the injected
/// server's file left out (docs/test-binaries.md).
#[test]
fn seed04_test_binary_profile_is_compiled() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("op");
    std::fs::create_dir_all(&src).unwrap();
    let files = [
        ("go.mod", "module example.com/op\n\ngo 1.16\n".to_string()),
        (
            "main.go",
            r#"package main

import (
	"fmt"
	"os"
)

func reconcile(kind string) string {
	switch kind {
	case "create":
		return "created"
	case "delete":
		return "deleted"
	}
	return "ignored"
}

func main() {
	for _, a := range os.Args[1:] {
		fmt.Println(reconcile(a))
	}
}
"#
            .to_string(),
        ),
        ("main_test.go", RUN_MAIN_TEST.to_string()),
        (
            "zz_covfleet_coverage_server.go",
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../go/covserver/coverage_server.go"),
            )
            .unwrap(),
        ),
    ];
    for (name, text) in &files {
        std::fs::write(src.join(name), text).unwrap();
    }
    go_test_c(&src, &["-tags", "testrunmain"]);
    // doctor: a test binary with the server but without the companion has
    // nothing live to serve, and is told how to get it.
    let (_, out, _) = covfleet(&["doctor", src.join("op.test").to_str().unwrap(), "--json"]);
    let tb = test_binary_finding(&out);
    assert!(
        tb["fix"].as_str().unwrap_or("").contains("--test-binary"),
        "{tb:#}"
    );
    let dir = tmp.path().join("collection");
    let e = dir.join("coverage/op-test-binary");
    std::fs::create_dir_all(&e).unwrap();
    // The program's own arguments follow the test flags, as in the seed's
    // entrypoint (`exec op.test -test.run ... -test.coverprofile=... "$@"`)
    // — Go's flag parsing stops at the first non-flag.
    let profile = e.join("coverage.out");
    let run = std::process::Command::new(src.join("op.test"))
        .arg("-test.run")
        .arg("^TestRunMain$")
        .arg(format!("-test.coverprofile={}", profile.display()))
        .args(["create", "create", "other"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.starts_with("mode: atomic\n"), "{text}");

    compile(&dir, &[]);
    let db = Database::open_collection(&dir).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let o = &owners[0];
    assert_eq!(o.mode, "atomic");
    assert_eq!(db.owner_reports(o.id).unwrap()[0].format, "text");
    // The compiled profile is the test binary's, less the injected server.
    assert_eq!(
        profile_lines(&db.owner_profile(o.id).unwrap()),
        profile_lines(&text)
    );
    let stats = db.owner_file_stats(o.id).unwrap();
    assert!(
        stats.iter().all(|s| !s.file_path.contains("zz_covfleet")),
        "the injected server counted: {stats:?}"
    );
    let main = stats
        .iter()
        .find(|s| s.file_path.ends_with("main.go"))
        .unwrap();
    // create and the default branch ran, delete did not.
    assert!(
        main.covered_stmts > 0 && main.covered_stmts < main.total_stmts,
        "{main:?}"
    );
}

/// Seed 04, live: the same kind of test binary, instrumented with
/// `--test-binary` and built with `-tags testrunmain,covfleet_testbinary
/// -ldflags=-checklinkname=0`, serves live coverage while its test runs
/// (COVERAGE_IN_TESTS=1): `covfleet collect --url` takes a snapshot, compile
/// reads it, and what it says ran is what ran so far (docs/test-binaries.md).
#[test]
fn seed04_test_binary_serves_live_coverage_to_collect() {
    use std::io::{BufRead, Write};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("op");
    std::fs::create_dir_all(&src).unwrap();
    let files = [
        ("go.mod", "module example.com/op\n\ngo 1.16\n"),
        (
            "main.go",
            r#"package main

import (
	"bufio"
	"fmt"
	"os"
)

func reconcile(kind string) string {
	switch kind {
	case "create":
		return "created"
	case "delete":
		return "deleted"
	}
	return "ignored"
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println(reconcile(in.Text()))
	}
}
"#,
        ),
        ("main_test.go", RUN_MAIN_TEST),
    ];
    for (name, text) in &files {
        std::fs::write(src.join(name), text).unwrap();
    }
    let s = src.display().to_string();
    let (code, out, err) = covfleet(&["instrument", "--test-binary", &s]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("zz_covfleet_coverage_testbinary.go"), "{out}");
    go_test_c(
        &src,
        &[
            "-tags",
            "testrunmain,covfleet_testbinary",
            "-ldflags=-checklinkname=0",
        ],
    );
    let (_, out, _) = covfleet(&["doctor", src.join("op.test").to_str().unwrap(), "--json"]);
    let tb = test_binary_finding(&out);
    assert!(
        tb["summary"].as_str().unwrap().contains("companion") && tb["fix"].is_null(),
        "{tb:#}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let profile = tmp.path().join("exit.out");
    let mut op = std::process::Command::new(src.join("op.test"))
        .arg("-test.run")
        .arg("^TestRunMain$")
        .arg(format!("-test.coverprofile={}", profile.display()))
        .env("COVERAGE_IN_TESTS", "1")
        .env("COVERAGE_PORT", port.to_string())
        .env("COVERAGE_BIND", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = op.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(op.stdout.take().unwrap());
    writeln!(stdin, "create").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "created\n");

    let dir = tmp.path().join("collection");
    let d = dir.display().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let mut last = String::new();
    let collected = (0..100).any(|_| {
        let (code, _, err) = covfleet(&["collect", "--url", &url, "-o", &d]);
        last = err;
        code == 0 || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    assert!(collected, "collect from the test binary: {last}");
    drop(stdin);
    assert!(op.wait().unwrap().success());

    compile(&dir, &[]);
    let db = Database::open_collection(&dir).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let o = &owners[0];
    assert_eq!(o.mode, "atomic");
    let stats = db.owner_file_stats(o.id).unwrap();
    let main = stats
        .iter()
        .find(|s| s.file_path.ends_with("main.go"))
        .unwrap();
    // The loop and the "create" case ran; "delete" and the default did not.
    assert!(
        main.covered_stmts > 0 && main.covered_stmts + 2 <= main.total_stmts,
        "{main:?}"
    );
    let live = db.owner_profile(o.id).unwrap();
    let count = |text: &str, line: u32| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("example.com/op/main.go:{line}.")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    // Blocks start at their case clause: `case "create":` is line 11.
    assert_eq!(count(&live, 11), 1, "create ran once:\n{live}");
    assert_eq!(count(&live, 13), 0, "delete never ran:\n{live}");
    // The profile Go writes at exit agrees with the live snapshot.
    let exit = std::fs::read_to_string(&profile).unwrap();
    assert_eq!(count(&exit, 11), 1, "{exit}");
    assert_eq!(count(&exit, 13), 0, "{exit}");
}

/// Seed 04's test that runs the program: `main()` under `-tags testrunmain`.
const RUN_MAIN_TEST: &str = "//go:build testrunmain\n\npackage main\n\nimport \"testing\"\n\nfunc TestRunMain(t *testing.T) {\n\tmain()\n}\n";

/// `go test -c -cover -covermode=atomic EXTRA -o op.test` in `src`, asserting success.
fn go_test_c(src: &Path, extra: &[&str]) {
    let out = std::process::Command::new("go")
        .args(["test", "-c", "-cover", "-covermode=atomic"])
        .args(extra)
        .args(["-o", "op.test"])
        .current_dir(src)
        .env("GOFLAGS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go test -c {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `test-binary` finding of `covfleet doctor BIN --json`'s output.
fn test_binary_finding(json: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("doctor --json: {e}: {json}"));
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "test-binary")
        .unwrap_or_else(|| panic!("no test-binary finding: {v:#}"))
        .clone()
}

#[test]
fn owner_references_win_over_pod_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut m = Meta::pod("ns", "weird-name", "c");
    m.extra.push((
        "owner_references".into(),
        serde_json::json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "frontend-5d4c7b9f8", "uid": "8d1c7c2e-1111-4c3b-9a4e-000000000001", "controller": true}]),
    ));
    entry(dir, "e1", &m, &[&["-n", "1"]]);
    compile(dir, &[]);
    let db = Database::open_collection(dir).unwrap();
    let o = &db.owners().unwrap()[0];
    assert_eq!(
        (o.owner_type.as_str(), o.owner_name.as_str()),
        ("Deployment", "frontend")
    );
}

fn owners_snapshot(dir: &Path) -> Vec<String> {
    let db = Database::open_collection(dir).unwrap();
    let mut v: Vec<String> = db
        .owners()
        .unwrap()
        .into_iter()
        .map(|o| {
            let files = db.owner_file_stats(o.id).unwrap();
            format!(
                "{}|{}|{}|{}|{}|{}|{}|{}|{}|{:?}|{}",
                o.namespace,
                o.owner_type,
                o.owner_name,
                o.binary_name,
                o.meta_hash,
                o.report_count,
                o.process_count,
                o.total_stmts,
                o.covered_stmts,
                files,
                db.owner_profile(o.id).unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn incremental_compiles_touch_only_what_changed() {
    let f = fleet();
    let s1 = compile(&f.dir, &[]);
    assert_eq!(
        (s1["compiled"].as_u64(), s1["owners_recomputed"].as_u64()),
        (Some(5), Some(3))
    );
    let before = owners_snapshot(&f.dir);
    let ids1: Vec<i64> = Database::open_collection(&f.dir)
        .unwrap()
        .owners()
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();

    let s2 = compile(&f.dir, &[]);
    assert_eq!(
        (
            s2["compiled"].as_u64(),
            s2["unchanged"].as_u64(),
            s2["owners_recomputed"].as_u64()
        ),
        (Some(0), Some(5), Some(0))
    );
    assert_eq!(owners_snapshot(&f.dir), before);

    // A new replica: only its entry and its owner.
    entry(
        &f.dir,
        "d2",
        &Meta::pod("infra", "agent-q9z4m", "agent"),
        &[&["-mode", "words", "-n", "1"]],
    );
    let s3 = compile(&f.dir, &[]);
    assert_eq!(
        (s3["compiled"].as_u64(), s3["owners_recomputed"].as_u64()),
        (Some(1), Some(1))
    );
    let db = Database::open_collection(&f.dir).unwrap();
    assert_eq!(owner_by_name(&db, "agent").report_count, 2);
    let ids3: Vec<i64> = db.owners().unwrap().iter().map(|o| o.id).collect();
    assert_eq!(ids1, ids3, "owner ids are stable");
    drop(db);

    // New data in an existing entry (another process).
    run_fixture(&f.host[0], &["-mode", "words", "-n", "2"]);
    let s4 = compile(&f.dir, &[]);
    assert_eq!(
        (s4["compiled"].as_u64(), s4["owners_recomputed"].as_u64()),
        (Some(1), Some(1))
    );

    // --update forces matching entries only (AND of filters).
    let s5 = compile(
        &f.dir,
        &["--update", "namespace=shop", "--update", "node=node-*"],
    );
    assert_eq!(
        (s5["compiled"].as_u64(), s5["owners_recomputed"].as_u64()),
        (Some(2), Some(1))
    );
    let s6 = compile(&f.dir, &["--update", "*"]);
    assert_eq!(s6["compiled"].as_u64(), Some(6));

    // A removed entry: its owner goes away.
    std::fs::remove_dir_all(&f.ds[0]).unwrap();
    std::fs::remove_dir_all(f.dir.join("coverage/d2")).unwrap();
    let s7 = compile(&f.dir, &[]);
    assert_eq!(
        (
            s7["removed"].as_u64(),
            s7["owners_deleted"].as_u64(),
            s7["owners"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );

    // Changing the merge mode recomputes every owner.
    let s8 = compile(&f.dir, &["--merge", "sum"]);
    assert_eq!(
        (s8["compiled"].as_u64(), s8["owners_recomputed"].as_u64()),
        (Some(0), Some(2))
    );
}

#[test]
fn bad_entries_are_reported_and_the_rest_compiles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    entry(dir, "good", &Meta::pod("ns", "ok-0", "c"), &[&["-n", "1"]]);
    let bad = entry(dir, "bad", &Meta::pod("ns", "bad-0", "c"), &[&["-n", "1"]]);
    for f in std::fs::read_dir(&bad).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("covmeta.")
        {
            std::fs::write(&p, b"\0cvmgarbage").unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("coverage/empty")).unwrap();
    let c = dir.display().to_string();
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("entry bad:") && err.contains("covmeta."),
        "{err}"
    );
    assert!(err.contains("entry empty: no coverage data"), "{err}");
    let db = Database::open_collection(dir).unwrap();
    assert_eq!(db.owners().unwrap().len(), 1);
    // Unchanged broken entries are still reported; fixing one clears it.
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("entry bad:") && err.contains("unchanged since the last compile"),
        "{err}"
    );
    std::fs::remove_dir_all(&bad).unwrap();
    std::fs::remove_dir_all(dir.join("coverage/empty")).unwrap();
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 0, "{err}");
    // Usage errors exit 2.
    let (code, _, err) = covfleet(&["compile", "--collection", "/nonexistent/x"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = covfleet(&["compile", "--collection", &c, "--update", "colour=red"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown field"), "{err}");
    let (code, _, _) = covfleet(&["compile", "--collection", &c, "--merge", "avg"]);
    assert_eq!(code, 2);
}

#[test]
fn killing_compile_at_any_moment_leaves_a_usable_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let reference = tmp.path().join("ref");
    let seeds = [
        entry(
            &dir,
            "seed-a",
            &Meta::pod("ns", "svc-6c9d8f7b5-k2x7q", "svc"),
            &[&["-mode", "both", "-n", "4"]],
        ),
        entry(
            &dir,
            "seed-b",
            &Meta::pod("ns", "svc-6c9d8f7b5-p4z8w", "svc"),
            &[&["-mode", "words", "-n", "2"], &["-n", "6"]],
        ),
    ];
    for i in 0..80 {
        let m = Meta::pod(
            &format!("ns{}", i % 7),
            &format!("svc{}-{}", i % 13, i % 3),
            "svc",
        );
        copy_entry(&dir, &seeds[i % 2], &format!("e{i:03}"), &m);
    }
    // The reference: the same collection compiled without interruption.
    copy_dir(&dir.join("coverage"), &reference.join("coverage"));
    compile(&reference, &[]);

    let c = dir.display().to_string();
    let mut kills = 0;
    let mut delay_ms = 5;
    loop {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_covfleet"))
            .args(["compile", "--collection", &c, "--quiet", "--update", "*"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        // Whatever state it died in, the database opens and is consistent.
        if dir.join("coverage.db").exists() {
            let conn = rusqlite::Connection::open(dir.join("coverage.db")).unwrap();
            let ok: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
            if let Ok(db) = Database::open_collection(&dir) {
                for o in db.owners().unwrap() {
                    db.owner_file_stats(o.id).unwrap();
                    db.owner_profile(o.id).unwrap();
                }
            }
        }
        delay_ms += 15;
        assert!(delay_ms < 20_000, "compile never finished");
    }
    eprintln!("compile killed {kills} times before it completed");
    assert!(
        kills > 0,
        "compile finished before the first kill; nothing tested"
    );
    let s = compile(&dir, &[]);
    assert_eq!(s["failed"], 0);
    assert_eq!(
        Database::open_collection(&dir)
            .unwrap()
            .pending_groups()
            .unwrap(),
        0
    );
    assert_eq!(owners_snapshot(&dir), owners_snapshot(&reference));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn one_process_seen_in_two_entries_counts_once() {
    // One process, snapshots split over two entry dirs of the same pod and
    // container (e.g. two collect runs): only the latest snapshot counts.
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    run_fixture(&scratch, &["-mode", "both", "-n", "6", "-snapshots", "2"]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let meta = files
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("covmeta.")
        })
        .unwrap();
    let mut counters: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("covcounters.")
        })
        .collect();
    counters.sort_by_key(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .rsplit('.')
            .next()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    });
    assert_eq!(counters.len(), 3);
    let col = tmp.path().join("col");
    let m = Meta::pod("ns", "cache-0", "cache");
    for (name, snap) in [("early", counters[0]), ("late", counters[2])] {
        let d = col.join("coverage").join(name);
        write_meta(&d, &m, None);
        std::fs::copy(meta, d.join(meta.file_name().unwrap())).unwrap();
        std::fs::copy(snap, d.join(snap.file_name().unwrap())).unwrap();
    }
    compile(&col, &["--merge", "sum"]);
    let db = Database::open_collection(&col).unwrap();
    let o = owner_by_name(&db, "cache");
    assert_eq!(
        (o.report_count, o.instance_count, o.process_count),
        (2, 1, 1)
    );
    let late = col.join("coverage/late");
    assert_eq!(
        profile_lines(&db.owner_profile(o.id).unwrap()),
        go_textfmt(&[&late])
    );
}

#[test]
fn container_restarts_with_the_same_pid_add_up() {
    // Two runs of one container, both PID 1 (as in a PID namespace), told
    // apart by the restart count collect records in metadata.json. The later
    // run dominates the earlier one, so without the tag they would look like
    // two snapshots of one process.
    let tmp = tempfile::tempdir().unwrap();
    let col = tmp.path();
    let mut dirs = Vec::new();
    for (restart, n) in [("0", "5"), ("1", "9")] {
        let mut m = Meta::pod("ns", "db-0", "db");
        m.extra.push((
            "process".into(),
            serde_json::json!({"pod_uid": "1234-abcd", "restart_count": restart}),
        ));
        let d = entry(
            col,
            &format!("ns_db-0_db_fixture_p1-r{restart}"),
            &m,
            &[&["-mode", "calc", "-n", n]],
        );
        for f in std::fs::read_dir(&d).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("covcounters.") {
                let parts: Vec<&str> = rest.split('.').collect();
                std::fs::rename(
                    &p,
                    d.join(format!("covcounters.{}.1.{}", parts[0], parts[2])),
                )
                .unwrap();
            }
        }
        dirs.push(d);
    }
    compile(col, &["--merge", "sum"]);
    let db = Database::open_collection(col).unwrap();
    let o = owner_by_name(&db, "db");
    assert_eq!((o.instance_count, o.process_count), (1, 2));
    assert_eq!(
        profile_lines(&db.owner_profile(o.id).unwrap()),
        go_textfmt(&refs(&dirs))
    );
}

#[test]
fn a_truncated_snapshot_is_skipped_with_a_warning() {
    // An interrupted upload leaves half a counter file next to the previous
    // snapshot: the good one counts, the broken one is named in a warning.
    let tmp = tempfile::tempdir().unwrap();
    let col = tmp.path().join("col");
    let d = entry(
        &col,
        "e",
        &Meta::pod("ns", "svc-0", "svc"),
        &[&["-mode", "both", "-n", "3"]],
    );
    let good = tmp.path().join("good");
    std::fs::create_dir(&good).unwrap();
    for f in std::fs::read_dir(&d).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, good.join(p.file_name().unwrap())).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("covcounters.") {
            let parts: Vec<&str> = rest.split('.').collect();
            let bytes = std::fs::read(&p).unwrap();
            let bad = d.join(format!("covcounters.{}.{}.99", parts[0], parts[1]));
            std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let c = col.display().to_string();
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning") && err.contains(".99"), "{err}");
    let db = Database::open_collection(&col).unwrap();
    let o = owner_by_name(&db, "svc");
    assert_eq!(
        profile_lines(&db.owner_profile(o.id).unwrap()),
        go_textfmt(&[&good])
    );
}

#[test]
fn two_builds_in_one_entry_are_two_owners_rows() {
    // A second build of the binary (another covermode, so another meta hash)
    // writing into the same directory: one report per meta hash, and the
    // owner key includes the hash.
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../go/fixtures/collection");
    let bin2 = tmp.path().join("fixture-count");
    let st = std::process::Command::new("go")
        .args(["build", "-cover", "-covermode=count", "-o"])
        .arg(&bin2)
        .arg(".")
        .current_dir(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let col = tmp.path().join("col");
    let d = entry(
        &col,
        "e",
        &Meta::pod("ns", "svc-0", "svc"),
        &[&["-mode", "calc", "-n", "4"]],
    );
    let out = std::process::Command::new(&bin2)
        .args(["-mode", "words"])
        .env("GOCOVERDIR", &d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = compile(&col, &[]);
    assert_eq!(s["reports_written"], 2);
    let db = Database::open_collection(&col).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 2);
    assert_ne!(owners[0].meta_hash, owners[1].meta_hash);
    let mut modes: Vec<&str> = owners.iter().map(|o| o.mode.as_str()).collect();
    modes.sort();
    assert_eq!(modes, ["atomic", "count"]);
    for o in &owners {
        // go tool covdata cannot be pointed at one hash of a directory; the
        // per-hash totals must still add up to the same statement count.
        assert_eq!(o.report_count, 1);
        assert!(o.covered_stmts > 0 && o.covered_stmts < o.total_stmts);
    }
    assert_eq!(owners[0].total_stmts, owners[1].total_stmts);
}

#[test]
fn a_seed_database_is_rebuilt_and_refused_by_the_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let col = tmp.path();
    entry(col, "e", &Meta::pod("ns", "svc-0", "svc"), &[&["-n", "2"]]);
    {
        // The seed's Go collector: schema 2, coverage text per report.
        let conn = rusqlite::Connection::open(col.join("coverage.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (2);
             CREATE TABLE owners (id INTEGER PRIMARY KEY, namespace TEXT, owner_type TEXT, owner_name TEXT,
               binary_name TEXT, coverage_text TEXT);
             INSERT INTO owners VALUES (1, 'x', 'Deployment', 'y', 'z', 'mode: set');",
        )
        .unwrap();
    }
    let err = Database::open_collection(col).unwrap_err().to_string();
    assert!(
        err.contains("not a covfleet coverage database") && err.contains("schema version 2"),
        "{err}"
    );
    compile(col, &[]);
    let db = Database::open_collection(col).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].owner_name, "svc");
}

#[test]
fn alternating_counter_slots_of_collect_count_once() {
    // collect's layout: `covcounters.<hash>.<pid>.1|.2` hold the two latest
    // snapshots of one process, in either order.
    let tmp = tempfile::tempdir().unwrap();
    let col = tmp.path().join("col");
    let d = entry(
        &col,
        "ns_web-0_web_fixture_p7-r0",
        &Meta::pod("ns", "web-0", "web"),
        &[&["-mode", "both", "-n", "4", "-snapshots", "1"]],
    );
    let mut snaps: Vec<(u128, PathBuf)> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.strip_prefix("covcounters.")
                .map(|r| (r.rsplit('.').next().unwrap().parse().unwrap(), p.clone()))
        })
        .collect();
    snaps.sort();
    assert_eq!(snaps.len(), 2);
    let latest = tmp.path().join("latest");
    std::fs::create_dir(&latest).unwrap();
    for f in std::fs::read_dir(&d).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("covmeta.")
        {
            std::fs::copy(&p, latest.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(&snaps[1].1, latest.join(snaps[1].1.file_name().unwrap())).unwrap();
    let name = snaps[0]
        .1
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let parts: Vec<&str> = name.split('.').collect();
    // The newer snapshot in slot 1, the older in slot 2.
    std::fs::rename(
        &snaps[1].1,
        d.join(format!("covcounters.{}.{}.1", parts[1], parts[2])),
    )
    .unwrap();
    std::fs::rename(
        &snaps[0].1,
        d.join(format!("covcounters.{}.{}.2", parts[1], parts[2])),
    )
    .unwrap();
    compile(&col, &["--merge", "sum"]);
    let db = Database::open_collection(&col).unwrap();
    let o = owner_by_name(&db, "web");
    assert_eq!(o.process_count, 1);
    assert_eq!(
        profile_lines(&db.owner_profile(o.id).unwrap()),
        go_textfmt(&[&latest])
    );
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let f = fleet();
    let c = f.dir.display().to_string();
    // Not a terminal: the summary only, no drawing.
    let (code, _, err) = covfleet(&["compile", "--collection", &c, "--update", "*"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("compiled "), "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b') && !err.contains("entries ["),
        "{err:?}"
    );
    // Under a pseudo-terminal (util-linux `script`), indicatif draws the bar,
    // then clears it before the summary.
    let cmd = format!(
        "{} compile --collection {c} --update '*'",
        env!("CARGO_BIN_EXE_covfleet")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("run script(1)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("compiling ["), "{tty:?}");
    assert!(tty.contains("entries"), "{tty:?}");
    assert!(tty.contains("compiled "), "{tty:?}");
}

/// Issue 13 #2: an entry whose covmeta carries another binary's hash with
/// altered content (file names) is that entry's error; the real binary's
/// report keeps its own file names whichever entry compile reads first.
#[test]
fn issue13_2_forged_meta_under_another_hash_poisons_nothing() {
    for forged_first in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (a, b) = if forged_first {
            ("b-good", "a-evil")
        } else {
            ("a-good", "b-evil")
        };
        let good = entry(dir, a, &Meta::pod("ns", "ok-0", "c"), &[&["-n", "1"]]);
        let evil = copy_entry(dir, &good, b, &Meta::pod("evil", "evil-0", "c"));
        for f in std::fs::read_dir(&evil).unwrap() {
            let p = f.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("covmeta.")
            {
                let mut m = covdata::MetaFile::decode(&std::fs::read(&p).unwrap()).unwrap();
                for pkg in &mut m.packages {
                    for func in &mut pkg.funcs {
                        func.file = format!("{}/EVIL.go", pkg.path);
                    }
                }
                // Same stored package and file hashes, altered content.
                std::fs::write(&p, m.encode()).unwrap();
            }
        }
        let c = dir.display().to_string();
        let (code, _, err) = covfleet(&["compile", "--collection", &c]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!("entry {b}:")) && err.contains("does not match its hash"),
            "{err}"
        );
        let db = Database::open_collection(dir).unwrap();
        let owners = db.owners().unwrap();
        assert_eq!(owners.len(), 1, "{owners:?}");
        let files = db.owner_file_stats(owners[0].id).unwrap();
        assert!(!files.is_empty());
        assert!(
            files.iter().all(|f| !f.file_path.contains("EVIL")),
            "{files:?}"
        );
    }
}

/// Issue 13 #8: `render` reads a collection on a read-only mount (the WAL
/// database's -shm cannot be created there) into an output elsewhere.
#[test]
fn issue13_8_render_reads_a_read_only_collection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    entry(&dir, "good", &Meta::pod("ns", "ok-0", "c"), &[&["-n", "1"]]);
    let c = dir.display().to_string();
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_file(dir.join("coverage.db-shm"));
    let _ = std::fs::remove_file(dir.join("coverage.db-wal"));
    let out = tmp.path().join("site");
    // A private mount namespace: the read-only bind mount is seen only by
    // this command (needs root, as the netns tests do).
    let script = format!(
        "mount --bind {c} {c} && mount -o remount,bind,ro {c} && {bin} render --collection {c} --output-dir {o}",
        bin = env!("CARGO_BIN_EXE_covfleet"),
        o = out.display()
    );
    let res = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    assert!(
        res.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(out.join("index.html").is_file());
}

/// Issue 13 #15: a second compile on a collection does not fail inside
/// SQLite; it says which compile holds the collection, and compiles once
/// the first one is done.
#[test]
fn issue13_15_concurrent_compile_names_the_running_one() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    entry(dir, "good", &Meta::pod("ns", "ok-0", "c"), &[&["-n", "1"]]);
    // Hold the lock as a running compile does (flock on the lock file).
    let mut held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.join(".coverage.db.lock"))
        .unwrap();
    held.try_lock().unwrap();
    write!(held, "{}", std::process::id()).unwrap();
    let c = dir.display().to_string();
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "another compile is running on {c} (pid {})",
            std::process::id()
        )),
        "{err}"
    );
    assert!(!dir.join("coverage.db").exists());
    drop(held);
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 0, "{err}");
}

/// Issue 13 #16: a render that runs out of disk space leaves no `*.tmp~`
/// files behind, and a later run removes those a killed run left.
#[test]
fn issue13_16_disk_full_render_leaves_no_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    entry(&dir, "good", &Meta::pod("ns", "ok-0", "c"), &[&["-n", "1"]]);
    let c = dir.display().to_string();
    let (code, _, err) = covfleet(&["compile", "--collection", &c]);
    assert_eq!(code, 0, "{err}");
    let out = tmp.path().join("site");
    std::fs::create_dir_all(&out).unwrap();
    // A 40 KiB tmpfs in a private mount namespace: the site does not fit.
    let script = format!(
        "mount -t tmpfs -o size=40k tmpfs {o} && {bin} render --collection {c} --output-dir {o}; \
         echo rc=$?; find {o} -name '*.tmp~'",
        bin = env!("CARGO_BIN_EXE_covfleet"),
        o = out.display()
    );
    let res = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let text = String::from_utf8_lossy(&res.stdout);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(text.contains("rc=1"), "{text}\n{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!text.contains(".tmp~"), "{text}\n{err}");
    // Leftovers of a killed run are removed by the next one.
    std::fs::create_dir_all(out.join("b")).unwrap();
    std::fs::write(out.join("b/index.html.999.0.tmp~"), "x").unwrap();
    let o = out.display().to_string();
    let (code, _, err) = covfleet(&["render", "--collection", &c, "--output-dir", &o]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.join("b/index.html.999.0.tmp~").exists());
    assert!(out.join("index.html").is_file());
}
