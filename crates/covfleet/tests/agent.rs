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

    fn free_port() -> u16 {
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
