//! Phases without resets, end to end: a real instrumented Go service
//! (`go/fixtures/phases`, built with `-cover -covermode=atomic` and the
//! injected coverage server) is driven through a baseline request set and
//! then an "e2e" set inside a network namespace, with live snapshots at the
//! phase boundaries (`collect --phase-start/--phase-end`, or signals to
//! `collect --watch --signal-phases`) and no reset. The oracle for a phase
//! is a separate process that ran only that phase's requests and wrote its
//! counters at exit (`GOCOVERDIR`), read by `go tool covdata textfmt`: the
//! phase's counts must equal it block by block.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use support::{Netns, covfleet, listening_port, read_json, server_go, signal, wait_for};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../go/fixtures/phases");

/// The phases service, built once per test binary.
fn service_bin() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("phases-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        for f in ["go.mod", "main.go", "handlers.go"] {
            std::fs::copy(Path::new(SRC).join(f), src.join(f)).unwrap();
        }
        std::fs::copy(server_go(), src.join("zz_covfleet_server.go")).unwrap();
        let out = Command::new("go")
            .args([
                "build",
                "-cover",
                "-covermode=atomic",
                "-o",
                "../phases",
                ".",
            ])
            .current_dir(&src)
            .output()
            .expect("go build");
        assert!(
            out.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("phases")
    })
}

/// One running service, driven through stdin.
struct Service {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
}

impl Service {
    fn start(ns: &Netns, gocoverdir: Option<&Path>) -> Service {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name])
            .arg(service_bin())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(d) = gocoverdir {
            c.env("GOCOVERDIR", d);
        }
        let mut child = c.spawn().expect("start the service");
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        let pid = child.id();
        wait_for("the service's coverage server", || {
            listening_port(pid).is_some()
        });
        Service { child, stdin, out }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends requests and waits for every answer.
    fn send(&mut self, reqs: &[(&str, i32)]) {
        let stdin = self.stdin.as_mut().unwrap();
        for (route, n) in reqs {
            writeln!(stdin, "{route} {n}").unwrap();
            stdin.flush().unwrap();
            let mut line = String::new();
            self.out.read_line(&mut line).unwrap();
            assert!(
                !line.trim().is_empty() && !line.starts_with("unknown"),
                "{line}"
            );
        }
    }

    /// Closes stdin: the service returns from main (writing GOCOVERDIR).
    fn finish(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }

    /// SIGTERM, then wait.
    fn stop(mut self) {
        signal(self.pid(), "TERM");
        let _ = self.child.wait();
    }
}

/// A covfleet process that must not outlive a failed test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BASELINE: &[(&str, i32)] = &[
    ("list", 5),
    ("get", 3),
    ("create", 4),
    ("create", 10),
    ("get", 200),
];
const E2E_1: &[(&str, i32)] = &[("get", 7), ("delete", 3), ("search", 20)];
const E2E_2: &[(&str, i32)] = &[("delete", 500), ("create", -1), ("list", 2), ("search", 4)];
/// After the e2e phase ended: must not count in it.
const AFTER: &[(&str, i32)] = &[("search", 2), ("list", 9), ("get", 500)];

