//! `covfleet agent` against real instrumented processes.
//!
//! The agent runs inside a network namespace this test creates, which
//! stands in for the node's host network: processes started there are
//! "host-network" processes; processes in further namespaces stand in for
//! pods (reached from inside their namespace, since nothing routes to them
//! from the agent's). A private network namespace per test also keeps the
//! ports free of whatever else runs on this machine. Processes of other
//! tests on the machine are visible in /proc too: assertions only look at
//! this test's binaries, named uniquely.
//!
//! Needs root (ip netns, cgroups), the Go toolchain and python3.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::Value;
use support::*;

fn of_binary(root: &Path, binary: &str) -> Vec<(PathBuf, Value)> {
    stored(root)
        .into_iter()
        .filter(|(_, md)| md["binary_name"] == binary)
        .collect()
}

fn snapshots(md: &Value) -> u64 {
    md["snapshots"].as_u64().unwrap_or(0)
}

/// A directory with the meta-data and only the newest counters of `dir`.
fn latest(dir: &Path) -> tempfile::TempDir {
    let md = read_json(&dir.join("metadata.json"));
    let name = md["latest_counters"].as_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("covmeta.") || n == name {
            std::fs::copy(e.path(), tmp.path().join(&n)).unwrap();
        }
    }
    tmp
}

struct AgentRun {
    child: Option<Child>,
}

