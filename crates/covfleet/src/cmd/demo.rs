//! `covfleet demo`: the whole pipeline on a bundled Go service, with nothing
//! but a Go toolchain.
//!
//! Writes the demo's source (go/demo, embedded in covfleet) to `DIR/src`,
//! builds it with `-cover`, runs a few "pods" (two Deployment replicas and a
//! DaemonSet pod) that serve different HTTP traffic, stops them so Go writes
//! their counters into `DIR/coverage/<entry>/` (GOCOVERDIR), compiles
//! `DIR/coverage.db`, renders `DIR/html/`, and prints the path of
//! `index.html`. Some handlers never get a request, so the report shows
//! both run and unrun code.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::UsageError;

/// The demo service's files, embedded at build time.
const SOURCES: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../../go/demo/go.mod")),
    ("main.go", include_str!("../../../../go/demo/main.go")),
    (
        "handlers.go",
        include_str!("../../../../go/demo/handlers.go"),
    ),
    (
        "handlers_test.go",
        include_str!("../../../../go/demo/handlers_test.go"),
    ),
    (
        "internal/inventory/store.go",
        include_str!("../../../../go/demo/internal/inventory/store.go"),
    ),
    (
        "internal/inventory/store_test.go",
        include_str!("../../../../go/demo/internal/inventory/store_test.go"),
    ),
    (
        "internal/pricing/pricing.go",
        include_str!("../../../../go/demo/internal/pricing/pricing.go"),
    ),
    (
        "internal/pricing/pricing_test.go",
        include_str!("../../../../go/demo/internal/pricing/pricing_test.go"),
    ),
];

/// Arguments of `covfleet demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Working directory: the demo's source, collection and site go here.
    #[arg(long, value_name = "DIR", default_value = "covfleet-demo")]
    pub dir: PathBuf,
    /// Rounds of traffic each pod gets.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub rounds: u32,
    /// The go command to build with.
    #[arg(long, value_name = "PATH", default_value = "go", env = "COVFLEET_GO")]
    pub go: PathBuf,
}

/// One simulated pod: where it runs and what traffic it gets.
struct Pod {
    namespace: &'static str,
    pod: &'static str,
    container: &'static str,
    node: &'static str,
    requests: &'static [(&'static str, &'static str, &'static str)],
}

const PODS: &[Pod] = &[
    Pod {
        namespace: "shop",
        pod: "demo-api-7d9f8b6c5-x2x9q",
        container: "api",
        node: "node-a",
        requests: &[
            ("GET", "/items", ""),
            ("GET", "/items/1", ""),
            ("GET", "/quote?id=1&qty=12&coupon=gopher", ""),
            ("GET", "/quote?id=2&qty=1", ""),
        ],
    },
    Pod {
        namespace: "shop",
        pod: "demo-api-7d9f8b6c5-k8p2m",
        container: "api",
        node: "node-b",
        requests: &[
            (
                "POST",
                "/items",
                r#"{"name":"desk lamp","price_cents":2500,"stock":3}"#,
            ),
            ("GET", "/items/99", ""),
            ("GET", "/quote?id=3&qty=40&coupon=STAFF", ""),
            ("GET", "/healthz", ""),
        ],
    },
    Pod {
        namespace: "infra",
        pod: "demo-agent-q7x2k",
        container: "agent",
        node: "node-a",
        requests: &[("GET", "/healthz", "")],
    },
];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let go_ok = Command::new(&args.go)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !go_ok {
        return Err(UsageError(format!(
            "covfleet demo needs a Go toolchain: `{} version` failed (install Go, or set --go / COVFLEET_GO)",
            args.go.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| UsageError(format!("cannot create {}: {e}", args.dir.display())))?;
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("resolving {}", args.dir.display()))?;

    // 1. Source and build.
    let src = dir.join("src");
    for (rel, text) in SOURCES {
        let p = src.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    let bin = dir.join("bin/demo");
    eprintln!("covfleet demo: building the demo service with -cover");
    let out = Command::new(&args.go)
        .args(["build", "-cover", "-covermode=atomic", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .output()
        .with_context(|| format!("running {} build", args.go.display()))?;
    if !out.status.success() {
        bail!(
            "go build failed in {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // 2. Run the pods, drive traffic, stop them: their counters land in the collection.
    let cov = dir.join("coverage");
    if cov.exists() {
        std::fs::remove_dir_all(&cov).with_context(|| format!("clearing {}", cov.display()))?;
    }
    for pod in PODS {
        let entry = cov.join(format!(
            "{}_{}_{}_{}",
            pod.node, pod.namespace, pod.pod, pod.container
        ));
        let n = run_pod(&bin, &entry, pod, args.rounds)
            .with_context(|| format!("pod {}/{}", pod.namespace, pod.pod))?;
        eprintln!(
            "covfleet demo: {}/{} on {}: {n} requests",
            pod.namespace, pod.pod, pod.node
        );
    }

    // 3. Compile and render.
    let summary =
        db::compile(&db::CompileOptions::new(&dir)).context("compiling the collection")?;
    eprintln!(
        "covfleet demo: compiled {} entries into {}",
        summary.entries,
        dir.join(db::DB_FILE).display()
    );
    let database = db::Database::open_collection(&dir)?;
    let opts = report::Options {
        out_dir: dir.join("html"),
        repos_dir: dir.join("repos"),
        extra_source_roots: vec![src],
        title: "covfleet demo".into(),
    };
    let s =
        report::render(&report::DbSource::new(database), &opts).context("rendering the site")?;
    for e in &s.row_errors {
        eprintln!("covfleet demo: page failed: {e}");
    }
    let index = opts.out_dir.join("index.html");
    eprintln!(
        "covfleet demo: {} owners rendered; open this in a browser:",
        s.rows
    );
    println!("{}", index.display());
    Ok(if s.row_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs one pod to completion; returns the number of requests served.
fn run_pod(bin: &Path, entry: &Path, pod: &Pod, rounds: u32) -> anyhow::Result<usize> {
    std::fs::create_dir_all(entry).with_context(|| format!("creating {}", entry.display()))?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let mut child = Command::new(bin)
        .arg(format!("-addr=127.0.0.1:{port}"))
        .env("GOCOVERDIR", entry)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let served = (|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the demo did not listen on 127.0.0.1:{port} within 20s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut n = 0;
        for _ in 0..rounds {
            for (method, path, body) in pod.requests {
                request(port, method, path, body).with_context(|| format!("{method} {path}"))?;
                n += 1;
            }
        }
        Ok(n)
    })();
    // SIGTERM: the demo shuts down cleanly and Go writes its counters.
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let status = child.wait().context("waiting for the demo to exit")?;
    let n = served?;
    if !status.success() {
        bail!("the demo exited with {status}");
    }
    let metadata = serde_json::json!({
        "namespace": pod.namespace,
        "pod_name": pod.pod,
        "container": {"name": pod.container, "image": "localhost/covfleet-demo:latest"},
        "hostname": pod.node,
        "binary_name": "demo",
        "host_process": false,
        "collected_at": now_rfc3339(),
    });
    std::fs::write(entry.join("metadata.json"), metadata.to_string())
        .with_context(|| format!("writing {}/metadata.json", entry.display()))?;
    Ok(n)
}

fn request(port: u16, method: &str, path: &str, body: &str) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status in the reply"))
}

/// The current time as RFC 3339 (UTC, seconds).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
