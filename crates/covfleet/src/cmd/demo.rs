//! `covfleet demo`: the whole pipeline on a bundled Go service.
//!
//! Writes the demo service (embedded in this binary) to `DIR/src`, injects
//! the coverage server, builds it with `-cover -covermode=atomic`, runs a few
//! replicas, drives some traffic (some handlers are never called, so the
//! report shows both), scrapes their live coverage into `DIR/coverage/`,
//! compiles `DIR/coverage.db` and renders `DIR/html/`. Then the node-agent
//! path on the same replicas: `covfleet agent` into a local sink
//! (`DIR/bucket`, the seed layout), `covfleet download` into `DIR/agent`,
//! compile and render (`DIR/agent/html/`). A Go toolchain is the only
//! prerequisite. Each step prints the command a user would run for it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use scrape::collect::{Collector, Settings, Sources, UrlPod};
use scrape::output::ContainerMeta;

use crate::cli::UsageError;
use crate::{Shared, output};

/// Arguments of `covfleet demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Work directory (created; an earlier demo there is replaced).
    #[arg(long, value_name = "DIR", default_value = "covfleet-demo")]
    pub dir: PathBuf,
    /// How many replicas of the service to run.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=20))]
    pub replicas: u8,
    /// The Go toolchain to build with.
    #[arg(long, value_name = "PATH", default_value = "go", env = "COVFLEET_GO")]
    pub go: String,
}

/// The demo service's sources, embedded at build time.
const SOURCES: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../../go/demo/go.mod")),
    ("main.go", include_str!("../../../../go/demo/main.go")),
    (
        "handlers.go",
        include_str!("../../../../go/demo/handlers.go"),
    ),
    (
        "internal/inventory/store.go",
        include_str!("../../../../go/demo/internal/inventory/store.go"),
    ),
    (
        "internal/pricing/pricing.go",
        include_str!("../../../../go/demo/internal/pricing/pricing.go"),
    ),
];

/// Replicas look like the pods of one Deployment, so the report shows how
/// covfleet groups a cluster's data (owner inference from pod names).
const NAMESPACE: &str = "demo";
const DEPLOYMENT: &str = "demo-api";
const POD_TEMPLATE_HASH: &str = "7c9d8f6b5d";
/// A second owner running the same binary, named like a DaemonSet's pod.
const AGENT: &str = "demo-agent";
const AGENT_SUFFIX: &str = "k8d2q";
const POD_SUFFIXES: [&str; 20] = [
    "x2x4z", "b7kqn", "m9tfw", "c4hvd", "p8rsl", "q2zwk", "t6lmb", "v5nxc", "w9gfd", "z4bhj",
    "d2kpl", "f7mqr", "g5wts", "h8xvz", "j2bcd", "k6fgh", "l9jkl", "n4mnp", "r7qrs", "s5tvw",
];

struct Step {
    n: usize,
}

impl Step {
    fn say(&mut self, what: &str, equivalent: Option<String>) {
        self.n += 1;
        output::status(format_args!("[{}/7] {what}", self.n));
        if let Some(cmd) = equivalent {
            output::status(format_args!("      $ {cmd}"));
        }
    }
}

/// Kills the replicas however the demo ends.
struct Replicas(Vec<Replica>);

