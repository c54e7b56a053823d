//! `covfleet collect` and `covfleet reset` against real instrumented Go
//! processes in network namespaces made by each test. See support/mod.rs.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

fn s(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn only_entry(out: &Path) -> std::path::PathBuf {
    let e = entries(out);
    assert_eq!(e.len(), 1, "entries: {e:?}");
    e.into_iter().next().unwrap()
}

/// A one-shot snapshot over loopback equals what the process itself writes
/// at exit (GOCOVERDIR), and the entry has the documented files.
#[test]
fn url_snapshot_equals_what_the_process_writes() {
    let f = fixtures();
    let ns = Netns::new();
    let gocoverdir = tempfile::tempdir().unwrap();
    let p = ns.spawn_ready(
        &f.named("shop-api"),
        &["11"],
        &[
            ("GOCOVERDIR", gocoverdir.path().to_str().unwrap()),
            ("SOURCE_GIT_COMMIT", "0123abcd"),
            ("SOURCE_GIT_URL", "https://example.invalid/shop.git"),
            ("__doozer_group", "openshift-4.99"),
        ],
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = ns.covfleet(&[
        "collect",
        "--url",
        "http://127.0.0.1:53700",
        "-o",
        out_dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", s(&out));
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], 1, "{summary}");
    assert_eq!(summary["failed"].as_array().unwrap().len(), 0);

    let entry = only_entry(out_dir.path());
    let names: Vec<String> = std::fs::read_dir(&entry)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    let md = read_json(&entry.join("metadata.json"));
    let hash = md["meta_hash"].as_str().unwrap();
    assert!(names.contains(&format!("covmeta.{hash}")), "{names:?}");
    assert!(
        names.contains(&format!("covcounters.{hash}.{}.1", p.pid)),
        "{names:?}"
    );
    assert_eq!(md["binary_name"], "shop-api");
    assert_eq!(md["pid"], p.pid);
    assert_eq!(md["host_process"], false);
    // Loopback is this host: recorded under its name, as --local does (issue 13 #21).
    let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(md["hostname"], this_host.trim());
    assert!(md["collected_at"].as_str().unwrap().ends_with('Z'));
    let info = read_json(&entry.join("info.json"));
    assert_eq!(info["source_commit"], "0123abcd");
    assert_eq!(info["source_url"], "https://example.invalid/shop.git");
    assert_eq!(info["software_group"], "openshift-4.99");
    assert_eq!(info["server"], "1");
    assert_eq!(info["pid"], p.pid);

    // The oracle: the process's own files at exit.
    signal(p.pid, "TERM");
    wait_gone(p.pid);
    let collected = work_profile(&entry);
    assert_eq!(collected, work_profile(gocoverdir.path()));
    assert!(total_count(&collected) > 0);
}

/// With COVERAGE_TOKEN on the server, collect needs --token (or the env).
#[test]
fn url_token_is_sent() {
    let f = fixtures();
    let ns = Netns::new();
    ns.spawn_ready(&f.covered, &[], &[("COVERAGE_TOKEN", "s3cret")]);
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap();
    let out = ns.covfleet(&[
        "collect",
        "--url",
        "http://127.0.0.1:53700",
        "-o",
        o,
        "--retries",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        s(&out)
    );
    let out = ns.covfleet(&[
        "collect",
        "--url",
        "http://127.0.0.1:53700",
        "-o",
        o,
        "--token",
        "s3cret",
    ]);
    assert!(out.status.success(), "{}", s(&out));
    assert_eq!(entries(out_dir.path()).len(), 1);
}

/// A pod-like namespace with its own address: two "containers" share it
/// (53700, 53701); collect runs from the host side over the veth link.
#[test]
fn pod_like_namespace_over_veth() {
    let f = fixtures();
    let ns = Netns::with_veth();
    let ip = ns.ip.clone().unwrap();
    let a = ns.spawn_ready(&f.named("frontend"), &["5"], &[]);
    let b = ns.spawn_ready(&f.named("sidecar"), &["9"], &[]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(covfleet())
        .args(["collect", "--json", "-o", out_dir.path().to_str().unwrap()])
        .args([
            "--url",
            &format!("http://{ip}:53700"),
            "--url",
            &format!("http://{ip}:53701"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out));
    let e = entries(out_dir.path());
    assert_eq!(e.len(), 2, "{e:?}");
    let mut seen: Vec<(String, u64)> = e
        .iter()
        .map(|d| {
            let md = read_json(&d.join("metadata.json"));
            (
                md["binary_name"].as_str().unwrap().to_string(),
                md["pid"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("frontend".into(), u64::from(a.pid)),
            ("sidecar".into(), u64::from(b.pid))
        ]
    );
    // Different work arguments give different profiles: no mix-up.
    assert_ne!(work_profile(&e[0]), work_profile(&e[1]));
}

/// A hostNetwork-like namespace: several servers on consecutive ports, a
/// binary built without -cover, a listener that is no coverage server and
/// one that hangs. --local finds them through /proc and checks each PID.
#[test]
fn local_discovery_in_a_shared_namespace() {
    let f = fixtures();
    let ns = Netns::new();
    let kubelet = ns.spawn_ready(&f.plain, &[], &[]); // 53700, like an uninstrumented kubelet
    let alpha = ns.spawn_ready(&f.named("alpha"), &["3"], &[]); // 53701
    let beta = ns.spawn_ready(&f.named("beta"), &["4"], &[]); // 53702
    let gamma = ns.spawn_ready(&f.named("gamma"), &["5"], &[]); // 53703
    ns.spawn_http(53710);
    ns.spawn_hang(53720);
    ns.spawn_relay(53730, 53701); // answers with alpha's PID, but is not alpha
    let out_dir = tempfile::tempdir().unwrap();
    let out = ns.covfleet(&[
        "collect",
        "--local",
        "--json",
        "--timeout",
        "1s",
        "--retries",
        "1",
        "-o",
        out_dir.path().to_str().unwrap(),
    ]);
    // The hanging listener fails the run (exit 1), after collecting the rest.
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], 3, "{summary}");
    let skipped = summary["skipped"].to_string();
    assert!(
        skipped.contains("53700") && skipped.contains("-cover"),
        "{summary}"
    );
    assert!(
        skipped.contains("53710") && skipped.contains("not a coverage server"),
        "{summary}"
    );
    let relay = summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"].as_str().unwrap().contains(":53730"))
        .unwrap_or_else(|| panic!("relay not skipped: {summary}"));
    assert!(
        relay["reason"]
            .as_str()
            .unwrap()
            .contains("identity mismatch"),
        "{summary}"
    );
    assert!(
        relay["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("says pid {}", alpha.pid)),
        "{summary}"
    );
    let failed = summary["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{summary}");
    assert!(
        failed[0]["target"].as_str().unwrap().contains("53720"),
        "{summary}"
    );
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{summary}"
    );
    let _ = kubelet;

    for (p, name, port) in [
        (alpha, "alpha", 53701),
        (beta, "beta", 53702),
        (gamma, "gamma", 53703),
    ] {
        let dir = entries(out_dir.path())
            .into_iter()
            .find(|d| read_json(&d.join("metadata.json"))["binary_name"] == name)
            .unwrap_or_else(|| panic!("no entry for {name}"));
        let md = read_json(&dir.join("metadata.json"));
        assert_eq!(md["host_process"], true);
        assert_eq!(md["namespace"], "_host_");
        assert_eq!(md["port"], port);
        assert_eq!(md["process"]["host_pid"], p.pid.to_string());
        assert!(md["process"]["exe"].as_str().unwrap().ends_with(name));
        assert!(total_count(&work_profile(&dir)) > 0);
    }
}

/// --watch: counters-only polls alternating .1/.2, a new process picked up,
/// one that exits mid-watch kept, and a final scrape on SIGTERM that holds
/// the last work done.
#[test]
fn watch_follows_processes_and_scrapes_on_sigterm() {
    let f = fixtures();
    let ns = Netns::new();
    let gocoverdir = tempfile::tempdir().unwrap();
    let a = ns.spawn_ready(
        &f.named("steady"),
        &["6"],
        &[("GOCOVERDIR", gocoverdir.path().to_str().unwrap())],
    );
    let brief = ns.spawn_ready(&f.named("brief"), &["2"], &[("FIXTURE_LIFETIME", "4s")]);
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap().to_string();
    let watch = ns.covfleet_spawn(&["collect", "--local", "--watch", "--json", "-o", &o]);
    let entry_of = |name: &str| {
        entries(out_dir.path()).into_iter().find(|d| {
            std::fs::read(d.join("metadata.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|m| m["binary_name"] == name)
        })
    };
    wait_for("the first snapshots", || {
        entry_of("steady").is_some() && entry_of("brief").is_some()
    });
    // Several 1 s polls: both slots get used.
    wait_for("a third snapshot", || {
        entry_of("steady")
            .is_some_and(|d| read_json(&d.join("metadata.json"))["snapshots"].as_u64() >= Some(3))
    });
    // A process that appears later is picked up.
    let late = ns.spawn_ready(&f.named("late"), &["4"], &[]);
    wait_for("the late process", || entry_of("late").is_some());
    // The brief one exits by itself.
    wait_gone(brief.pid);
    // More work in the steady one, then stop the watcher: the final scrape sees it.
    ns.more_work(a);
    signal(watch.id(), "TERM");
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", s(&out));
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], 3, "{summary}");
    let ended: Vec<&str> = summary["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ended"] == true)
        .map(|e| e["binary"].as_str().unwrap())
        .collect();
    assert_eq!(ended, vec!["brief"], "{summary}");

    let steady = entry_of("steady").unwrap();
    let md = read_json(&steady.join("metadata.json"));
    let hash = md["meta_hash"].as_str().unwrap();
    for slot in [1, 2] {
        assert!(
            steady
                .join(format!("covcounters.{hash}.{}.{slot}", a.pid))
                .is_file(),
            "slot {slot}"
        );
    }
    let latest = latest_only(&steady);
    signal(a.pid, "TERM");
    wait_gone(a.pid);
    assert_eq!(
        work_profile(latest.path()),
        work_profile(gocoverdir.path()),
        "final scrape missed the last work"
    );
    let _ = late;
    // The brief process's data stays readable.
    assert!(total_count(&work_profile(&entry_of("brief").unwrap())) > 0);
}

/// Two processes that report the same PID (PID 1 of their own PID
/// namespace, like containers) behind the same URL: the second collect
/// notices that counters went down and writes a separate entry.
#[test]
fn pid_reused_by_another_process() {
    let f = fixtures();
    let ns = Netns::new();
    let unshare = Path::new("unshare");
    let bin = f.named("pidone");
    let first = ns.spawn_ready(
        unshare,
        &[
            "--pid",
            "--fork",
            "--kill-child",
            bin.to_str().unwrap(),
            "40",
        ],
        &[],
    );
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap().to_string();
    let out = ns.covfleet(&["collect", "--url", "http://127.0.0.1:53700", "-o", &o]);
    assert!(out.status.success(), "{}", s(&out));
    let first_entry = only_entry(out_dir.path());
    assert_eq!(read_json(&first_entry.join("metadata.json"))["pid"], 1);
    let first_profile = work_profile(&first_entry);
    // Stop the server itself (PID 1 of its namespace) and wait until it is
    // gone, so that the next one gets the same port.
    for child in children_of(first.pid) {
        signal(child, "KILL");
        wait_gone(child);
    }
    wait_gone(first.pid);

    let _second = ns.spawn_ready(
        unshare,
        &[
            "--pid",
            "--fork",
            "--kill-child",
            bin.to_str().unwrap(),
            "2",
        ],
        &[],
    );
    let out = ns.covfleet(&["collect", "--url", "http://127.0.0.1:53700", "-o", &o]);
    assert!(out.status.success(), "{}", s(&out));
    let e = entries(out_dir.path());
    assert_eq!(
        e.len(),
        2,
        "the second process must get its own entry: {e:?}"
    );
    assert_eq!(
        work_profile(&first_entry),
        first_profile,
        "the first process's data was changed"
    );
    let second_entry = e.iter().find(|d| **d != first_entry).unwrap();
    assert!(
        second_entry
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("-i2")
    );
    assert!(total_count(&work_profile(second_entry)) < total_count(&first_profile));
}

/// `reset` zeroes the counters; `collect --phase` then measures only what
/// ran since, in its own entry with the phase in metadata.json.
#[test]
fn reset_then_collect_a_phase() {
    let f = fixtures();
    let ns = Netns::new();
    let p = ns.spawn_ready(&f.named("phased"), &["8"], &[]);
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap().to_string();
    let url = "http://127.0.0.1:53700";
    let out = ns.covfleet(&["collect", "--url", url, "-o", &o]);
    assert!(out.status.success(), "{}", s(&out));
    let out = ns.covfleet(&["reset", "--url", url, "--json"]);
    assert!(out.status.success(), "{}", s(&out));
    assert_eq!(stdout_json(&out)["reset"], 1);
    let out = ns.covfleet(&["collect", "--url", url, "-o", &o, "--phase", "idle"]);
    assert!(out.status.success(), "{}", s(&out));
    ns.more_work(p); // work(16) during the "e2e" phase
    let out = ns.covfleet(&["collect", "--url", url, "-o", &o, "--phase", "e2e"]);
    assert!(out.status.success(), "{}", s(&out));

    let e = entries(out_dir.path());
    assert_eq!(e.len(), 3, "{e:?}");
    let by_phase = |phase: Option<&str>| {
        e.iter()
            .find(|d| read_json(&d.join("metadata.json"))["phase"].as_str() == phase)
            .unwrap_or_else(|| panic!("no entry for phase {phase:?}"))
            .clone()
    };
    let baseline = total_count(&work_profile(&by_phase(None)));
    let idle = total_count(&work_profile(&by_phase(Some("idle"))));
    let e2e = total_count(&work_profile(&by_phase(Some("e2e"))));
    assert!(baseline > 0);
    assert_eq!(idle, 0, "after reset, nothing ran");
    assert!(e2e > 0 && e2e != baseline, "baseline {baseline}, e2e {e2e}");
}

/// Progress only on a terminal: none in a pipe, a bar under a pty.
#[test]
fn progress_only_on_a_terminal() {
    let f = fixtures();
    let ns = Netns::new();
    ns.spawn_ready(&f.covered, &[], &[]);
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap();
    let out = ns.covfleet(&["collect", "--url", "http://127.0.0.1:53700", "-o", o]);
    assert!(out.status.success(), "{}", s(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("found 1, collected 1, skipped 0, failed 0"),
        "{err}"
    );
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    // Under a pseudo-terminal (util-linux `script`), indicatif draws and clears.
    let cmd = format!(
        "ip netns exec {} {} collect --url http://127.0.0.1:53700 -o {o}",
        ns.name,
        covfleet()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out));
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("collecting"), "{tty:?}");
    assert!(tty.contains("found 1, collected 1"), "{tty:?}");
}

#[test]
fn usage_errors_exit_2() {
    let out = std::process::Command::new(covfleet())
        .args(["collect", "-o", "/nonexistent-x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", s(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no targets"));
    let out = std::process::Command::new(covfleet())
        .args(["collect", "-o", "/tmp/x", "--url", "https://a:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", s(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("https"),
        "{}",
        s(&out)
    );
}

/// `--kube` against recorded API answers: `go/testserver/fakeapi` replays a
/// realistic PodList and serves the pod `proxy` subresource by forwarding to
/// the real Go processes in the test's namespaces (like the API server
/// does), and `portforward` over WebSocket (v4.channel.k8s.io). The proxy
/// path against a real kube-apiserver + etcd is in `kube_real.rs`; the
/// live-cluster tests below are `#[ignore]`d and need
/// `COVFLEET_LIVE_KUBECONFIG`.
mod kube {
    use super::*;
    use serde_json::{Value, json};

    struct C<'a> {
        name: &'a str,
        image: &'a str,
        command: &'a [&'a str],
        restarts: i32,
    }

    fn pod(
        ns: &str,
        name: &str,
        node: &str,
        ip: &str,
        host_network: bool,
        phase: &str,
        containers: &[C],
    ) -> Value {
        let app = name.split('-').next().unwrap_or(name);
        json!({
            "metadata": {
                "name": name,
                "generateName": format!("{app}-"),
                "namespace": ns,
                "uid": format!("6f1c2a4e-0000-4000-8000-{:012x}", name.len() * 7919 + ns.len()),
                "resourceVersion": "81234",
                "creationTimestamp": "2026-11-20T08:15:02Z",
                "labels": {"app": app, "pod-template-hash": "7d4b9c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d4b9c"),
                    "uid": "0b6c8f3a-1111-4222-8333-444455556666", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "nodeName": node,
                "hostNetwork": host_network,
                "restartPolicy": "Always",
                "serviceAccountName": "default",
                "containers": containers.iter().map(|c| json!({
                    "name": c.name, "image": c.image, "command": c.command,
                    "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": "10m", "memory": "50Mi"}},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
                })).collect::<Vec<_>>()
            },
            "status": {
                "phase": phase,
                "hostIP": ip,
                "podIP": if phase == "Running" { json!(ip) } else { Value::Null },
                "podIPs": [{"ip": ip}],
                "startTime": "2026-11-20T08:15:02Z",
                "qosClass": "Burstable",
                "conditions": [{"type": "Ready", "status": if phase == "Running" { "True" } else { "False" },
                    "lastTransitionTime": "2026-11-20T08:15:09Z"}],
                "containerStatuses": containers.iter().map(|c| json!({
                    "name": c.name, "image": c.image,
                    "imageID": format!("{}@sha256:{}", c.image.split(':').next().unwrap(), "ab".repeat(32)),
                    "containerID": format!("cri-o://{}", "cd".repeat(32)),
                    "ready": phase == "Running", "started": phase == "Running", "restartCount": c.restarts,
                    "state": if phase == "Running" {
                        json!({"running": {"startedAt": "2026-11-20T08:15:08Z"}})
                    } else {
                        json!({"waiting": {"reason": "ContainerCreating"}})
                    }
                })).collect::<Vec<_>>()
            }
        })
    }

    struct Cluster {
        _bare_ns: Netns,
        _pod_ns: Netns,
        _node_ns: Netns,
        api: FakeApi,
        dir: tempfile::TempDir,
    }

    /// Namespace "shop": a two-container pod with its own network, a pending
    /// pod. Namespace "kube-system": two hostNetwork pods on node-1, whose
    /// namespace also holds an uninstrumented "kubelet" on 53700.
    fn cluster(token: &str) -> Cluster {
        let f = fixtures();
        let pod_ns = Netns::with_veth();
        pod_ns.spawn_ready(&f.named("web"), &["5"], &[]);
        pod_ns.spawn_ready(&f.named("exporter"), &["3"], &[]);
        let node_ns = Netns::with_veth();
        node_ns.spawn_ready(&f.plain, &[], &[]);
        node_ns.spawn_ready(&f.named("etcd"), &["6"], &[]);
        node_ns.spawn_ready(&f.named("ovnkube"), &["7"], &[]);
        // A running pod whose program is not instrumented: nothing listens.
        let bare_ns = Netns::with_veth();
        let bip = bare_ns.ip.clone().unwrap();
        let pip = pod_ns.ip.clone().unwrap();
        let nip = node_ns.ip.clone().unwrap();
        let pods = json!({
            "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "81234"},
            "items": [
                pod("shop", "web-7d4b9c-x2x9z", "node-2", &pip, false, "Running", &[
                    C { name: "web", image: "quay.invalid/shop/web:1.4", command: &["/app/web", "--listen=:8080"], restarts: 0 },
                    C { name: "metrics", image: "quay.invalid/shop/exporter:0.9", command: &["/usr/bin/exporter"], restarts: 2 },
                ]),
                pod("shop", "batch-5f6d7-pzq8k", "node-2", "198.19.255.254", false, "Pending", &[
                    C { name: "batch", image: "quay.invalid/shop/batch:1", command: &["/batch"], restarts: 0 },
                ]),
                pod("shop", "db-0", "node-2", &bip, false, "Running", &[
                    C { name: "postgres", image: "quay.invalid/postgres:16", command: &["postgres"], restarts: 0 },
                ]),
                pod("kube-system", "etcd-node-1", "node-1", &nip, true, "Running", &[
                    C { name: "etcd", image: "quay.invalid/etcd:3.6", command: &["etcd", "--data-dir=/var/lib/etcd"], restarts: 1 },
                ]),
                pod("kube-system", "ovnkube-node-abcde", "node-1", &nip, true, "Running", &[
                    C { name: "ovnkube-controller", image: "quay.invalid/ovn:4.99", command: &["/usr/bin/ovnkube"], restarts: 0 },
                    C { name: "ovs", image: "quay.invalid/ovs:4.99", command: &["/usr/sbin/ovs-vswitchd"], restarts: 0 },
                ]),
            ]
        });
        let api = FakeApi::start(&pods, token);
        Cluster {
            _bare_ns: bare_ns,
            _pod_ns: pod_ns,
            _node_ns: node_ns,
            api,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(args: &[&str]) -> std::process::Output {
        std::process::Command::new(covfleet())
            .args(args)
            .output()
            .unwrap()
    }

    fn md_of(out: &Path) -> Vec<Value> {
        entries(out)
            .iter()
            .map(|d| read_json(&d.join("metadata.json")))
            .collect()
    }

    #[test]
    fn all_namespaces_through_the_api_proxy() {
        let c = cluster("t0ken");
        let kc = c.api.kubeconfig(c.dir.path(), "t0ken", "default");
        let out_dir = c.dir.path().join("out");
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "-A",
            "--json",
            "-o",
            out_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", s(&out));
        let summary = stdout_json(&out);
        assert_eq!(summary["collected"], 4, "{summary}");
        let mut got: Vec<(String, String, String, String, String, String)> = md_of(&out_dir)
            .iter()
            .map(|m| {
                (
                    m["namespace"].as_str().unwrap().into(),
                    m["pod_name"].as_str().unwrap().into(),
                    m["container"]["name"].as_str().unwrap().into(),
                    m["container"]["image"].as_str().unwrap().into(),
                    m["binary_name"].as_str().unwrap().into(),
                    m["hostname"].as_str().unwrap().into(),
                )
            })
            .collect();
        got.sort();
        let want: Vec<(String, String, String, String, String, String)> = [
            (
                "kube-system",
                "etcd-node-1",
                "etcd",
                "quay.invalid/etcd:3.6",
                "etcd",
                "node-1",
            ),
            (
                "kube-system",
                "ovnkube-node-abcde",
                "ovnkube-controller",
                "quay.invalid/ovn:4.99",
                "ovnkube",
                "node-1",
            ),
            (
                "shop",
                "web-7d4b9c-x2x9z",
                "metrics",
                "quay.invalid/shop/exporter:0.9",
                "exporter",
                "node-2",
            ),
            (
                "shop",
                "web-7d4b9c-x2x9z",
                "web",
                "quay.invalid/shop/web:1.4",
                "web",
                "node-2",
            ),
        ]
        .iter()
        .map(|t| {
            (
                t.0.into(),
                t.1.into(),
                t.2.into(),
                t.3.into(),
                t.4.into(),
                t.5.into(),
            )
        })
        .collect();
        assert_eq!(got, want);
        for m in md_of(&out_dir) {
            assert_eq!(m["source"], "kube");
            assert_eq!(m["host_process"], false);
            // ownerReferences are kept for owner grouping in compile.
            assert_eq!(m["owner_references"][0]["kind"], "ReplicaSet", "{m}");
            assert!(
                m["owner_references"][0]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-7d4b9c"),
                "{m}"
            );
            assert!(
                m["process"]["pod_uid"]
                    .as_str()
                    .unwrap()
                    .starts_with("6f1c2a4e-"),
                "{m}"
            );
        }
        let skipped = summary["skipped"].to_string();
        assert!(
            skipped.contains("batch-5f6d7-pzq8k") && skipped.contains("Pending"),
            "{summary}"
        );
        // The uninstrumented kubelet on the node answers on 53700 to both
        // hostNetwork pods: reported once, for the node.
        let node_ports: Vec<&Value> = summary["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["target"]
                    .as_str()
                    .unwrap()
                    .starts_with("node node-1 port 53700")
            })
            .collect();
        assert_eq!(node_ports.len(), 1, "{summary}");
        assert!(
            node_ports[0]["reason"].as_str().unwrap().contains("plain"),
            "{summary}"
        );
        // A running pod where nothing answers is reported once.
        let db: Vec<&Value> = summary["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["target"] == "shop/db-0")
            .collect();
        assert_eq!(db.len(), 1, "{summary}");
        assert!(
            db[0]["reason"]
                .as_str()
                .unwrap()
                .contains("no coverage server answered on port 53700"),
            "{summary}"
        );
        // Servers that one pod claims are not reported as skipped for the other.
        assert!(
            !skipped.contains("53701") && !skipped.contains("53702"),
            "{summary}"
        );
        // The restart count distinguishes container incarnations.
        assert!(
            entries(&out_dir).iter().any(|d| d
                .file_name()
                .unwrap()
                .to_string_lossy()
                .contains("-r2"))
        );
        for d in entries(&out_dir) {
            assert!(total_count(&work_profile(&d)) > 0, "{}", d.display());
        }
    }

    /// The same cluster through port-forwards (WebSocket, v4.channel.k8s.io).
    #[test]
    fn all_namespaces_through_port_forward() {
        let c = cluster("t0ken");
        let kc = c.api.kubeconfig(c.dir.path(), "t0ken", "default");
        let out_dir = c.dir.path().join("out");
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "-A",
            "--via",
            "port-forward",
            "--json",
            "-o",
            out_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", s(&out));
        let summary = stdout_json(&out);
        assert_eq!(summary["collected"], 4, "{summary}");
        let mut containers: Vec<String> = md_of(&out_dir)
            .iter()
            .map(|m| m["container"]["name"].as_str().unwrap().to_string())
            .collect();
        containers.sort();
        assert_eq!(
            containers,
            vec!["etcd", "metrics", "ovnkube-controller", "web"]
        );
        for d in entries(&out_dir) {
            assert!(total_count(&work_profile(&d)) > 0, "{}", d.display());
            assert!(
                read_json(&d.join("metadata.json"))["target"]
                    .as_str()
                    .unwrap()
                    .contains("port-forward")
            );
        }
    }

    #[test]
    fn namespace_selector_and_pod() {
        let c = cluster("t0ken");
        let kc = c.api.kubeconfig(c.dir.path(), "t0ken", "shop");
        let kc = kc.to_str().unwrap();
        let o1 = c.dir.path().join("o1");
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            kc,
            "-l",
            "app=web",
            "--json",
            "-o",
            o1.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", s(&out));
        let pods: Vec<String> = md_of(&o1)
            .iter()
            .map(|m| m["pod_name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(pods, vec!["web-7d4b9c-x2x9z", "web-7d4b9c-x2x9z"]);
        let o2 = c.dir.path().join("o2");
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            kc,
            "-n",
            "kube-system",
            "--pod",
            "etcd-node-1",
            "--json",
            "-o",
            o2.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", s(&out));
        let got: Vec<String> = md_of(&o2)
            .iter()
            .map(|m| m["container"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, vec!["etcd"]);
        // reset through the API proxy too, configured by $KUBECONFIG
        let out = std::process::Command::new(covfleet())
            .args([
                "reset",
                "--kube",
                "-n",
                "kube-system",
                "--pod",
                "etcd-node-1",
                "--json",
            ])
            .env("KUBECONFIG", kc)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out));
        assert_eq!(stdout_json(&out)["reset"], 1);
    }

    /// `--kube --watch`: a pod that appears later is picked up; SIGTERM ends
    /// the watch with a final scrape.
    #[test]
    fn watch_picks_up_new_pods() {
        let f = fixtures();
        let first = Netns::with_veth();
        first.spawn_ready(&f.named("api"), &["3"], &[]);
        let mk = |name: &str, ip: &str, cmd: &'static str| {
            pod(
                "prod",
                name,
                "node-3",
                ip,
                false,
                "Running",
                &[C {
                    name: "main",
                    image: "quay.invalid/app:1",
                    command: &[cmd],
                    restarts: 0,
                }],
            )
        };
        let one = mk("api-6c9d-aaaaa", first.ip.as_deref().unwrap(), "/api");
        let api = FakeApi::start(
            &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [one.clone()]}),
            "t",
        );
        let dir = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(dir.path(), "t", "prod");
        let o = dir.path().join("out");
        let child = std::process::Command::new(covfleet())
            .args([
                "collect",
                "--kube",
                "--kubeconfig",
                kc.to_str().unwrap(),
                "--watch",
                "--json",
                "-o",
                o.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Polled while collect writes: a new directory may not hold metadata.json yet.
        let has_pod = |name: &str| {
            entries(&o).iter().any(|d| {
                std::fs::read(d.join("metadata.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .is_some_and(|m| m["pod_name"] == name)
            })
        };
        wait_for("the first pod", || has_pod("api-6c9d-aaaaa"));
        let second = Netns::with_veth();
        second.spawn_ready(&f.named("worker"), &["4"], &[]);
        let two = mk(
            "worker-7f8e-bbbbb",
            second.ip.as_deref().unwrap(),
            "/worker",
        );
        api.set_pods(
            &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [one, two]}),
        );
        wait_for("the new pod", || has_pod("worker-7f8e-bbbbb"));
        signal(child.id(), "TERM");
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", s(&out));
        assert_eq!(stdout_json(&out)["collected"], 2, "{}", s(&out));
    }

    #[test]
    fn api_errors_are_reported() {
        let c = cluster("right");
        let kc = c.api.kubeconfig(c.dir.path(), "wrong", "shop");
        let o = c.dir.path().join("o");
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", s(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("401"),
            "{}",
            s(&out)
        );
        let missing = c.dir.path().join("no-such-kubeconfig");
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            missing.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", s(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no-such-kubeconfig"),
            "{}",
            s(&out)
        );
    }

    /// Names from the cluster never reach a path raw.
    #[test]
    fn hostile_names_stay_inside_the_output() {
        let f = fixtures();
        let ns = Netns::with_veth();
        ns.spawn_ready(&f.named("..evil"), &["3"], &[]);
        let ip = ns.ip.clone().unwrap();
        let pods = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
            pod("..", "../../escape", "../node", &ip, false, "Running", &[
                C { name: "../c", image: "x/../../y", command: &["/..evil"], restarts: 0 },
            ]),
        ]});
        let api = FakeApi::start(&pods, "t");
        let root = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(root.path(), "t", "default");
        let o = root.path().join("deep").join("out");
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "-A",
            "--json",
            "-o",
            o.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", s(&out));
        assert_eq!(stdout_json(&out)["collected"], 1, "{}", s(&out));
        let e = only_entry(&o);
        assert_eq!(e.parent().unwrap(), o.join("coverage"));
        let md = read_json(&e.join("metadata.json"));
        assert_eq!(
            md["pod_name"], "../../escape",
            "the real name is kept in metadata"
        );
        let mut top: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        top.sort();
        assert_eq!(top, vec!["deep", "kubeconfig-t"]);
        assert_eq!(
            std::fs::read_dir(root.path().join("deep")).unwrap().count(),
            1
        );
    }

    fn live_kubeconfig() -> String {
        std::env::var("COVFLEET_LIVE_KUBECONFIG")
            .expect("needs a cluster: set COVFLEET_LIVE_KUBECONFIG")
    }

    /// Needs a cluster with instrumented pods: COVFLEET_LIVE_KUBECONFIG=… cargo test -- --ignored
    #[test]
    #[ignore = "needs a live Kubernetes cluster (COVFLEET_LIVE_KUBECONFIG)"]
    fn live_cluster_proxy() {
        let kc = live_kubeconfig();
        let o = tempfile::tempdir().unwrap();
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            &kc,
            "-A",
            "--json",
            "-o",
            o.path().to_str().unwrap(),
        ]);
        assert!(
            stdout_json(&out)["collected"].as_u64() > Some(0),
            "{}",
            s(&out)
        );
    }

    /// Needs a cluster with instrumented pods (port-forward through a real
    /// API server and kubelet).
    #[test]
    #[ignore = "needs a live Kubernetes cluster (COVFLEET_LIVE_KUBECONFIG)"]
    fn live_cluster_port_forward() {
        let kc = live_kubeconfig();
        let o = tempfile::tempdir().unwrap();
        let out = run(&[
            "collect",
            "--kube",
            "--kubeconfig",
            &kc,
            "-A",
            "--via",
            "port-forward",
            "--json",
            "-o",
            o.path().to_str().unwrap(),
        ]);
        assert!(
            stdout_json(&out)["collected"].as_u64() > Some(0),
            "{}",
            s(&out)
        );
    }
}

