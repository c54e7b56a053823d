//! `covfleet demo`: the README's main command, end to end with a real Go
//! toolchain, real processes, SQLite and the rendered site; then the same
//! replicas through the real node agent, a file:// sink and `download`.

use std::process::Command;

#[test]
fn demo_builds_runs_collects_compiles_and_renders() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(["demo", "--quiet", "--replicas", "2", "--dir"])
        .arg(&dir)
        .output()
        .expect("run covfleet demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let index = dir.join("html").join("index.html");
    let agent_index = dir.join("agent").join("html").join("index.html");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            index.display().to_string(),
            agent_index.display().to_string()
        ],
        "stdout is the two index paths; stderr: {stderr}"
    );
    let html = std::fs::read_to_string(&index).expect("index.html");
    assert!(html.contains("demo-api"), "index lists the demo deployment");

    // Two replicas of a Deployment and one DaemonSet-like pod of the same
    // binary: two owner rows, each with some but not all code run, the
    // Deployment (more varied traffic) ahead of the agent.
    let db = rusqlite::Connection::open(dir.join("coverage.db")).expect("open db");
    let mut stmt = db
        .prepare(
            "SELECT owner_type, owner_name, total_stmts, covered_stmts FROM owners \
             WHERE namespace = 'demo' ORDER BY owner_name",
        )
        .expect("prepare");
    let owners: Vec<(String, String, i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let kinds: Vec<(&str, &str)> = owners
        .iter()
        .map(|o| (o.0.as_str(), o.1.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("DaemonSet", "demo-agent"), ("Deployment", "demo-api")]
    );
    for (_, name, total, covered) in &owners {
        assert!(
            *covered > 0 && covered < total,
            "{name}: covered {covered} of {total}"
        );
    }
    assert!(
        owners[1].3 > owners[0].3,
        "the api replicas ran more than the agent: {owners:?}"
    );
    // The injected server never shows up in reports.
    let injected: i64 = db
        .query_row(
            "SELECT count(*) FROM owner_file_stats WHERE file_path LIKE '%zz_covfleet%'",
            [],
            |r| r.get(0),
        )
        .expect("query file stats");
    assert_eq!(injected, 0);
    let files: i64 = db
        .query_row("SELECT count(*) FROM owner_file_stats", [], |r| r.get(0))
        .expect("query file stats");
    assert_eq!(
        files, 8,
        "handlers.go, main.go, store.go, pricing.go per owner"
    );

    // The node-agent part: the same four processes, found through /proc as
    // host processes, stored in the file:// sink in the seed layout,
    // downloaded and compiled: one Host owner with the same statements and
    // the union of what the direct collection saw.
    let counters = walk(&dir.join("bucket"))
        .into_iter()
        .filter(|p| p.contains("/_host_/") && p.contains("/covcounters."))
        .count();
    assert!(counters >= 3, "counters objects in the sink: {counters}");
    let adb = rusqlite::Connection::open(dir.join("agent").join("coverage.db")).expect("open");
    let agent_owners: Vec<(String, String, String, i64, i64, i64)> = adb
        .prepare(
            "SELECT namespace, owner_type, owner_name, total_stmts, covered_stmts, process_count \
             FROM owners",
        )
        .expect("prepare")
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(agent_owners.len(), 1, "{agent_owners:?}");
    let (ns, kind, name, total, covered, processes) = &agent_owners[0];
    assert_eq!((ns.as_str(), kind.as_str()), ("_host_", "Host"));
    assert_eq!(name, "demo-api");
    assert_eq!(*processes, 3, "two replicas and the agent pod");
    assert_eq!(
        *total, owners[1].2,
        "same statements as the direct collection"
    );
    assert!(
        *covered >= owners[1].3 && *covered >= owners[0].3 && covered < total,
        "the agent saw the union of the direct owners: {agent_owners:?} vs {owners:?}"
    );
    assert!(
        std::fs::read_to_string(&agent_index)
            .expect("agent index")
            .contains("demo-api")
    );

    // Running it again replaces the earlier demo; a foreign directory is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(["demo", "--quiet", "--replicas", "1", "--dir"])
        .arg(&dir)
        .output()
        .expect("rerun");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let foreign = tmp.path().join("mine");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("precious.txt"), "keep me").expect("write");
    let refused = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(["demo", "--quiet", "--dir"])
        .arg(&foreign)
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an earlier covfleet demo"));
    assert_eq!(
        std::fs::read_to_string(foreign.join("precious.txt")).expect("kept"),
        "keep me"
    );
}

/// Every file under `root`, as strings.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
