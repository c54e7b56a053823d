//! `covfleet compile` + `covfleet render` end to end: the demo service built
//! with `-cover`, run as real processes that serve real HTTP traffic, its
//! coverage compiled and rendered, statistics checked against `go tool
//! covdata`, and the site driven in headless Chromium.

#[path = "../../report/tests/site/cdp.rs"]
mod cdp;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_covfleet");

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../go/demo")
        .canonicalize()
        .unwrap()
}

fn http(port: u16, method: &str, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Runs the instrumented demo with GOCOVERDIR=entry, sends `requests`, stops it
/// with SIGTERM (it exits cleanly, so Go writes its counters).
fn run_pod(
    bin: &Path,
    entry: &Path,
    metadata: Value,
    info: Option<Value>,
    requests: &[(&str, &str, &str)],
) {
    std::fs::create_dir_all(entry).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin)
        .arg(format!("-addr=127.0.0.1:{port}"))
        .env("GOCOVERDIR", entry)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "demo did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (m, p, b) in requests {
        assert_ne!(http(port, m, p, b), 0, "{m} {p}");
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(child.wait().unwrap().success(), "demo exits 0 on SIGTERM");
    std::fs::write(entry.join("metadata.json"), metadata.to_string()).unwrap();
    if let Some(i) = info {
        std::fs::write(entry.join("info.json"), i.to_string()).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn covfleet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn page_data(html: &str) -> Value {
    let start = html.find("id=\"covfleet-data\">").expect("data element") + 19;
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

fn metadata(ns: &str, pod: &str, container: &str, host: &str) -> Value {
    json!({
        "namespace": ns, "pod_name": pod, "hostname": host, "binary_name": "demo",
        // Each container its own image: compile maps an image to the source
        // that any report of it names, and the agent must be found otherwise.
        "container": {"name": container, "image": format!("quay.io/acme/demo-{container}:v1")},
        "collected_at": "2026-01-01T00:00:00Z", "host_process": false
    })
}

/// (covered, total) statements of `go tool covdata textfmt` over `dirs`.
fn go_covdata_totals(dirs: &[PathBuf], tmp: &Path) -> (u64, u64) {
    let out = tmp.join("oracle.txt");
    let inputs = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let st = Command::new("go")
        .args(["tool", "covdata", "textfmt"])
        .arg(format!("-i={inputs}"))
        .arg(format!("-o={}", out.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let files = report::model::files_from_profile(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (
        files.iter().map(|f| f.covered_stmts).sum(),
        files.iter().map(|f| f.total_stmts).sum(),
    )
}

#[test]
fn compile_then_render_a_live_demo_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let bin = tmp.path().join("demo");
    let st = Command::new("go")
        .args(["build", "-cover", "-covermode=atomic", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(demo_dir())
        .status()
        .expect("go build");
    assert!(st.success());
    copy_tree(
        &demo_dir(),
        &dir.join("repos/github.com/acme/demo/deadbeef"),
    );

    let info = json!({"binary": "demo", "source_url": "https://github.com/acme/demo.git",
                      "source_commit": "deadbeef0123456789"});
    let cov = dir.join("coverage");
    let deploy = [
        cov.join("node-a_shop_demo-api-7d9f8b6c5-x2x9q"),
        cov.join("node-b_shop_demo-api-7d9f8b6c5-k8p2m"),
    ];
    run_pod(
        &bin,
        &deploy[0],
        metadata("shop", "demo-api-7d9f8b6c5-x2x9q", "api", "node-a"),
        Some(info.clone()),
        &[
            ("GET", "/items", ""),
            ("GET", "/items/1", ""),
            ("GET", "/quote?id=1&qty=12&coupon=gopher", ""),
        ],
    );
    run_pod(
        &bin,
        &deploy[1],
        metadata("shop", "demo-api-7d9f8b6c5-k8p2m", "api", "node-b"),
        Some(info),
        &[
            (
                "POST",
                "/items",
                r#"{"name":"lamp","price_cents":2500,"stock":3}"#,
            ),
            ("GET", "/healthz", ""),
        ],
    );
    let ds = [cov.join("node-a_infra_demo-agent-q7x2k")];
    run_pod(
        &bin,
        &ds[0],
        metadata("infra", "demo-agent-q7x2k", "agent", "node-a"),
        None,
        &[("GET", "/healthz", "")],
    );

    let (code, _, err) = covfleet(&["compile", "--collection", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "compile: {err}");
    let (code, out, err) = covfleet(&["render", "--collection", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "render: {err}");
    let index = dir.join("html/index.html");
    assert_eq!(out.trim(), index.display().to_string());
    assert!(err.contains("2 pages written"), "{err}");

    // Statistics equal go tool covdata's over the same directories.
    let html = std::fs::read_to_string(&index).unwrap();
    let data = page_data(&html);
    let rows = data["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let row = |owner: &str| {
        rows.iter()
            .find(|r| r["ow"] == owner)
            .unwrap_or_else(|| panic!("{owner}: {rows:?}"))
    };
    let api = row("demo-api");
    assert_eq!(api["ty"], "Deployment");
    assert_eq!(api["pods"].as_array().unwrap().len(), 2);
    let (c, t) = go_covdata_totals(&deploy, tmp.path());
    assert_eq!(
        (api["c"].as_u64().unwrap(), api["t"].as_u64().unwrap()),
        (c, t),
        "demo-api vs go tool covdata"
    );
    let agent = row("demo-agent");
    assert_eq!(agent["ty"], "DaemonSet");
    let (c, t) = go_covdata_totals(&ds, tmp.path());
    assert_eq!(
        (agent["c"].as_u64().unwrap(), agent["t"].as_u64().unwrap()),
        (c, t),
        "demo-agent vs go tool covdata"
    );

    // Both owners run one binary: the index knows what they ran together.
    assert_eq!(api["key"], agent["key"]);
    let union = data["bins"][api["key"].as_str().unwrap()].as_u64().unwrap();
    let (c, t) = go_covdata_totals(&[&deploy[..], &ds[..]].concat(), tmp.path());
    assert_eq!(
        (union, api["t"].as_u64().unwrap()),
        (c, t),
        "union vs go tool covdata over all three pods"
    );

    // Source found through the labels (info.json) and through the module path.
    for (r, via) in [(api, "image labels"), (agent, "module path")] {
        let page =
            std::fs::read_to_string(dir.join("html").join(r["page"].as_str().unwrap())).unwrap();
        let pd = page_data(&page);
        assert_eq!(pd["source_via"], via, "{}", r["ow"]);
        assert!(
            pd["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["s"] == true),
            "every file has source"
        );
    }

    // Nothing changed: nothing rewritten. Into a second dir: baseline vs after.
    let (code, _, err) = covfleet(&["render", "--collection", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(err.contains("0 pages written, 2 unchanged"), "{err}");
    let baseline = tmp.path().join("html-baseline");
    let (code, out, _) = covfleet(&[
        "render",
        "--collection",
        dir.to_str().unwrap(),
        "--output-dir",
        baseline.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        baseline.join("index.html").display().to_string()
    );

    // "After the test suite": a restarted replica gets the requests nobody
    // sent yet; compile again and render into another dir. The baseline stays
    // as it was; the after-site covers more.
    let base_index = std::fs::read(baseline.join("index.html")).unwrap();
    run_pod(
        &bin,
        &cov.join("node-b_shop_demo-api-7d9f8b6c5-k8p2m_restart"),
        metadata("shop", "demo-api-7d9f8b6c5-k8p2m", "api", "node-b"),
        Some(
            json!({"binary": "demo", "source_url": "https://github.com/acme/demo.git",
                    "source_commit": "deadbeef0123456789"}),
        ),
        &[
            ("DELETE", "/items/2", ""),
            ("DELETE", "/items/x", ""),
            ("POST", "/admin/reset", ""),
            ("POST", "/items", "{"),
        ],
    );
    let (code, _, err) = covfleet(&["compile", "--collection", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "compile: {err}");
    let after = tmp.path().join("html-after");
    let (code, _, err) = covfleet(&[
        "render",
        "--collection",
        dir.to_str().unwrap(),
        "--output-dir",
        after.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(baseline.join("index.html")).unwrap(),
        base_index,
        "baseline untouched"
    );
    let covered = |site: &Path| {
        let d = page_data(&std::fs::read_to_string(site.join("index.html")).unwrap());
        d["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ow"] == "demo-api")
            .unwrap()["c"]
            .as_u64()
            .unwrap()
    };
    assert!(
        covered(&after) > covered(&baseline),
        "after {} vs baseline {}",
        covered(&after),
        covered(&baseline)
    );

    // The site in Chromium.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("covfleet-artifacts/render");
    let browser = cdp::Browser::launch();
    let mut page = browser.new_page();
    page.goto(&format!("file://{}", index.display()));
    page.wait_for("document.querySelectorAll('#rows tbody tr.row').length === 2");
    page.screenshot(&shots.join("index.png"));
    let errors = page.errors();
    assert!(errors.is_empty(), "{errors:?}");
    page.navigate_by("Array.from(document.querySelectorAll('#rows a.open')).find(a => a.textContent === 'demo-api').click()");
    page.wait_for("location.pathname.includes('/b/') && document.querySelectorAll('#files tbody tr').length > 0");
    page.eval("Array.from(document.querySelectorAll('#files tbody tr')).find(tr => tr.cells[0].textContent.endsWith('/handlers.go')).click()");
    page.wait_for("document.querySelectorAll('#vspacer .ln.c').length > 0 && document.querySelectorAll('#vspacer .ln.m').length > 0");
    page.screenshot(&shots.join("binary.png"));
    let errors = page.errors();
    assert!(errors.is_empty(), "{errors:?}");

    // No database: a usage error.
    let (code, _, err) = covfleet(&["render", "--collection", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("covfleet compile"), "{err}");
}

#[test]
fn render_refuses_what_is_not_a_covfleet_database() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("coverage.db"),
        b"not sqlite at all, just bytes",
    )
    .unwrap();
    let (code, out, err) = covfleet(&["render", "--collection", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("coverage.db") && err.contains("covfleet compile"),
        "{err}"
    );
    let (code, _, err) = covfleet(&[
        "render",
        "--collection",
        tmp.path().to_str().unwrap(),
        "--source",
        "/nonexistent/x",
    ]);
    assert_eq!(code, 2, "{err}");
}