/// The scrape library's protocol steps, driven directly against real servers.
mod protocol {
    use super::*;
    use scrape::protocol::{self as p, ClientOptions, Endpoint, Probe};
    use scrape::transport::{Direct, RawRequest, Transport};
    use std::sync::Arc;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::new(Arc::new(Direct::new(url, Duration::from_secs(2)).unwrap()))
    }

    /// Probe, then the process exits, then fetch: a connection error that
    /// names the URL, not a hang or a panic.
    #[test]
    fn server_exits_between_probe_and_fetch() {
        let f = fixtures();
        let ns = Netns::with_veth();
        let proc_ = ns.spawn_ready(&f.named("shortlived"), &[], &[]);
        let url = format!("http://{}:53700", ns.ip.clone().unwrap());
        let ep = endpoint(&url);
        let opts = ClientOptions {
            retries: 1,
            backoff: Duration::from_millis(10),
            ..Default::default()
        };
        rt().block_on(async {
            match p::probe(&ep, &opts).await.unwrap() {
                Probe::Coverage(id) => {
                    assert_eq!(id.pid, proc_.pid);
                    assert_eq!(id.binary, "shortlived");
                }
                other => panic!("{other:?}"),
            }
            signal(proc_.pid, "KILL");
            wait_gone(proc_.pid);
            let err = p::fetch(&ep, &opts, true).await.unwrap_err();
            assert!(matches!(&err, scrape::Error::Transport { source, .. } if source.kind == scrape::TransportErrorKind::Connect), "{err:?}");
            assert!(err.to_string().contains(&url), "{err}");
        });
    }

    /// Gzip on the wire; the first fetch carries meta-data, later
    /// counters-only fetches name the same hash.
    #[test]
    fn gzip_and_counters_only_fetches() {
        let f = fixtures();
        let ns = Netns::with_veth();
        ns.spawn_ready(&f.covered, &["4"], &[]);
        let url = format!("http://{}:53700", ns.ip.clone().unwrap());
        let direct = Direct::new(&url, Duration::from_secs(2)).unwrap();
        rt().block_on(async {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::ACCEPT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
            let raw = direct
                .send(RawRequest {
                    method: http::Method::GET,
                    path: "/coverage".into(),
                    headers,
                    limit: Default::default(),
                })
                .await
                .unwrap();
            assert_eq!(
                raw.headers.get(http::header::CONTENT_ENCODING).unwrap(),
                "gzip"
            );
            assert_eq!(&raw.body[..2], &[0x1f, 0x8b], "gzip magic");
            let ep = Endpoint::new(Arc::new(direct.clone()));
            let opts = ClientOptions::default();
            let full = p::fetch(&ep, &opts, true).await.unwrap();
            let meta = full.meta.expect("meta on the first fetch");
            assert_eq!(p::meta_hash(&meta).unwrap(), full.hash);
            let lean = p::fetch(&ep, &opts, false).await.unwrap();
            assert!(lean.meta.is_none());
            assert_eq!(lean.hash, full.hash);
            assert!(
                lean.counters_filename
                    .starts_with(&format!("covcounters.{}.", covdata_hex(&full.hash)))
            );
        });
    }

    /// covfleet asks for the compact form and this server gives it; a server
    /// that only knows JSON (an older covfleet, the seed system's) ignores
    /// `Accept`, and the same fetch decodes its JSON to the same files.
    #[test]
    fn compact_form_when_offered_json_otherwise() {
        let f = fixtures();
        let ns = Netns::with_veth();
        ns.spawn_ready(&f.covered, &["4"], &[]);
        let url = format!("http://{}:53700", ns.ip.clone().unwrap());
        let direct = Direct::new(&url, Duration::from_secs(2)).unwrap();
        let ep = Endpoint::new(Arc::new(direct.clone()));
        let opts = ClientOptions::default();
        let (compact, json) = rt().block_on(async {
            let compact = p::fetch(&ep, &opts, true).await.unwrap();
            // What an old server answers: the JSON body, whatever Accept says.
            let raw = direct
                .send(RawRequest {
                    method: http::Method::GET,
                    path: "/coverage".into(),
                    headers: http::HeaderMap::new(),
                    limit: Default::default(),
                })
                .await
                .unwrap();
            assert_eq!(raw.headers.get("content-type").unwrap(), "application/json");
            (compact, raw.body)
        });
        // (Unless the fixtures carry another server, for compatibility runs.)
        if std::env::var_os("COVFLEET_TEST_SERVER_GO").is_none() {
            assert!(
                compact.compact,
                "the injected server did not answer compactly"
            );
        }
        assert_eq!(
            p::meta_hash(compact.meta.as_deref().unwrap()).unwrap(),
            compact.hash
        );

        // The old server: answers every request with that JSON.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let old_url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                *seen2.lock().unwrap() = String::from_utf8_lossy(&req).to_lowercase();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Art-Coverage-Server: 1\r\nX-Art-Coverage-Pid: 42\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    json.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&json);
            }
        });
        let old =
            rt().block_on(async { p::fetch(&endpoint(&old_url), &opts, true).await.unwrap() });
        assert!(
            seen.lock()
                .unwrap()
                .contains("accept: application/vnd.covfleet.coverage"),
            "the compact form was not asked for: {}",
            seen.lock().unwrap()
        );
        assert!(!old.compact);
        assert_eq!(old.hash, compact.hash);
        assert_eq!(old.meta, compact.meta);
        assert_eq!(p::counters_hash(&old.counters).unwrap(), compact.hash);
    }

    /// A listener that never answers: the per-request timeout fires, and
    /// the error names the target.
    #[test]
    fn hanging_server_times_out() {
        let ns = Netns::with_veth();
        ns.spawn_hang(53700);
        let url = format!("http://{}:53700", ns.ip.clone().unwrap());
        let ep = endpoint(&url);
        let opts = ClientOptions {
            timeout: Duration::from_millis(300),
            retries: 2,
            backoff: Duration::from_millis(10),
            ..Default::default()
        };
        rt().block_on(async {
            let err = p::probe(&ep, &opts).await.unwrap_err();
            assert!(matches!(err, scrape::Error::Timeout { .. }), "{err:?}");
            assert!(err.to_string().contains(&url), "{err}");
        });
    }

    fn covdata_hex(h: &[u8; 16]) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }
}