impl AgentRun {
    fn start(ns: &Netns, sink: &Path, extra: &[&str]) -> AgentRun {
        let spool = format!("{}.spool", sink.display());
        let sink = format!("file://{}", sink.display());
        let mut args = vec![
            "agent",
            "--sink",
            &sink,
            "--spool",
            &spool,
            "--scan-interval",
            "300ms",
            "--schedule",
            "200ms:3s,500ms",
            "--hostname",
            "node-a",
        ];
        args.extend_from_slice(extra);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name, covfleet()])
            .args(&args)
            .env("COVFLEET_LOG", "debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(
                std::fs::File::create(std::env::temp_dir().join(format!("agent-{}.log", ns.name)))
                    .unwrap(),
            ));
        AgentRun {
            child: Some(c.spawn().expect("start covfleet agent")),
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let st = c.wait().unwrap();
            assert!(st.success(), "agent exited with {st}");
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for AgentRun {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GET a path of the agent's HTTP endpoint inside `ns`.
fn http_get(ns: &Netns, path: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "curl", "-sf"])
        .arg(format!("http://127.0.0.1:9464{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// What a direct `collect --url` sees of the server on `port` in `ns`.
fn direct_profile(ns: &Netns, port: u16) -> Vec<String> {
    let out_dir = tempfile::tempdir().unwrap();
    let out = ns.covfleet(&[
        "collect",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "-o",
        out_dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = entries(out_dir.path());
    assert_eq!(e.len(), 1);
    work_profile(latest_only(&e[0]).path())
}

/// Host-network servers (two on consecutive ports, behind one answering
/// 500 "not built with -cover" on the first port), a pod-like namespace, a
/// server bound to loopback inside its namespace, and a process in its own
/// PID namespace: each found, checked, followed and stored once, in the
/// seed's `_host_` layout, its latest snapshot equal to what the process
/// serves.
#[test]
fn finds_reaches_and_follows_every_kind_of_process() {
    let f = fixtures();
    let node = Netns::new();
    // The plain binary takes 53700 and answers 500 on /coverage.
    let plain = node.spawn_ready(&f.plain, &["3"], &[]);
    assert_eq!(listening_port(plain.pid), Some(53700));
    let host_a = node.spawn_ready(&f.named("agt-host-a"), &["5"], &[]);
    assert_eq!(listening_port(host_a.pid), Some(53701));
    let host_b = node.spawn_ready(&f.named("agt-host-b"), &["6"], &[]);
    assert_eq!(listening_port(host_b.pid), Some(53702));
    let pod = Netns::new();
    let in_pod = pod.spawn_ready(&f.named("agt-pod"), &["7"], &[]);
    let lo = Netns::new();
    let _loopback = lo.spawn_ready(
        &f.named("agt-loopback"),
        &["8"],
        &[("COVERAGE_BIND", "127.0.0.1")],
    );
    let pidns = Netns::new();
    let unshared = pidns.spawn_ready(
        Path::new("unshare"),
        &[
            "--pid",
            "--fork",
            "--kill-child",
            f.named("agt-pidns").to_str().unwrap(),
            "9",
        ],
        &[],
    );
    let pidns_child = children_of(unshared.pid)[0];

    let sink = tempfile::tempdir().unwrap();
    let mut agent = AgentRun::start(&node, sink.path(), &["--no-kube"]);
    let names = [
        "agt-host-a",
        "agt-host-b",
        "agt-pod",
        "agt-loopback",
        "agt-pidns",
    ];
    wait_for("every server stored twice", || {
        names.iter().all(|n| {
            of_binary(sink.path(), n)
                .iter()
                .any(|(_, md)| snapshots(md) >= 2)
        })
    });
    // New work shows up in later snapshots.
    node.more_work(host_a);
    pod.more_work(in_pod);
    let want_a = direct_profile(&node, 53701);
    let want_pod = direct_profile(&pod, 53700);
    wait_for("the new work stored", || {
        let a = of_binary(sink.path(), "agt-host-a");
        let p = of_binary(sink.path(), "agt-pod");
        a.len() == 1
            && p.len() == 1
            && work_profile(latest(&a[0].0).path()) == want_a
            && work_profile(latest(&p[0].0).path()) == want_pod
    });
    let metrics = http_get(&node, "/metrics");
    assert_eq!(http_get(&node, "/healthz").trim(), "ok");
    agent.stop();

    for n in names {
        let found = of_binary(sink.path(), n);
        assert_eq!(found.len(), 1, "{n}: one directory per process: {found:?}");
        let (dir, md) = &found[0];
        let rel = dir.strip_prefix(sink.path()).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        assert_eq!(parts.len(), 4, "{rel:?}");
        assert_eq!(
            (parts[0].as_str(), parts[1].as_str(), parts[3].as_str()),
            ("node-a", "_host_", n)
        );
        assert_eq!(md["host_process"], true);
        assert_eq!(md["source"], "agent");
        // Files: meta once, counters in the two alternating slots, info once.
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        files.sort();
        let hash = md["meta_hash"].as_str().unwrap();
        let pid = md["pid"].as_u64().unwrap();
        assert_eq!(
            files,
            vec![
                format!("covcounters.{hash}.{pid}.1"),
                format!("covcounters.{hash}.{pid}.2"),
                format!("covmeta.{hash}"),
                "info.json".to_string(),
                "metadata.json".to_string(),
            ],
            "{n}"
        );
        let info = read_json(&dir.join("info.json"));
        assert_eq!(info["binary_name"], n);
    }
    let (_, a) = &of_binary(sink.path(), "agt-host-a")[0];
    assert_eq!(a["process"]["host_pid"], host_a.pid.to_string());
    assert_eq!(a["port"], 53701);
    let (_, b) = &of_binary(sink.path(), "agt-host-b")[0];
    assert_eq!(b["port"], 53702);
    // The PID-namespaced process reports PID 1; the agent matched it via NSpid.
    let (_, p) = &of_binary(sink.path(), "agt-pidns")[0];
    assert_eq!(p["pid"], 1);
    assert_eq!(p["process"]["host_pid"], pidns_child.to_string());
    let (_, l) = &of_binary(sink.path(), "agt-loopback")[0];
    assert!(
        l["target"].as_str().unwrap().contains("netns of pid"),
        "{l}"
    );
    // The binary built without -cover was seen and left alone.
    assert!(of_binary(sink.path(), "plain").is_empty());
    assert!(
        metric(&metrics, "covfleet_agent_targets{state=\"not_covered\"}").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "covfleet_agent_scrapes_total").unwrap() >= 10.0);
    assert!(metric(&metrics, "covfleet_agent_uploads_total").unwrap() >= 10.0);
    assert_eq!(metric(&metrics, "covfleet_agent_spool_depth"), Some(0.0));
}

/// A server whose identity does not match the process holding the socket
/// (a relay to another process's server) is never stored.
#[test]
fn identity_mismatch_is_refused() {
    let f = fixtures();
    let node = Netns::new();
    let _real = node.spawn_ready(&f.named("agt-relayed"), &["2"], &[]);
    // The relay listens on 53710 and forwards to 53700: its answers carry
    // the fixture's PID, not the relay's.
    let _relay = node.spawn_relay(53710, 53700);
    let sink = tempfile::tempdir().unwrap();
    let mut agent = AgentRun::start(&node, sink.path(), &["--no-kube"]);
    wait_for("the real server stored", || {
        of_binary(sink.path(), "agt-relayed")
            .iter()
            .any(|(_, md)| snapshots(md) >= 2)
    });
    wait_for("the relay refused", || {
        metric(
            &http_get(&node, "/metrics"),
            "covfleet_agent_targets{state=\"rejected\"}",
        )
        .is_some_and(|v| v >= 1.0)
    });
    agent.stop();
    let found = of_binary(sink.path(), "agt-relayed");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1["port"], 53700);
}

/// A hostile coverage server in `ns`: it answers the identity probe, then
/// either never answers `GET /coverage` ("stall") or streams a body that
/// never ends ("flood").
fn spawn_hostile(ns: &Netns, mode: &str, port: u16, name: &str) -> Proc {
    let script = format!(
        r#"
import os, socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port})); s.listen(64)
print("ready", flush=True)
hdr = "X-Art-Coverage-Server: 1\r\nX-Art-Coverage-Pid: %d\r\nX-Art-Coverage-Binary: {name}\r\n" % os.getpid()
def handle(c):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        if data.startswith(b"HEAD") or data.startswith(b"GET /health"):
            c.sendall(("HTTP/1.1 200 OK\r\n" + hdr + "Content-Length: 0\r\n\r\n").encode())
            c.close()
            return
        if "{mode}" == "stall":
            time.sleep(3600)
        c.sendall(("HTTP/1.1 200 OK\r\n" + hdr + "Content-Type: application/json\r\nConnection: close\r\n\r\n").encode())
        chunk = b'{{"counters_data":"' + b"A" * 65536
        while True:
            c.sendall(chunk)
    except Exception:
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#
    );
    ns.spawn_ready(Path::new("python3"), &["-c", &script], &[])
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Targets that hang: a listener that accepts and never answers (probed,
/// timed out, left alone for a while), a server that answers the probe and
/// then never answers a fetch, one whose body never ends. The real server
/// next to them is still scraped on its own schedule — a stalled fetch
/// holds one request slot until its timeout, never the others' rounds —
/// and the agent's memory stays bounded.
#[test]
fn hanging_targets_do_not_hold_up_the_others() {
    let f = fixtures();
    let node = Netns::new();
    let _good = node.spawn_ready(&f.named("agt-hang-ok"), &["3"], &[]);
    let _silent = node.spawn_hang(53701);
    let _stall = spawn_hostile(&node, "stall", 53702, "agt-stall");
    let _flood = spawn_hostile(&node, "flood", 53703, "agt-flood");
    let sink = tempfile::tempdir().unwrap();
    let mut agent = AgentRun::start(
        &node,
        sink.path(),
        &["--no-kube", "--timeout", "6s", "--max-target-mib", "1"],
    );
    // `ip netns exec` execs covfleet: the child is the agent.
    let agent_pid = agent.child.as_ref().unwrap().id();
    let good = || {
        of_binary(sink.path(), "agt-hang-ok")
            .first()
            .map_or(0, |(_, md)| snapshots(md))
    };
    let timeouts = || {
        metric(
            &http_get(&node, "/metrics"),
            "covfleet_agent_scrape_failures_total{reason=\"timeout\"}",
        )
        .unwrap_or(0.0)
    };
    wait_for("the stalled fetch timed out", || timeouts() >= 2.0);
    wait_for("the flood refused as too large", || {
        metric(
            &http_get(&node, "/metrics"),
            "covfleet_agent_scrape_failures_total{reason=\"too-large\"}",
        )
        .is_some_and(|v| v >= 2.0)
    });
    // While one stalled fetch waits out its 6 s timeout, the real server
    // (every 500 ms at steady state) is scraped again and again.
    let (t0, s0) = (timeouts(), good());
    wait_for("the real server scraped 5 more times", || good() >= s0 + 5);
    let t1 = timeouts();
    assert!(
        t1 <= t0 + 2.0,
        "5 scrapes of the real server took {} stalled-fetch timeouts",
        t1 - t0
    );
    let m = http_get(&node, "/metrics");
    assert!(
        metric(&m, "covfleet_agent_targets{state=\"unresponsive\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "covfleet_agent_targets{state=\"failing\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    let rss = rss_kib(agent_pid);
    assert!(rss < 150 * 1024, "agent RSS {rss} KiB under a flood");
    agent.stop();
    assert!(of_binary(sink.path(), "agt-stall").is_empty());
    assert!(of_binary(sink.path(), "agt-flood").is_empty());
    assert!(good() >= s0 + 5);
}

/// SIGKILL mid-run: every stored file stays whole (the previous snapshot
/// intact), and a restarted agent carries on in a new directory.
#[test]
fn killed_agent_leaves_whole_files_and_resumes() {
    let f = fixtures();
    let node = Netns::new();
    let p = node.spawn_ready(&f.named("agt-killed"), &["4"], &[]);
    let sink = tempfile::tempdir().unwrap();
    let mut agent = AgentRun::start(&node, sink.path(), &["--no-kube"]);
    wait_for("snapshots stored", || {
        of_binary(sink.path(), "agt-killed")
            .iter()
            .any(|(_, md)| snapshots(md) >= 3)
    });
    agent.kill();
    let first = of_binary(sink.path(), "agt-killed");
    assert_eq!(first.len(), 1);
    let before = work_profile(latest(&first[0].0).path());
    // Both slots decode (go tool covdata reads the whole directory).
    work_profile(&first[0].0);
    node.more_work(p);
    // Discovery times have one-second resolution: let the restarted agent
    // find the process in a later second, so it gets a directory of its own.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut agent = AgentRun::start(&node, sink.path(), &["--no-kube"]);
    wait_for("the restarted agent stores", || {
        of_binary(sink.path(), "agt-killed").len() == 2
            && of_binary(sink.path(), "agt-killed")
                .iter()
                .all(|(_, md)| snapshots(md) >= 1)
    });
    agent.stop();
    let all = of_binary(sink.path(), "agt-killed");
    assert_eq!(
        work_profile(latest(&all[0].0).path()),
        before,
        "old data changed"
    );
    let after = work_profile(latest(&all[1].0).path());
    assert!(total_count(&after) > total_count(&before));
}

mod s3 {
    use super::*;
    use testkit::S3Server;

    pub(super) fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn compile_owners(col: &Path) -> Vec<(String, i64, i64)> {
        let out = Command::new(covfleet())
            .args(["compile", "--collection", col.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let db = db::Database::open_collection(col).unwrap();
        let mut v: Vec<(String, i64, i64)> = db
            .owners()
            .unwrap()
            .into_iter()
            .filter(|o| o.binary_name.starts_with("agt-s3-"))
            .map(|o| (o.binary_name, o.total_stmts, o.covered_stmts))
            .collect();
        v.sort();
        v
    }

    /// Agent → real S3 server (stopped and restarted mid-run) → download →
    /// compile gives the owner statistics of a direct collect of the same
    /// processes; what the agent scraped while the bucket was down arrives
    /// once it is back.
    #[test]
    fn agent_to_s3_survives_an_outage_and_compiles_like_collect() {
        let Some(mut s3) = S3Server::start() else {
            return;
        };
        let f = fixtures();
        // The agent runs in this host's namespace (where the S3 server is);
        // the processes in a namespace of their own, reached with setns.
        let ns = Netns::new();
        let a = ns.spawn_ready(&f.named("agt-s3-a"), &["5"], &[]);
        let _b = ns.spawn_ready(&f.named("agt-s3-b"), &["11"], &[]);
        let tmp = tempfile::tempdir().unwrap();
        let prefix = format!("agent-{}", std::process::id());
        let url = format!("s3://{}/{prefix}", s3.bucket);
        let listen = format!("127.0.0.1:{}", free_port());
        let spool = tmp.path().join("spool");
        let log = std::fs::File::create(tmp.path().join("agent.log")).unwrap();
        let mut agent = AgentRun {
            child: Some(
                Command::new(covfleet())
                    .args(["agent", "--sink", &url, "--endpoint", &s3.endpoint])
                    .args(["--spool", spool.to_str().unwrap(), "--listen", &listen])
                    .args([
                        "--no-kube",
                        "--hostname",
                        "node-s3",
                        "--scan-interval",
                        "300ms",
                    ])
                    .args(["--schedule", "200ms:2s,500ms"])
                    .envs(s3.env())
                    .env_remove("AWS_ENDPOINT_URL")
                    .env("COVFLEET_LOG", "agent=debug,store=debug")
                    .stdout(std::process::Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            ),
        };
        let bucket = s3.bucket_dir().join(&prefix);
        let mine = |root: &Path| -> Vec<(PathBuf, Value)> {
            stored(root)
                .into_iter()
                .filter(|(_, md)| {
                    md["binary_name"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("agt-s3-")
                })
                .collect()
        };
        wait_for("both processes in the bucket", || {
            let m = mine(&bucket);
            m.len() == 2 && m.iter().all(|(_, md)| snapshots(md) >= 2)
        });
        s3.stop();
        ns.more_work(a);
        let want_a = direct_profile(&ns, 53700);
        wait_for("snapshots spooled while the bucket is down", || {
            std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0) > 0
        });
        s3.restart();
        wait_for("the newest snapshot in the bucket after the outage", || {
            let m = mine(&bucket);
            m.iter()
                .find(|(_, md)| md["binary_name"] == "agt-s3-a")
                .is_some_and(|(d, _)| work_profile(latest(d).path()) == want_a)
        });
        agent.stop();

        let col = tmp.path().join("col");
        let out = Command::new(covfleet())
            .args([
                "download",
                "--collection",
                col.to_str().unwrap(),
                "--url",
                &url,
            ])
            .args(["--endpoint", &s3.endpoint])
            .envs(s3.env())
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let direct = tmp.path().join("direct");
        let out = ns.covfleet(&[
            "collect",
            "--url",
            "http://127.0.0.1:53700",
            "--url",
            "http://127.0.0.1:53701",
            "-o",
            direct.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let via_agent = compile_owners(&col);
        assert_eq!(via_agent.len(), 2, "{via_agent:?}");
        assert!(via_agent.iter().all(|(_, _, covered)| *covered > 0));
        assert_eq!(via_agent, compile_owners(&direct));
    }
}

/// Processes placed in real cgroups named like a CRI-O scope (cgroup v2,
/// systemd driver) and a containerd scope (the v1 `name=systemd`
/// hierarchy), attributed through `crictl inspect` (a stand-in script
/// answering with the runtime's labels) and stored in the pod layout.
#[test]
fn cgroup_scopes_are_attributed_to_pods() {
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists()
        || !Path::new("/sys/fs/cgroup/systemd/cgroup.procs").exists()
    {
        panic!(
            "this test needs cgroup v2 at /sys/fs/cgroup/unified and v1 name=systemd at /sys/fs/cgroup/systemd"
        );
    }
    let f = fixtures();
    let me = std::process::id();
    let uid = format!("0b9f5f2e-6c1d-4d8a-9e3b-{me:012x}");
    let id1 = format!("{:064x}", u64::from(me) * 7 + 1);
    let id2 = format!("{:064x}", u64::from(me) * 7 + 2);
    let slice = format!("cfk{me}.slice/kubepods-pod{}.slice", uid.replace('-', "_"));
    let crio = Cgroup::new(
        "/sys/fs/cgroup/unified",
        &format!("{slice}/crio-{id1}.scope"),
    );
    let containerd = Cgroup::new(
        "/sys/fs/cgroup/systemd",
        &format!("{slice}/cri-containerd-{id2}.scope"),
    );
    let pod = Netns::new();
    let web = pod.spawn_ready(&f.named("agt-cg-web"), &["3"], &[]);
    let side = pod.spawn_ready(&f.named("agt-cg-side"), &["4"], &[]);
    crio.add(web.pid);
    containerd.add(side.pid);
    let tmp = tempfile::tempdir().unwrap();
    let crictl = tmp.path().join("crictl");
    let label = |container: &str, restarts: u32, image: &str| {
        format!(
            r#"{{"status":{{"labels":{{"io.kubernetes.pod.name":"shop-7d9f","io.kubernetes.pod.namespace":"shop","io.kubernetes.container.name":"{container}","io.kubernetes.pod.uid":"{uid}"}},"annotations":{{"io.kubernetes.container.restartCount":"{restarts}"}},"image":{{"image":"{image}"}}}}}}"#
        )
    };
    std::fs::write(
        &crictl,
        format!(
            "#!/bin/sh\ncase \"$4\" in\n{id1}) echo '{}';;\n{id2}) echo '{}';;\n*) exit 1;;\nesac\n",
            label("web", 2, "quay.io/shop/web:v1"),
            label("sidecar", 0, "quay.io/shop/side:v3"),
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&crictl)
        .status()
        .unwrap();
    let node = Netns::new();
    let sink = tmp.path().join("sink");
    let mut agent = AgentRun::start(
        &node,
        &sink,
        &["--no-kube", "--crictl", crictl.to_str().unwrap()],
    );
    wait_for("both containers stored", || {
        ["agt-cg-web", "agt-cg-side"]
            .iter()
            .all(|n| of_binary(&sink, n).iter().any(|(_, md)| snapshots(md) >= 1))
    });
    agent.stop();
    let (dir, md) = &of_binary(&sink, "agt-cg-web")[0];
    let rel = rel_parts(dir, &sink);
    assert_eq!(rel.len(), 7, "{rel:?}");
    assert_eq!(&rel[..4], ["node-a", "shop", "shop-7d9f", "web"]);
    assert_eq!(&rel[5..], ["quay.io_shop_web_v1", "agt-cg-web"]);
    assert_eq!(md["namespace"], "shop");
    assert_eq!(md["pod_name"], "shop-7d9f");
    assert_eq!(md["container"]["name"], "web");
    assert_eq!(md["host_process"], false);
    assert_eq!(md["process"]["pod_uid"], uid);
    assert_eq!(md["process"]["restart_count"], "2");
    assert_eq!(md["process"]["container_id"], id1);
    let (dir, md) = &of_binary(&sink, "agt-cg-side")[0];
    assert!(
        dir.strip_prefix(&sink)
            .unwrap()
            .starts_with("node-a/shop/shop-7d9f/sidecar")
    );
    assert_eq!(md["process"]["container_id"], id2);
    assert_eq!(md["container"]["image"], "quay.io/shop/side:v3");
}

/// One running pod of one container, as the recorded-API server lists it.
struct OnePod<'a> {
    node: &'a str,
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
    container: &'a str,
    image: &'a str,
    /// The CRI-O container ID in the pod's status.
    id: &'a str,
    restarts: u32,
    ip: &'a str,
    /// The controller: apiVersion, kind, name, UID.
    owner: [&'a str; 4],
}

/// A pod list holding `p`.
fn pod_list(p: &OnePod) -> Value {
    let [api, kind, owner, owner_uid] = p.owner;
    serde_json::json!({"items": [{
        "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid,
                     "ownerReferences": [{"apiVersion": api, "kind": kind,
                                          "name": owner, "uid": owner_uid, "controller": true}]},
        "spec": {"nodeName": p.node, "containers": [{"name": p.container, "image": p.image}]},
        "status": {"phase": "Running", "podIP": p.ip, "containerStatuses": [{
            "name": p.container, "image": p.image, "imageID": "", "ready": true,
            "restartCount": p.restarts, "containerID": format!("cri-o://{}", p.id),
            "state": {"running": {}}}]}
    }]})
}

/// A pod UID, a CRI-O container ID and a real cgroup (v2) named like that
/// container's scope under the pod's slice, unique to this test process;
/// removed on drop.
struct CrioScope {
    uid: String,
    id: String,
    /// The scope's directory under /sys/fs/cgroup/unified.
    dir: PathBuf,
    _cgroup: Cgroup,
}

/// A [`CrioScope`] under `<tag><pid>.slice`; the UID starts with
/// `uid_head` (four groups), the ID is derived from the PID and `salt`.
fn crio_scope(tag: &str, uid_head: &str, salt: u64) -> CrioScope {
    let me = std::process::id();
    let uid = format!("{uid_head}-{me:012x}");
    let id = format!("{:064x}", u64::from(me) * 16 + salt);
    let rel = format!(
        "{tag}{me}.slice/kubepods-pod{}.slice/crio-{id}.scope",
        uid.replace('-', "_")
    );
    CrioScope {
        _cgroup: Cgroup::new("/sys/fs/cgroup/unified", &rel),
        dir: Path::new("/sys/fs/cgroup/unified").join(&rel),
        uid,
        id,
    }
}

/// A child killed and reaped on drop (also when the test fails).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bootstrap mode: started with `--kubeconfig PATH` before PATH exists, the
/// agent follows the node's processes as host processes; once a kubeconfig
/// appears there (pointing at an API server — the recorded-API server, in
/// the node's namespace — that lists this node's pods), it is picked up
/// and a container's process (in a real cgroup named like a CRI-O scope)
/// is attributed to the pod the API server names.
#[test]
fn bootstrap_mode_picks_up_a_kubeconfig_that_appears_later() {
    use std::io::BufRead;
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        panic!("this test needs cgroup v2 at /sys/fs/cgroup/unified");
    }
    let f = fixtures();
    let scope = crio_scope("cfb", "6d1e2c3b-0a4f-4b5e-8c7d", 3);
    let (uid, id, scope_dir) = (scope.uid.as_str(), scope.id.as_str(), &scope.dir);
    let node = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    let sink = tmp.path().join("sink");
    let log = std::env::temp_dir().join(format!("agent-{}.log", node.name));
    let mut agent = AgentRun::start(
        &node,
        &sink,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--node-name",
            "node-b",
        ],
    );
    let _host = node.spawn_ready(&f.named("agt-boot-host"), &["3"], &[]);
    wait_for("the host process stored in bootstrap mode", || {
        of_binary(&sink, "agt-boot-host")
            .iter()
            .any(|(_, md)| snapshots(md) >= 1)
    });
    let logged = |what: &str| std::fs::read_to_string(&log).is_ok_and(|l| l.contains(what));
    assert!(logged("bootstrap mode"));
    assert!(!logged("Kubernetes credentials found"));

    // The API server comes up and the kubeconfig appears.
    let pods = pod_list(&OnePod {
        node: "node-b",
        namespace: "shop",
        name: "web-5f6b",
        uid,
        container: "web",
        image: "quay.io/shop/web:v2",
        id,
        restarts: 1,
        ip: "10.0.0.9",
        owner: ["apps/v1", "ReplicaSet", "web-7c9d8", "rs-1"],
    });
    let pods_file = tmp.path().join("pods.json");
    std::fs::write(&pods_file, pods.to_string()).unwrap();
    let mut api = Reaped(
        Command::new("ip")
            .args(["netns", "exec", &node.name])
            .arg(&f.fakeapi)
            .arg("-pods")
            .arg(&pods_file)
            .args(["-token", "boot"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(api.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
         current-context: c\nusers:\n- name: u\n  user:\n    token: boot\n"
    );
    let part = tmp.path().join("kubeconfig.part");
    std::fs::write(&part, text).unwrap();
    std::fs::rename(&part, &kubeconfig).unwrap();
    wait_for("the kubeconfig picked up and the pods listed", || {
        logged("Kubernetes credentials found") && logged("pods listed")
    });
    // The container's process: in its CRI-O scope from its first
    // instruction (the shell joins the scope, then becomes the program in
    // the pod's network namespace; `ip netns exec` hides /sys/fs/cgroup,
    // so the scope is joined before it).
    let pod = Netns::new();
    let prog = f.named("agt-boot-pod");
    let mut in_pod = Reaped(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec ip netns exec {} {} 4",
                scope_dir.display(),
                pod.name,
                prog.display()
            ))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(in_pod.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("ready"), "{line:?}");
    wait_for("the pod's process stored", || {
        of_binary(&sink, "agt-boot-pod")
            .iter()
            .any(|(_, md)| snapshots(md) >= 1)
    });
    agent.stop();
    drop(in_pod);
    drop(api);
    let (dir, md) = &of_binary(&sink, "agt-boot-pod")[0];
    let rel: Vec<String> = dir
        .strip_prefix(&sink)
        .unwrap()
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    assert_eq!(&rel[..4], ["node-a", "shop", "web-5f6b", "web"], "{rel:?}");
    assert_eq!(&rel[5..], ["quay.io_shop_web_v2", "agt-boot-pod"]);
    assert_eq!(md["host_process"], false);
    assert_eq!(md["process"]["pod_uid"], uid);
    assert_eq!(md["process"]["restart_count"], "1");
    assert_eq!(md["owner_references"][0]["name"], "web-7c9d8");
    // The host process stays where bootstrap mode put it.
    let (_, h) = &of_binary(&sink, "agt-boot-host")[0];
    assert_eq!(h["namespace"], "_host_");
}

fn counter_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("covcounters."))
        .collect();
    v.sort();
    v
}

/// Copies the coverage files of `from` into `to`.
fn copy_coverage(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if (n.starts_with("covcounters.") || n.starts_with("covmeta."))
            && e.file_type().unwrap().is_file()
        {
            std::fs::copy(e.path(), to.join(&n)).unwrap();
        }
    }
}

/// `go tool covdata textfmt` of a directory.
fn textfmt(dir: &Path) -> String {
    let out = dir.with_extension("textfmt");
    let o = Command::new("go")
        .args(["tool", "covdata", "textfmt", "-i"])
        .arg(dir)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out).unwrap()
}

/// Short-lived programs writing GOCOVERDIR into a watched directory (on
/// the host and in a pod's subdirectory), many runs of ~ms each, some
/// before the agent starts, some while it runs, some while the S3 server
/// is down and the agent is SIGKILLed: every run arrives in the real S3
/// bucket once, `download` + `compile` + `export` give exactly what
/// `go tool covdata textfmt` gives over copies of the same runs, the
/// watched directory is emptied of counter files only after they are
/// stored, and links, half-written files and linked directories are left
/// alone. Attribution is by the path convention (`--watch-attribution
/// path`, as when fanotify is unavailable): the runs in the pod's
/// directory are this test's own (host) processes.
#[test]
fn exit_time_coverage_of_short_lived_programs_reaches_s3_and_compiles() {
    use testkit::S3Server;
    let Some(mut s3) = S3Server::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bin = build_exit_program(tmp.path());
    let watch = tmp.path().join("watch");
    let pod_dir = watch.join("shop/cli-7d9f/tool");
    std::fs::create_dir_all(&pod_dir).unwrap();
    let oracle_host = tmp.path().join("oracle-host");
    let oracle_pod = tmp.path().join("oracle-pod");
    std::fs::create_dir_all(&oracle_host).unwrap();
    std::fs::create_dir_all(&oracle_pod).unwrap();
    let mut arg = 0u32;
    let mut next_arg = || {
        arg = (arg * 7 + 5) % 31;
        arg
    };
    // Phase 1, before the agent runs: the oracle is a copy of the files.
    for _ in 0..12 {
        run_exit_program(&bin, next_arg(), &watch);
        run_exit_program(&bin, next_arg(), &pod_dir);
    }
    copy_coverage(&watch, &oracle_host);
    copy_coverage(&pod_dir, &oracle_pod);
    assert_eq!(counter_files(&watch).len(), 12);
    // Hostile and unfinished files: a link to a host file under a counter
    // file name, a half-written temporary file, a linked directory.
    let hash = counter_files(&watch)[0]
        .split('.')
        .nth(1)
        .unwrap()
        .to_string();
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "not coverage").unwrap();
    let link = watch.join(format!("covcounters.{hash}.4242.1"));
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let half = watch.join(format!("tmp.covcounters.{hash}.4243.17"));
    let some = std::fs::read(watch.join(&counter_files(&watch)[0])).unwrap();
    std::fs::write(&half, &some[..some.len() / 2]).unwrap();
    let outside = tmp.path().join("outside");
    copy_coverage(&oracle_host, &outside);
    std::os::unix::fs::symlink(&outside, watch.join("linked")).unwrap();
    std::fs::create_dir_all(watch.join("ns2/pod2")).unwrap();
    std::os::unix::fs::symlink(&outside, watch.join("ns2/pod2/ctr")).unwrap();
    let outside_files = counter_files(&outside);
    // A counter file next to a covmeta file that is not what its name says.
    let bad = watch.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let one = counter_files(&oracle_host)[0].clone();
    std::fs::copy(oracle_host.join(&one), bad.join(&one)).unwrap();
    std::fs::write(bad.join(format!("covmeta.{hash}")), "not meta-data").unwrap();

    let prefix = format!("exits-{}", std::process::id());
    let url = format!("s3://{}/{prefix}", s3.bucket);
    let spool = tmp.path().join("spool");
    let start_agent = |log: &str, s3: &S3Server| {
        let log = std::fs::File::create(tmp.path().join(log)).unwrap();
        AgentRun {
            child: Some(
                Command::new(covfleet())
                    .args(["agent", "--sink", &url, "--endpoint", &s3.endpoint])
                    .args(["--spool", spool.to_str().unwrap()])
                    .args(["--listen", &format!("127.0.0.1:{}", s3::free_port())])
                    .args(["--no-kube", "--hostname", "node-x"])
                    .args(["--scan-interval", "200ms", "--ports", "53790-53791"])
                    .args(["--watch-dir", watch.to_str().unwrap()])
                    .args(["--watch-attribution", "path"])
                    .envs(s3.env())
                    .env_remove("AWS_ENDPOINT_URL")
                    .env("COVFLEET_LOG", "agent=debug,store=debug")
                    .stdout(std::process::Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            ),
        }
    };
    let shipped = || {
        counter_files(&watch) == [link.file_name().unwrap().to_string_lossy()]
            && counter_files(&pod_dir).is_empty()
    };
    let mut agent = start_agent("agent1.log", &s3);
    // Phase 2, while the agent runs: the oracle is the same run again.
    for _ in 0..20 {
        let (a, b) = (next_arg(), next_arg());
        run_exit_program(&bin, a, &watch);
        run_exit_program(&bin, b, &pod_dir);
        run_exit_program(&bin, a, &oracle_host);
        run_exit_program(&bin, b, &oracle_pod);
    }
    wait_for("every counter file stored and removed", shipped);
    // Phase 3: the bucket goes away; nothing is removed while it is gone;
    // the agent dies without warning; the next one stores the rest.
    s3.stop();
    for _ in 0..8 {
        let (a, b) = (next_arg(), next_arg());
        run_exit_program(&bin, a, &watch);
        run_exit_program(&bin, b, &pod_dir);
        run_exit_program(&bin, a, &oracle_host);
        run_exit_program(&bin, b, &oracle_pod);
    }
    let journal = PathBuf::from(format!("{}-exits", spool.display()));
    wait_for("a batch journaled while the bucket is down", || {
        std::fs::read_dir(&journal).is_ok_and(|d| d.count() > 0)
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(counter_files(&watch).len(), 9, "removed before stored");
    assert_eq!(counter_files(&pod_dir).len(), 8, "removed before stored");
    agent.kill();
    s3.restart();
    let mut agent = start_agent("agent2.log", &s3);
    wait_for("the rest stored after the restart", shipped);
    agent.stop();
    assert!(std::fs::read_dir(&journal).unwrap().next().is_none());
    // Left alone: the link, the half-written file, the linked directory.
    assert!(std::fs::symlink_metadata(&link).is_ok());
    assert!(half.exists());
    assert_eq!(counter_files(&outside), outside_files);
    assert_eq!(counter_files(&bad), [one]);

    let col = tmp.path().join("col");
    let out = Command::new(covfleet())
        .args([
            "download",
            "--collection",
            col.to_str().unwrap(),
            "--url",
            &url,
        ])
        .args(["--endpoint", &s3.endpoint])
        .envs(s3.env())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing of the link's target or the linked directory got there.
    let bucket = s3.bucket_dir().join(&prefix);
    for (d, md) in stored(&bucket) {
        assert_eq!(md["source"], "gocoverdir");
        assert!(!d.to_string_lossy().contains("ns2"), "{d:?}");
        assert!(
            !counter_files(&d).is_empty(),
            "a directory without counters: {d:?}"
        );
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            assert_ne!(std::fs::read(e.path()).unwrap(), b"not coverage");
        }
    }
    let pods: Vec<_> = stored(&bucket)
        .into_iter()
        .filter(|(_, md)| md["namespace"] == "shop")
        .collect();
    assert!(!pods.is_empty());
    for (d, md) in &pods {
        let rel = d.strip_prefix(&bucket).unwrap();
        assert!(rel.starts_with("node-x/shop/cli-7d9f/tool"), "{rel:?}");
        assert_eq!(md["container"]["name"], "tool");
        assert_eq!(md["binary_name"], "agt-exit");
        assert_eq!(md["process"]["attributed_by"], "path");
    }
    let out = Command::new(covfleet())
        .args(["compile", "--collection", col.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (owner, oracle, runs) in [("_host_/*", &oracle_host, 40), ("shop/*", &oracle_pod, 40)] {
        assert_eq!(counter_files(oracle).len(), runs, "{owner}");
        let prof = tmp.path().join("export.out");
        let out = Command::new(covfleet())
            .args(["export", "--collection", col.to_str().unwrap()])
            .args([
                "--format",
                "go",
                "--owner",
                owner,
                "-o",
                prof.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&prof).unwrap(),
            textfmt(oracle),
            "{owner}: compiled counts differ from go tool covdata over the same runs"
        );
    }
    let db = db::Database::open_collection(&col).unwrap();
    let procs: i64 = db
        .owners()
        .unwrap()
        .into_iter()
        .filter(|o| o.binary_name == "agt-exit")
        .map(|o| o.process_count)
        .sum();
    assert_eq!(procs, 80);
}

/// The writer's cgroup beats the path convention (`--watch-attribution
/// cgroup`, the default; the agent runs as root, so fanotify works). A
/// program built with `-cover` that lives a few milliseconds runs in a
/// real cgroup named like a CRI-O scope whose container ID a pod on the
/// recorded-API server names, with GOCOVERDIR
///
/// * in `DIR/adhoc/run` (no pod's path), made before the agent starts, and
/// * in `DIR/other/victim-0/app` (another pod's path), made while the
///   agent runs (marked as it appears);
///
/// and a host process (in a cgroup of no container) writes into the pod's
/// own path `DIR/shop/tool-5c8d/tool`. The pod's runs are stored in the
/// pod's layout with its UID, image and owners, the host run under
/// `_host_`, each batch's metadata saying it was attributed by cgroup.
#[test]
fn exit_time_files_are_attributed_by_the_writers_cgroup() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() {
        panic!("this test needs cgroup v2 at /sys/fs/cgroup/unified");
    }
    let me = std::process::id();
    let scope = crio_scope("cfx", "7e2f3a4b-1c5d-4e6f-9a8b", 5);
    let (uid, id) = (scope.uid.as_str(), scope.id.as_str());
    let host_rel = format!("cfx{me}-host.slice/tools.scope");
    let _host_cg = Cgroup::new("/sys/fs/cgroup/unified", &host_rel);
    let tmp = tempfile::tempdir().unwrap();
    let bin = build_exit_program(tmp.path());
    let watch = tmp.path().join("watch");
    let adhoc = watch.join("adhoc/run");
    let spoof = watch.join("other/victim-0/app");
    let pod_path = watch.join("shop/tool-5c8d/tool");
    std::fs::create_dir_all(&adhoc).unwrap();
    std::fs::create_dir_all(&pod_path).unwrap();
    let pods = pod_list(&OnePod {
        node: "node-f",
        namespace: "shop",
        name: "tool-5c8d",
        uid,
        container: "tool",
        image: "quay.io/shop/tool:v4",
        id,
        restarts: 3,
        ip: "10.0.0.7",
        owner: ["batch/v1", "Job", "tool", "job-1"],
    });
    let api = FakeApi::start(&pods, "exits");
    let kubeconfig = api.kubeconfig(tmp.path(), "exits", "default");
    let sink = tmp.path().join("sink");
    let log_path = tmp.path().join("agent.log");
    let mut agent = AgentRun {
        child: Some(
            Command::new(covfleet())
                .args(["agent", "--sink", &format!("file://{}", sink.display())])
                .args(["--spool", tmp.path().join("spool").to_str().unwrap()])
                .args(["--listen", &format!("127.0.0.1:{}", s3::free_port())])
                .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
                .args(["--node-name", "node-f", "--hostname", "node-f"])
                .args(["--scan-interval", "200ms", "--ports", "53792-53793"])
                .args(["--watch-dir", watch.to_str().unwrap()])
                .env("COVFLEET_LOG", "agent=debug")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .unwrap(),
        ),
    };
    let logged = |what: &str| std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains(what));
    wait_for("fanotify running and the pods listed", || {
        logged("their writers are seen with fanotify") && logged("pods listed")
    });
    std::fs::create_dir_all(&spoof).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Each run: the shell joins the cgroup, then becomes the program.
    let run_in = |cgroup: &Path, dir: &Path, arg: u32| {
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec {} {arg}",
                cgroup.display(),
                bin.display()
            ))
            .env("GOCOVERDIR", dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    };
    let started = std::time::Instant::now();
    run_in(&scope.dir, &adhoc, 7);
    run_in(&scope.dir, &spoof, 13);
    run_in(&unified.join(&host_rel), &pod_path, 21);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let runs = |pred: &dyn Fn(&Value) -> bool| -> u64 {
        of_binary(&sink, "agt-exit")
            .iter()
            .filter(|(_, md)| pred(md))
            .map(|(_, md)| snapshots(md))
            .sum()
    };
    wait_for("all three runs stored", || {
        runs(&|_| true) == 3 && counter_files(&adhoc).is_empty()
    });
    agent.stop();
    drop(api);
    let all = of_binary(&sink, "agt-exit");
    for (dir, md) in &all {
        assert_eq!(md["process"]["attributed_by"], "cgroup", "{dir:?}");
        let rel = rel_parts(dir, &sink);
        if md["namespace"] == "shop" {
            assert_eq!(
                &rel[..4],
                ["node-f", "shop", "tool-5c8d", "tool"],
                "{rel:?}"
            );
            assert_eq!(&rel[5..], ["quay.io_shop_tool_v4", "agt-exit"]);
            assert_eq!(md["pod_name"], "tool-5c8d");
            assert_eq!(md["container"]["name"], "tool");
            assert_eq!(md["container"]["image"], "quay.io/shop/tool:v4");
            assert_eq!(md["host_process"], false);
            assert_eq!(md["process"]["pod_uid"], uid);
            assert_eq!(md["process"]["restart_count"], "3");
            assert_eq!(md["process"]["container_id"], id);
            assert_eq!(md["owner_references"][0]["name"], "tool");
        } else {
            assert_eq!(md["namespace"], "_host_", "{rel:?}");
            assert_eq!(md["host_process"], true);
        }
    }
    assert_eq!(runs(&|md| md["namespace"] == "shop"), 2);
    assert_eq!(runs(&|md| md["namespace"] == "_host_"), 1);
    for d in [&adhoc, &spoof, &pod_path] {
        assert!(counter_files(d).is_empty(), "{d:?} not emptied");
    }
    // The log says how each batch was attributed.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("exit-time coverage stored") && l.contains("attributed_by=cgroup")),
        "{log}"
    );
}