struct Replica {
    child: Child,
    service_port: u16,
    coverage_port: u16,
    pod: String,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for r in &mut self.0 {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    let mut step = Step { n: 0 };
    let go = which_go(&args.go)?;
    let dir = absolute(&args.dir)?;
    let src = dir.join("src");
    prepare_dir(&dir)?;

    step.say(
        &format!("writing the demo service to {}", src.display()),
        None,
    );
    write_sources(&src)?;

    step.say(
        "injecting the coverage server",
        Some(format!("covfleet instrument {}", src.display())),
    );
    instrument(&src)?;

    let bin = dir.join("bin").join(DEPLOYMENT);
    step.say(
        "building it with coverage",
        Some(format!(
            "go build -cover -covermode=atomic -coverpkg=./... -o {} .",
            bin.display()
        )),
    );
    build(&go, &src, &bin)?;

    step.say(
        &format!(
            "starting {} replicas of {DEPLOYMENT} and one {AGENT} pod",
            args.replicas
        ),
        None,
    );
    let replicas = start_replicas(&bin, &dir.join("logs"), args.replicas)?;

    step.say("driving traffic (some handlers are never called)", None);
    for (k, r) in replicas.0.iter().enumerate() {
        let mix = if r.pod.starts_with(AGENT) {
            None
        } else {
            Some(k)
        };
        drive(r.service_port, mix).with_context(|| format!("sending requests to {}", r.pod))?;
    }

    let collection = dir.clone();
    step.say(
        "collecting live coverage",
        Some(format!(
            "covfleet collect {} -o {}",
            replicas
                .0
                .iter()
                .map(|r| format!("--url http://127.0.0.1:{}", r.coverage_port))
                .collect::<Vec<_>>()
                .join(" "),
            collection.display()
        )),
    );
    collect(&replicas.0, &collection, shared)?;

    step.say(
        "compiling and rendering",
        Some(format!(
            "covfleet compile {0} && covfleet render {0} --source {1}",
            collection.display(),
            src.display()
        )),
    );
    compile_and_render(&collection, &src, "covfleet demo")?;
    let index = collection.join("html").join("index.html");
    if !index.is_file() {
        bail!("render finished but {} is missing", index.display());
    }
    output::status("\nDone. Open the report in a browser:");
    output::data(index.display());

    // Part two: the same replicas through the node agent and a sink.
    match agent_part(&replicas.0, &dir, &src, coverage_ports(&replicas.0)) {
        Ok(Some(index)) => {
            output::status("\nThe agent's report (the same binary, seen as host processes):");
            output::data(index.display());
        }
        Ok(None) => {}
        Err(e) => {
            drop(replicas);
            return Err(e);
        }
    }
    drop(replicas);
    Ok(ExitCode::SUCCESS)
}

fn coverage_ports(replicas: &[Replica]) -> (u16, u16) {
    let ports = replicas.iter().map(|r| r.coverage_port);
    (ports.clone().min().unwrap_or(0), ports.max().unwrap_or(0))
}

/// Stops the agent however the demo ends (SIGTERM, then SIGKILL).
struct AgentProcess(Child);

impl AgentProcess {
    /// SIGTERM, then up to 10 s for a clean exit (the agent flushes its
    /// last snapshots); SIGKILL after that.
    fn stop(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        false
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The node-agent path: `covfleet agent --sink file://DIR/bucket` until the
/// sink holds a counters object of every replica, then `download`,
/// `compile` and `render` into `DIR/agent`. `Ok(None)` when the agent cannot
/// see the replicas here (a note says why); errors only for failures of
/// the steps after it.
fn agent_part(
    replicas: &[Replica],
    dir: &Path,
    src: &Path,
    (first, last): (u16, u16),
) -> anyhow::Result<Option<PathBuf>> {
    let me = std::env::current_exe().context("locating the covfleet binary")?;
    let bucket = dir.join("bucket");
    let spool = dir.join("agent-spool");
    let agent_dir = dir.join("agent");
    let log_path = dir.join("logs").join("covfleet-agent.log");
    let listen = format!("127.0.0.1:{}", free_port()?);
    let ports = format!("{first}-{last}");
    let sink_url = format!("file://{}", bucket.display());
    let mut step = AgentStep { n: 0 };
    step.say(
        "running the node agent into a local sink",
        &format!(
            "covfleet agent --sink {sink_url} --no-kube --ports {ports} --spool {} --listen {listen}",
            spool.display()
        ),
    );
    output::status(
        "      (no Kubernetes here: the agent finds the replicas through /proc as host processes, so its report files them under _host_)",
    );
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let child = Command::new(&me)
        .args(["agent", "--no-kube", "--sink", &sink_url, "--ports", &ports])
        .arg("--spool")
        .arg(&spool)
        .args([
            "--listen",
            &listen,
            "--scan-interval",
            "1s",
            "--schedule",
            "1s",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("log file")?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} agent", me.display()))?;
    let mut agent = AgentProcess(child);
    let pids: Vec<u32> = replicas.iter().map(|r| r.child.id()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let missing = pids_without_counters(&bucket, &pids);
        if missing.is_empty() {
            break missing;
        }
        if let Ok(Some(status)) = agent.0.try_wait() {
            output::status(format_args!(
                "      note: the agent exited ({status}); skipping its part of the demo (see {})",
                log_path.display()
            ));
            return Ok(None);
        }
        if Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    agent.stop();
    if !missing.is_empty() {
        output::status(format_args!(
            "      note: after 30 s the agent had not stored coverage of {} of {} replicas (it needs to read their /proc entries and listening sockets; run as root); skipping its part of the demo (see {})",
            missing.len(),
            pids.len(),
            log_path.display()
        ));
        return Ok(None);
    }

    let url = format!("file://{}", bucket.display());
    step.say(
        "downloading the sink into a collection",
        &format!(
            "covfleet download --url {url} --collection {}",
            agent_dir.display()
        ),
    );
    let mut cmd = Command::new(&me);
    cmd.args(["download", "--url", &url, "--collection"])
        .arg(&agent_dir);
    if output::quiet() {
        cmd.arg("--quiet");
    }
    let status = cmd.status().context("running covfleet download")?;
    if !status.success() {
        bail!("covfleet download --url {url} failed ({status})");
    }

    step.say(
        "compiling and rendering",
        &format!(
            "covfleet compile {0} && covfleet render {0} --source {1}",
            agent_dir.display(),
            src.display()
        ),
    );
    compile_and_render(&agent_dir, src, "covfleet demo (node agent)")?;
    let index = agent_dir.join("html").join("index.html");
    if !index.is_file() {
        bail!("render finished but {} is missing", index.display());
    }
    Ok(Some(index))
}

struct AgentStep {
    n: usize,
}

impl AgentStep {
    fn say(&mut self, what: &str, equivalent: &str) {
        self.n += 1;
        output::status(format_args!("[agent {}/3] {what}", self.n));
        output::status(format_args!("      $ {equivalent}"));
    }
}

/// The pids of which no `covcounters.<hash>.<pid>.<slot>` is under `root` yet.
fn pids_without_counters(root: &Path, pids: &[u32]) -> Vec<u32> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if let Some(rest) = name.strip_prefix("covcounters.") {
                    let parts: Vec<&str> = rest.split('.').collect();
                    if let [_, pid, _] = parts[..]
                        && let Ok(pid) = pid.parse::<u32>()
                    {
                        seen.insert(pid);
                    }
                }
            }
        }
    }
    pids.iter().copied().filter(|p| !seen.contains(p)).collect()
}

/// Writes the embedded demo service into `src`.
fn write_sources(src: &Path) -> anyhow::Result<()> {
    for (name, text) in SOURCES {
        let path = src.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Injects the coverage server, as `covfleet instrument` does.
fn instrument(src: &Path) -> anyhow::Result<()> {
    let ctx = gosrc::BuildContext::from_env(&[]);
    let rep = gosrc::instrument(src, &ctx, false).context("instrumenting the demo service")?;
    if let Some(e) = rep.failed.into_iter().next() {
        return Err(anyhow::Error::new(e).context("instrumenting the demo service"));
    }
    if rep.chosen.is_empty() {
        bail!("the demo service has no package main to instrument (this is a bug in covfleet)");
    }
    Ok(())
}

/// `go build -cover -covermode=atomic -coverpkg=./... -o bin .` in `src`.
fn build(go: &str, src: &Path, bin: &Path) -> anyhow::Result<()> {
    let out = Command::new(go)
        .args([
            "build",
            "-cover",
            "-covermode=atomic",
            "-coverpkg=./...",
            "-o",
        ])
        .arg(bin)
        .arg(".")
        .current_dir(src)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "on")
        .output()
        .with_context(|| format!("running {go}"))?;
    if !out.status.success() {
        bail!(
            "go build of the demo service failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Starts `replicas` pods of the Deployment and one of the DaemonSet, each
/// on free loopback ports, and waits until all answer.
fn start_replicas(bin: &Path, logs: &Path, replicas: u8) -> anyhow::Result<Replicas> {
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut running = Replicas(Vec::new());
    let mut pods: Vec<String> = (0..usize::from(replicas))
        .map(|k| {
            format!(
                "{DEPLOYMENT}-{POD_TEMPLATE_HASH}-{}",
                POD_SUFFIXES[k % POD_SUFFIXES.len()]
            )
        })
        .collect();
    pods.push(format!("{AGENT}-{AGENT_SUFFIX}"));
    // One block of coverage ports, so the node agent's --ports range holds
    // these servers and nothing else.
    let first = free_port_block(pods.len())?;
    for (k, pod) in pods.into_iter().enumerate() {
        let service_port = free_port()?;
        let coverage_port = first + k as u16;
        let log = std::fs::File::create(logs.join(format!("{pod}.log")))
            .with_context(|| format!("creating the log of {pod}"))?;
        let child = Command::new(bin)
            .arg("-addr")
            .arg(format!("127.0.0.1:{service_port}"))
            .env("COVERAGE_PORT", coverage_port.to_string())
            .env("COVERAGE_BIND", "127.0.0.1")
            .env("SOURCE_GIT_URL", "https://example.com/covfleet/demo")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        running.0.push(Replica {
            child,
            service_port,
            coverage_port,
            pod,
        });
    }
    for r in &mut running.0 {
        wait_ready(r)?;
    }
    Ok(running)
}

/// Runs `covfleet compile` and `covfleet render` on the collection, as a
/// user would (this binary, in child processes).
fn compile_and_render(collection: &Path, src: &Path, title: &str) -> anyhow::Result<()> {
    let me = std::env::current_exe().context("locating the covfleet binary")?;
    for sub in ["compile", "render"] {
        let mut cmd = Command::new(&me);
        cmd.arg(sub).arg(collection);
        if sub == "render" {
            // The path is printed by `run`; the summary still goes to stderr.
            cmd.arg("--source")
                .arg(src)
                .arg("--title")
                .arg(title)
                .stdout(Stdio::null());
        }
        if output::quiet() {
            cmd.arg("--quiet");
        }
        let status = cmd
            .status()
            .with_context(|| format!("running covfleet {sub}"))?;
        if !status.success() {
            bail!("covfleet {sub} {} failed ({status})", collection.display());
        }
    }
    Ok(())
}

fn which_go(go: &str) -> anyhow::Result<String> {
    match Command::new(go).arg("version").output() {
        Ok(o) if o.status.success() => Ok(go.to_string()),
        _ => Err(UsageError::new(format!(
            "the demo builds a Go program and needs a Go toolchain: `{go} version` did not run (install Go, or pass --go PATH)"
        ))
        .into()),
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(p))
}

/// Creates DIR, replacing an earlier demo's output but never a directory
/// that covfleet did not make.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    let marker = dir.join(".covfleet-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !marker.is_file() {
            return Err(UsageError::new(format!(
                "{} exists and is not an earlier covfleet demo: choose another --dir",
                dir.display()
            ))
            .into());
        }
        for sub in [
            "src",
            "bin",
            "logs",
            "coverage",
            "html",
            "bucket",
            "agent-spool",
            "agent",
        ] {
            let p = dir.join(sub);
            if p.exists() {
                std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        let db = dir.join("coverage.db");
        if db.exists() {
            std::fs::remove_file(&db).with_context(|| format!("removing {}", db.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        &marker,
        "made by covfleet demo; the whole directory may be replaced\n",
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr().context("reading the port")?.port())
}

/// The first of `n` consecutive free loopback ports, below the ephemeral
/// range (so outgoing connections do not take them meanwhile).
fn free_port_block(n: usize) -> anyhow::Result<u16> {
    let seed = std::process::id() as usize;
    for attempt in 0..500usize {
        let base = 20000 + (seed.wrapping_mul(7919) + attempt * 131) % 12000;
        let held: Result<Vec<TcpListener>, _> = (0..n)
            .map(|k| TcpListener::bind(("127.0.0.1", (base + k) as u16)))
            .collect();
        if held.is_ok() {
            return Ok(base as u16);
        }
    }
    bail!("found no {n} consecutive free loopback ports for the coverage servers")
}

/// One plain HTTP/1.0 request on loopback; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_ready(r: &mut Replica) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = r.child.try_wait() {
            bail!(
                "replica {} exited during start-up ({status}); see its log under logs/",
                r.pod
            );
        }
        let svc = http(r.service_port, "GET", "/healthz", None).is_ok_and(|(s, _)| s == 200);
        let cov = http(r.coverage_port, "GET", "/health", None).is_ok_and(|(s, _)| s == 200);
        if svc && cov {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "replica {} did not become ready (service port {}: {svc}, coverage port {}: {cov})",
                r.pod,
                r.service_port,
                r.coverage_port
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each replica gets a different mix, so their coverage differs and the
/// merged report covers more than any single one; the agent (`None`) only
/// lists items.
fn drive(port: u16, mix: Option<usize>) -> std::io::Result<()> {
    for _ in 0..5 {
        http(port, "GET", "/items", None)?;
    }
    let Some(k) = mix else { return Ok(()) };
    match k % 3 {
        0 => {
            http(
                port,
                "POST",
                "/items",
                Some(r#"{"name":"gopher sticker","price_cents":299,"stock":50}"#),
            )?;
            http(
                port,
                "POST",
                "/items",
                Some(r#"{"name":"","price_cents":-1}"#),
            )?;
            http(port, "GET", "/items/1", None)?;
            http(port, "GET", "/items/999", None)?;
        }
        1 => {
            http(port, "GET", "/quote?id=1&qty=12", None)?;
            http(port, "GET", "/quote?id=2&qty=1&coupon=gopher10", None)?;
            http(port, "GET", "/quote?id=nope", None)?;
        }
        _ => {
            http(port, "GET", "/items/abc", None)?;
            http(port, "GET", "/quote?id=3", None)?;
        }
    }
    Ok(())
}

/// Scrapes every replica once through the collection engine (as `collect
/// --url` would), recording each as its pod's container.
fn collect(replicas: &[Replica], collection: &Path, shared: &Shared) -> anyhow::Result<()> {
    let mut sources = Sources::default();
    let mut url_pods = BTreeMap::new();
    for r in replicas {
        let container = if r.pod.starts_with(AGENT) {
            "agent"
        } else {
            "api"
        };
        let url = format!("http://127.0.0.1:{}", r.coverage_port);
        url_pods.insert(
            url.clone(),
            UrlPod {
                namespace: NAMESPACE.into(),
                pod: r.pod.clone(),
                container: ContainerMeta {
                    name: container.into(),
                    image: "localhost/covfleet-demo:latest".into(),
                },
            },
        );
        sources.urls.push(url);
    }
    let mut settings = Settings::new(sources, collection.to_path_buf());
    settings.url_pods = url_pods;
    let summary = shared.runtime.block_on(async {
        let collector = Collector::new(settings, None).await?;
        anyhow::Ok(collector.collect_once().await)
    })?;
    if let Some(t) = summary.failed.iter().chain(&summary.skipped).next() {
        bail!("collecting {}: {}", t.target, t.reason);
    }
    if summary.collected != replicas.len() {
        bail!(
            "collected {} of {} replicas",
            summary.collected,
            replicas.len()
        );
    }
    Ok(())
}