/// handlers.go lines of a Go text profile, sorted.
fn handler_lines(profile: &str) -> Vec<String> {
    let mut v: Vec<String> = profile
        .lines()
        .filter(|l| l.contains("/handlers.go:"))
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// `go tool covdata textfmt` of a directory.
fn textfmt(dir: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out_file = tmp.path().join("profile.txt");
    let out = Command::new("go")
        .args(["tool", "covdata", "textfmt", "-i"])
        .arg(dir)
        .arg("-o")
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "textfmt -i {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(out_file).unwrap()
}

/// What a fresh process counts for `reqs` alone (handlers.go), by Go's tool.
fn oracle(ns: &Netns, reqs: &[&[(&str, i32)]]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Service::start(ns, Some(dir.path()));
    for r in reqs {
        s.send(r);
    }
    s.finish();
    let lines = handler_lines(&textfmt(dir.path()));
    assert!(
        lines.iter().any(|l| !l.ends_with(" 0")),
        "the oracle ran nothing"
    );
    lines
}

/// The phase's profile of the only owner, handlers.go lines.
fn phase_lines(dir: &Path, phase: &str) -> Vec<String> {
    let db = db::Database::open_collection(dir).unwrap();
    let ph = db
        .phase(phase)
        .unwrap()
        .unwrap_or_else(|| panic!("no phase {phase}"));
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let profile = db
        .phase_profile(ph.id, owners[0].id)
        .unwrap()
        .expect("the owner ran in the phase");
    handler_lines(&profile)
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(covfleet()).args(args).output().unwrap()
}

fn s(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mark_count(dir: &Path) -> usize {
    std::fs::read(dir.join("marks.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["marks"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// One-shot collections mark the boundaries; the process keeps running and
/// its counters are never reset.
#[test]
fn marked_phases_equal_separate_runs() {
    let ns = Netns::new();
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap().to_string();
    let url = "http://127.0.0.1:53700";
    let mut svc = Service::start(&ns, None);
    let collect = |extra: &[&str]| {
        let mut a = vec!["collect", "--url", url, "-o", &o];
        a.extend_from_slice(extra);
        let out = ns.covfleet(&a);
        assert!(out.status.success(), "{a:?}: {}", s(&out));
        out
    };
    svc.send(&[("list", 1)]); // before any phase
    collect(&["--phase-start", "baseline"]);
    svc.send(BASELINE);
    collect(&["--phase-end", "baseline", "--phase-start", "e2e"]);
    svc.send(E2E_1);
    svc.send(E2E_2);
    let out = collect(&["--phase-end", "e2e", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["marks"][0]["phase"], "e2e");
    assert_eq!(j["marks"][0]["kind"], "end");
    svc.send(AFTER);
    collect(&[]);

    // A phase starts once; an end needs a start: usage errors, nothing written.
    let again = ns.covfleet(&["collect", "--url", url, "-o", &o, "--phase-start", "e2e"]);
    assert_eq!(again.status.code(), Some(2), "{}", s(&again));
    assert!(s(&again).contains("already started"), "{}", s(&again));
    let stray = ns.covfleet(&["collect", "--url", url, "-o", &o, "--phase-end", "nope"]);
    assert_eq!(stray.status.code(), Some(2), "{}", s(&stray));
    assert_eq!(mark_count(out_dir.path()), 4);

    // The entry stays readable by Go's own tool (the boundary copies are
    // named so that it ignores them).
    let entries = support::entries(out_dir.path());
    assert_eq!(entries.len(), 1, "one process, one entry: {entries:?}");
    let md = read_json(&entries[0].join("metadata.json"));
    assert_eq!(md["marks_first"], 1);
    assert_eq!(md["marks_latest"], 4);
    let marks: Vec<String> = std::fs::read_dir(&entries[0])
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("phasemark."))
        .collect();
    assert_eq!(marks.len(), 4, "{marks:?}");
    assert!(!handler_lines(&textfmt(&entries[0])).is_empty());

    let out = run(&["compile", "--collection", &o, "--json"]);
    assert!(out.status.success(), "{}", s(&out));
    let sum: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sum["phases"], 2, "{sum}");
    svc.stop();

    let e2e = phase_lines(out_dir.path(), "e2e");
    assert_eq!(
        e2e,
        oracle(&ns, &[E2E_1, E2E_2]),
        "e2e phase vs a run of the e2e requests alone"
    );
    // The phase's file statistics agree with its blocks.
    let (stmts, ran) = e2e.iter().fold((0, 0), |(t, c), l| {
        let mut it = l.rsplit(' ');
        let count: u64 = it.next().unwrap().parse().unwrap();
        let n: i64 = it.next().unwrap().parse().unwrap();
        (t + n, c + if count > 0 { n } else { 0 })
    });
    {
        let db = db::Database::open_collection(out_dir.path()).unwrap();
        let ph = db.phase("e2e").unwrap().unwrap();
        let owner = db.owners().unwrap()[0].id;
        let fs = db.phase_file_stats(ph.id, owner).unwrap();
        let h = fs
            .iter()
            .find(|f| f.file_path.ends_with("/handlers.go"))
            .unwrap();
        assert_eq!((h.total_stmts, h.covered_stmts), (stmts, ran));
        assert!(ran > 0 && ran < stmts);
    }
    let base = phase_lines(out_dir.path(), "baseline");
    assert_eq!(
        base,
        oracle(&ns, &[BASELINE]),
        "baseline phase vs a run of the baseline requests alone"
    );

    // diff DIR@baseline DIR@e2e: what the e2e set ran that the baseline did not.
    let b = format!("{o}@baseline");
    let h = format!("{o}@e2e");
    let out = run(&["diff", &b, &h, "--json"]);
    assert!(out.status.success(), "{}", s(&out));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = d["owners"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("/handlers.go"))
        .expect("handlers.go in the diff")
        .clone();
    let func = |name: &str| {
        file["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {file}"))["counts"]
            .clone()
    };
    // search and remove ran only in e2e; create's "bad id" branch too.
    assert!(func("search")["new"].as_u64().unwrap() > 0, "{file}");
    assert_eq!(func("search")["lost"], 0);
    assert_eq!(func("remove")["missed"], 0, "{file}");
    assert!(func("create")["new"].as_u64().unwrap() > 0, "{file}");
    // create's "exists" branch ran only in the baseline.
    assert!(func("create")["lost"].as_u64().unwrap() > 0, "{file}");
    // A database path takes a phase too.
    let db_side = format!("{o}/coverage.db@baseline");
    let out = run(&["diff", &db_side, &h, "--json"]);
    assert!(out.status.success(), "{}", s(&out));
    let d2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d2["total"], d["total"]);
    // The text table works on phases too; an unknown phase is a usage error.
    let out = run(&["diff", &b, &h]);
    assert!(out.status.success(), "{}", s(&out));
    // render: the index carries both phases (each with the owner's phase
    // numbers) and the collection times, for its phase switch and strip.
    let out = run(&["render", "--collection", &o]);
    assert!(out.status.success(), "{}", s(&out));
    let html = std::fs::read_to_string(out_dir.path().join("html/index.html")).unwrap();
    let start = html.find("id=\"covfleet-data\">").unwrap() + 19;
    let end = start + html[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
    let phases = data["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "e2e"]);
    let db = db::Database::open_collection(out_dir.path()).unwrap();
    let e2e = db.phase("e2e").unwrap().unwrap();
    assert_eq!(
        phases[1]["rows"]["0"],
        serde_json::json!([e2e.total_stmts, e2e.covered_stmts])
    );
    assert!(e2e.covered_stmts > 0 && e2e.covered_stmts < db.owners().unwrap()[0].covered_stmts);
    assert!(!data["times"].as_array().unwrap().is_empty());
    // Each phase has its own site, where the owner's page shows what ran
    // during the phase; the index's phase links point there.
    let page = phases[1]["pages"]["0"].as_str().unwrap();
    assert!(page.starts_with("phase/e2e/b/"), "{page}");
    let phase_html = std::fs::read_to_string(out_dir.path().join("html").join(page)).unwrap();
    assert!(
        phase_html.contains("phase e2e"),
        "the page's title names the phase"
    );
    let sub = std::fs::read_to_string(out_dir.path().join("html/phase/e2e/index.html")).unwrap();
    let start = sub.find("id=\"covfleet-data\">").unwrap() + 19;
    let end = start + sub[start..].find("</script>").unwrap();
    let sub: serde_json::Value = serde_json::from_str(&sub[start..end]).unwrap();
    assert_eq!(sub["rows"][0]["c"], e2e.covered_stmts);
    assert_eq!(sub["rows"][0]["t"], e2e.total_stmts);
    assert!(
        sub.get("phases").is_none(),
        "a phase's site has no phase switch"
    );
    assert!(
        out_dir
            .path()
            .join("html/phase/baseline/index.html")
            .is_file()
    );
    let nope = format!("{o}@nope");
    let out = run(&["diff", &b, &nope]);
    assert_eq!(out.status.code(), Some(2), "{}", s(&out));
    assert!(s(&out).contains("baseline, e2e"), "{}", s(&out));
}

/// `--watch` with phases marked by signals, and the service restarted in
/// the middle of the e2e phase: the old process counts up to its last
/// snapshot, the new one from its start.
#[test]
fn watch_signals_and_a_restart_inside_a_phase() {
    let ns = Netns::new();
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap().to_string();
    let mut p1 = Service::start(&ns, None);
    p1.send(&[("search", 9)]); // before any phase
    let mut watch = KillOnDrop(ns.covfleet_spawn(&[
        "collect",
        "--watch",
        "--url",
        "http://127.0.0.1:53700",
        "-o",
        &o,
        "--signal-phases",
        "baseline,e2e",
    ]));
    let wpid = watch.0.id();
    let snapshots = |pid: u32| {
        support::entries(out_dir.path())
            .iter()
            // An entry's directory exists a moment before its metadata.json.
            .filter_map(|e| std::fs::read(e.join("metadata.json")).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .find(|m| m["pid"] == pid)
            .and_then(|m| m["snapshots"].as_u64())
            .unwrap_or(0)
    };
    wait_for("the first snapshot", || snapshots(p1.pid()) > 0);
    signal(wpid, "USR1"); // start baseline
    wait_for("mark 1", || mark_count(out_dir.path()) == 1);
    p1.send(BASELINE);
    signal(wpid, "USR1"); // end baseline, start e2e
    wait_for("marks 2 and 3", || mark_count(out_dir.path()) == 3);
    p1.send(E2E_1);
    // Two more polls: the second started after the requests were answered.
    let n = snapshots(p1.pid());
    wait_for("two polls after the requests", || {
        snapshots(p1.pid()) >= n + 2
    });
    let old = p1.pid();
    p1.stop();
    let mut p2 = Service::start(&ns, None);
    assert_ne!(p2.pid(), old);
    wait_for("the new process's entry", || snapshots(p2.pid()) > 0);
    p2.send(E2E_2);
    signal(wpid, "USR2"); // end e2e
    wait_for("mark 4", || mark_count(out_dir.path()) == 4);
    p2.send(AFTER);
    signal(wpid, "TERM");
    let st = watch.0.wait().unwrap();
    assert!(st.success(), "collect --watch exited with {st}");
    let mut log = String::new();
    std::io::Read::read_to_string(watch.0.stderr.as_mut().unwrap(), &mut log).unwrap();
    for line in [
        "phase baseline started (mark 1, 1 processes)",
        "phase baseline ended (mark 2, 1 processes)",
        "phase e2e started (mark 3, 1 processes)",
        "phase e2e ended (mark 4, 1 processes)",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }

    let marks = read_json(&out_dir.path().join("marks.json"));
    let kinds: Vec<String> = marks["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["kind"].as_str().unwrap(),
                m["phase"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        ["start:baseline", "end:baseline", "start:e2e", "end:e2e"]
    );
    assert_eq!(support::entries(out_dir.path()).len(), 2);

    let out = run(&["compile", "--collection", &o]);
    assert!(out.status.success(), "{}", s(&out));
    p2.stop();
    let e2e = phase_lines(out_dir.path(), "e2e");
    assert_eq!(
        e2e,
        oracle(&ns, &[E2E_1, E2E_2]),
        "e2e phase across a restart vs one run of all e2e requests"
    );
    assert_eq!(
        phase_lines(out_dir.path(), "baseline"),
        oracle(&ns, &[BASELINE])
    );
    let db = db::Database::open_collection(out_dir.path()).unwrap();
    let e2e = db.phase("e2e").unwrap().unwrap();
    assert_eq!(e2e.process_count, 2, "{e2e:?}");
    let baseline = db.phase("baseline").unwrap().unwrap();
    assert_eq!(baseline.process_count, 1, "{baseline:?}");
}

/// A phase that starts before anything runs (a fresh install): the start
/// mark finds no process and still succeeds; the process started during the
/// phase counts from its start.
#[test]
fn a_phase_can_start_before_any_process() {
    let ns = Netns::new();
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap().to_string();
    let out = ns.covfleet(&["collect", "--local", "-o", &o, "--phase-start", "install"]);
    assert!(out.status.success(), "{}", s(&out));
    assert!(s(&out).contains("phase marks are recorded"), "{}", s(&out));
    assert_eq!(mark_count(out_dir.path()), 1);
    // Without a mark, finding nothing stays a failure.
    let plain = tempfile::tempdir().unwrap();
    let out = ns.covfleet(&["collect", "--local", "-o", plain.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));

    let mut svc = Service::start(&ns, None);
    svc.send(BASELINE);
    let out = ns.covfleet(&["collect", "--local", "-o", &o, "--phase-end", "install"]);
    assert!(out.status.success(), "{}", s(&out));
    svc.send(AFTER);
    let out = run(&["compile", "--collection", &o]);
    assert!(out.status.success(), "{}", s(&out));
    svc.stop();
    let md = read_json(&support::entries(out_dir.path())[0].join("metadata.json"));
    assert_eq!(md["marks_first"], 2, "first written at the end mark");
    // Started inside the phase: all of its requests until the end mark.
    let install = phase_lines(out_dir.path(), "install");
    assert_eq!(install, oracle(&ns, &[BASELINE]));
}
