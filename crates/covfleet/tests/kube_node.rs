//! Node credentials and node-level targets against a REAL kube-apiserver
//! (+ etcd; see `kube_real.rs` for where the binaries come from).
//!
//! - `agent_with_node_credentials`: the apiserver runs as in a real cluster,
//!   `--authorization-mode=Node,RBAC` with the NodeRestriction admission
//!   plugin and a client CA made by the test; the agent gets a client
//!   certificate for `system:node:node-a` in group `system:nodes`, exactly a
//!   kubelet's identity. It starts in bootstrap mode (the kubeconfig
//!   appears only after it started) and picks the credentials up. Its own
//!   code paths learn the node name from a
//!   SelfSubjectReview, are refused a cluster-wide pod list, and its
//!   field-selected (`spec.nodeName`) list and watch attribute a real
//!   instrumented process (in a CRI-O-named cgroup, in its own network
//!   namespace) to its pod once the pod's status names the container, and
//!   exit-time coverage files of the pod's watched directory to the same
//!   pod, under the node's name.
//! - `collect_host_daemons_through_the_node_proxy`: `collect --kube
//!   --nodes` with exactly the documented RBAC (RBAC authorization), Node
//!   objects whose InternalIPs point into network namespaces of the test
//!   where real Go programs listen, reached through the apiserver's node
//!   proxy.
//! - `doctor_explains_a_pod_through_the_api`: `doctor --kube POD` on pods
//!   whose podIP points into such namespaces (a server answering through
//!   the pod proxy, one silent), a Pending pod, a missing pod.
//!
//! Not covered: a kubelet and a container runtime (the test writes the pod
//! status a kubelet would write), controllers, scheduling.
//!
//! Skips (with a printed reason) only when the binaries are not built.

mod k8s_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Pod;
use k8s_support::*;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};
use support::*;

fn runtime() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn kube_client(rt: &tokio::runtime::Runtime, kubeconfig: &Path) -> kube::Client {
    rt.block_on(scrape::kube::client(&scrape::kube::Selection {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        ..Default::default()
    }))
    .unwrap()
}

/// The HTTP status of a failed API call.
fn api_status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[test]
fn agent_with_node_credentials() {
    let Some(bin) = bin_or_skip("agent_with_node_credentials") else {
        return;
    };
    let cgroot = "/sys/fs/cgroup/unified";
    assert!(
        Path::new(cgroot).join("cgroup.procs").exists(),
        "this test needs cgroup v2 at {cgroot}"
    );
    let f = fixtures();
    // The node's host network: the agent runs here and reaches the
    // apiserver, which listens on the host side of this namespace's veth.
    let node = Netns::with_veth();
    let cp = ControlPlane::start_with(
        &bin,
        &Options {
            bind: node.host_ip().unwrap(),
            authorization: "Node,RBAC".into(),
            admission: Some("NodeRestriction".into()),
            pki: true,
            ..Default::default()
        },
    );
    let ns = "shop";
    cp.add_namespace(ns);
    let pod_name = "web-5f7c-abcde";
    let web =
        json!({"name": "web", "image": "quay.invalid/shop/web:2", "command": ["/app/agt-nd-web"]});
    let pod = cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name},
            "spec": {"nodeName": "node-a", "containers": [web]}}),
    );
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere-0"},
            "spec": {"nodeName": "node-b", "containers": [web]}}),
    );

    // The kubelet's identity.
    let (crt, key) = cp.client_cert("system:node:node-a", &["system:nodes"]);
    let kc = cp.kubeconfig_cert(&crt, &key, "default");
    let rt = runtime();
    let client = kube_client(&rt, &kc);
    // SelfSubjectReview, as the agent asks it.
    let name = rt
        .block_on(agent::pods::node_name_from_api(&client))
        .unwrap();
    assert_eq!(name, "node-a");
    // A cluster-wide list (what `collect --kube -A` does) is refused.
    let all = rt.block_on(scrape::kube::list_pods(
        &client,
        &scrape::kube::Selection {
            all_namespaces: true,
            ..Default::default()
        },
    ));
    let err = all.expect_err("a node may not list every pod").to_string();
    assert!(err.contains("403") || err.contains("forbidden"), "{err}");
    let api: Api<Pod> = Api::all(client.clone());
    let other = rt.block_on(api.list(&ListParams::default().fields("spec.nodeName=node-b")));
    assert_eq!(
        other.as_ref().err().and_then(api_status),
        Some(403),
        "{other:?}"
    );
    // Its own pods: the selector the agent's watch uses.
    let mine = rt
        .block_on(api.list(&ListParams::default().fields("spec.nodeName=node-a")))
        .unwrap();
    let names: Vec<_> = mine
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, [pod_name]);

    // The container's process: its own network namespace, a cgroup named
    // like CRI-O's scope for it (systemd driver, cgroup v2).
    let me = std::process::id();
    let cid = format!("{:064x}", u64::from(me) * 11 + 5);
    let cg = Cgroup::new(
        cgroot,
        &format!(
            "cfn{me}.slice/kubepods-pod{}.slice/crio-{cid}.scope",
            uid.replace('-', "_")
        ),
    );
    let podns = Netns::new();
    let proc = podns.spawn_ready(&f.named("agt-nd-web"), &["3"], &[]);
    cg.add(proc.pid);

    let tmp = tempfile::tempdir().unwrap();
    let sink = tmp.path().join("sink");
    let log = tmp.path().join("agent.log");
    // Exit-time data of a short-lived program of the pod, there before the
    // agent starts (the watcher's first rounds come before the API named
    // the node).
    let watch = tmp.path().join("exits");
    let exit_dir = watch.join(ns).join(pod_name).join("web");
    std::fs::create_dir_all(&exit_dir).unwrap();
    run_exit_program(&build_exit_program(tmp.path()), 7, &exit_dir);
    // Bootstrap mode: the node's kubeconfig does not exist yet when the
    // agent starts (the kubelet writes it once it has joined).
    let node_kc = tmp.path().join("kubelet").join("kubeconfig");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &node.name, covfleet()])
        .args(["agent", "--sink"])
        .arg(format!("file://{}", sink.display()))
        .arg("--spool")
        .arg(tmp.path().join("spool"))
        .arg("--kubeconfig")
        .arg(&node_kc)
        .args(["--scan-interval", "300ms", "--schedule", "200ms:3s,500ms"])
        .arg("--watch-dir")
        .arg(&watch)
        .args(["--watch-attribution", "path"])
        .env("COVFLEET_LOG", "debug")
        .env_remove("NODE_NAME")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut agent = Running(Some(c.spawn().expect("start covfleet agent")));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("bootstrap mode", || log_text().contains("bootstrap mode"));
    std::fs::create_dir_all(node_kc.parent().unwrap()).unwrap();
    let part = node_kc.with_extension("part");
    std::fs::copy(&kc, &part).unwrap();
    std::fs::rename(&part, &node_kc).unwrap();
    // The agent found the kubeconfig, learned its node from the API and
    // watches its pods; the
    // process is seen while its pod's status does not name it yet (the
    // kubelet writes the container ID only after the container started).
    wait_for("the agent to watch node-a's pods", || {
        log_text().contains("watching this node's pods")
    });
    assert!(log_text().contains("node-a"), "{}", log_text());
    assert!(
        log_text().contains("Kubernetes credentials found"),
        "{}",
        log_text()
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // (Other tests' processes on this machine are host processes to the
    // agent: only this test's binary is looked at.)
    let early: Vec<(PathBuf, Value)> = stored(&sink)
        .into_iter()
        .filter(|(_, md)| md["binary_name"] == "agt-nd-web")
        .collect();
    assert!(
        early.is_empty(),
        "stored before its pod named it: {early:?}\n{}",
        log_text()
    );
    // The kubelet's status update, delivered by the field-selected watch.
    cp.must(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/{pod_name}/status"),
        json!({"status": {"phase": "Running", "podIP": "10.88.0.7",
            "containerStatuses": [{"name": "web", "image": "quay.invalid/shop/web:2",
                "imageID": "", "containerID": format!("cri-o://{cid}"), "ready": true,
                "started": true, "restartCount": 1,
                "state": {"running": {"startedAt": "2026-11-30T08:00:00Z"}}}]}}),
    );
    wait_for("the process stored under its pod", || {
        stored(&sink)
            .iter()
            .any(|(_, md)| md["binary_name"] == "agt-nd-web" && md["snapshots"].as_u64() >= Some(1))
    });
    // Delivered by the watch itself: never refused, never relisted.
    let text = log_text();
    assert!(
        !text.contains("relisting")
            && !text.contains("pod watch stream failed")
            && !text.contains("listing this node's pods failed"),
        "{text}"
    );
    let child = agent.0.take().unwrap();
    signal(child.id(), "TERM");
    let mut child = child;
    assert!(child.wait().unwrap().success(), "{}", log_text());
    let mine: Vec<(PathBuf, Value)> = stored(&sink)
        .into_iter()
        .filter(|(_, md)| md["binary_name"] == "agt-nd-web")
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let (dir, md) = &mine[0];
    let rel = rel_parts(dir, &sink);
    // No --hostname, no NODE_NAME: the layout names the node the API named.
    assert_eq!(&rel[..4], ["node-a", ns, pod_name, "web"], "{rel:?}");
    assert_eq!(md["hostname"], "node-a", "{md}");
    assert_eq!(md["pod_name"], pod_name, "{md}");
    assert_eq!(md["host_process"], false, "{md}");
    assert_eq!(md["process"]["pod_uid"], json!(uid), "{md}");
    assert_eq!(md["process"]["restart_count"], "1", "{md}");
    assert_eq!(md["process"]["container_id"], json!(cid), "{md}");
    // The exit-time batch waited for the pod list, so it too is named
    // after the node the API named, not this machine's hostname.
    let exits: Vec<(PathBuf, Value)> = stored(&sink)
        .into_iter()
        .filter(|(_, md)| md["binary_name"] == "agt-exit")
        .collect();
    assert_eq!(exits.len(), 1, "{exits:?}\n{}", log_text());
    let (dir, md) = &exits[0];
    assert_eq!(&rel_parts(dir, &sink)[..4], ["node-a", ns, pod_name, "web"]);
    assert_eq!(md["hostname"], "node-a", "{md}");
    assert_eq!(md["source"], "gocoverdir", "{md}");
    assert_eq!(md["process"]["pod_uid"], json!(uid), "{md}");
    assert!(
        !counter_files_left(&exit_dir),
        "exit-time files stored are removed locally"
    );
}

/// Whether a directory still holds counter files.
fn counter_files_left(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("covcounters."))
}

/// A Node object (as a kubelet registers it) whose InternalIP is `ip`.
fn add_node(cp: &ControlPlane, name: &str, ip: &str, ready: bool) {
    cp.must(
        "POST",
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name}}}),
    );
    cp.must(
        "PATCH",
        &format!("/api/v1/nodes/{name}/status"),
        json!({"status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" },
                "reason": "KubeletReady", "lastHeartbeatTime": "2026-11-30T08:00:00Z",
                "lastTransitionTime": "2026-11-30T08:00:00Z"}]}}),
    );
}

/// RBAC as docs/collect.md documents it, bound to the token user `user`:
/// pods (list, get), with `proxy` pods/proxy too, with `nodes` nodes (list)
/// and nodes/proxy.
fn grant(cp: &ControlPlane, user: &str, proxy: bool, nodes: bool) {
    let mut rules =
        vec![json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "get"]})];
    if proxy {
        rules.push(
            json!({"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get", "create"]}),
        );
    }
    if nodes {
        rules.push(json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}));
        rules.push(
            json!({"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get", "create"]}),
        );
    }
    let role = format!("covfleet-collect-{user}");
    cp.must(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role}, "rules": rules}),
    );
    cp.must(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    );
}

/// `collect --kube --nodes`: host daemons of every node through the real
/// API server's node proxy. Node objects' InternalIPs point into network
/// namespaces of this test (reached over veth pairs), where real Go
/// programs listen: node-1 has an uninstrumented "kubelet" on 53700 (it
/// answers "not built with -cover"), an instrumented `crio` on 53701 and a
/// DaemonSet-like hostNetwork pod's `ds-agent` on 53702; node-2 an
/// instrumented `kubelet`; node-3 is not Ready. The user has exactly the
/// RBAC docs/collect.md lists (RBAC authorization, no AlwaysAllow).
#[test]
fn collect_host_daemons_through_the_node_proxy() {
    let Some(bin) = bin_or_skip("collect_host_daemons_through_the_node_proxy") else {
        return;
    };
    let f = fixtures();
    let node1 = Netns::with_veth();
    node1.spawn_ready(&f.plain, &[], &[]);
    node1.spawn_ready(&f.named("crio"), &["3"], &[]);
    node1.spawn_ready(&f.named("ds-agent"), &["2"], &[]);
    let node2 = Netns::with_veth();
    node2.spawn_ready(&f.named("kubelet"), &["4"], &[]);
    // A listener that accepts and never answers: bounded by --timeout.
    node2.spawn_hang(53710);
    let node3 = Netns::with_veth();
    node3.spawn_ready(&f.named("kubelet"), &["1"], &[]);
    let cp = ControlPlane::start_with(
        &bin,
        &Options {
            authorization: "RBAC".into(),
            tokens: vec![
                ("collector-t0ken".into(), "collector".into(), "".into()),
                ("podsonly-t0ken".into(), "podsonly".into(), "".into()),
            ],
            ..Default::default()
        },
    );
    let ip1 = node1.ip.clone().unwrap();
    add_node(&cp, "node-1", &ip1, true);
    add_node(&cp, "node-2", node2.ip.as_deref().unwrap(), true);
    add_node(&cp, "node-3", node3.ip.as_deref().unwrap(), false);
    grant(&cp, "collector", true, true);
    grant(&cp, "podsonly", true, false);
    let ns = "infra";
    cp.add_namespace(ns);
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ds-agent-x1"},
            "spec": {"nodeName": "node-1", "hostNetwork": true,
                "containers": [{"name": "agent", "image": "quay.invalid/ds-agent:1",
                    "command": ["/usr/bin/ds-agent"]}]}}),
    );
    cp.must(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/ds-agent-x1/status"),
        json!({"status": {"phase": "Running", "hostIP": ip1, "podIP": ip1,
            "containerStatuses": [{"name": "agent", "image": "quay.invalid/ds-agent:1",
                "imageID": "", "containerID": "cri-o://0123", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-11-30T08:00:00Z"}}}]}}),
    );

    let out_dir = cp.dir.path().join("out");
    let kc = cp.kubeconfig("collector-t0ken", ns);
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--nodes", "--kubeconfig"])
        .arg(&kc)
        .args(["--timeout", "3s", "--json", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", s(&out), cp.apiserver.tail());
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], 3, "{summary}");
    assert!(
        summary["failed"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    let skipped = summary["skipped"].as_array().unwrap();
    // The uninstrumented kubelet: once, for its node.
    let plain: Vec<&Value> = skipped
        .iter()
        .filter(|r| r["target"].as_str().unwrap().contains("port 53700"))
        .collect();
    assert_eq!(plain.len(), 1, "{summary}");
    assert!(
        plain[0]["target"]
            .as_str()
            .unwrap()
            .starts_with("node node-1 port 53700")
            && plain[0]["reason"]
                .as_str()
                .unwrap()
                .contains("not built with -cover"),
        "{summary}"
    );
    assert!(
        skipped
            .iter()
            .any(|r| r["target"] == "node node-3" && r["reason"] == "node is not Ready"),
        "{summary}"
    );
    // The hanging port: given up after --timeout, reported for its node
    // (not necessarily a coverage server, so not a failure of the run).
    assert!(
        skipped
            .iter()
            .any(|r| r["target"] == "node node-2 port 53710"
                && r["reason"]
                    .as_str()
                    .unwrap()
                    .contains("no answer within 3s")),
        "{summary}"
    );
    let mut got = Vec::new();
    for d in entries(&out_dir) {
        let m = read_json(&d.join("metadata.json"));
        assert!(total_count(&work_profile(&d)) > 0, "{}", d.display());
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        got.push((
            m["binary_name"].as_str().unwrap().to_string(),
            m["hostname"].as_str().unwrap().to_string(),
            m["namespace"].as_str().unwrap().to_string(),
            m["host_process"].as_bool().unwrap(),
            m["source"].as_str().unwrap().to_string(),
        ));
        if m["host_process"] == true {
            let node = m["hostname"].as_str().unwrap();
            assert!(
                name.starts_with(&format!(
                    "host_{node}_{}_p",
                    m["binary_name"].as_str().unwrap()
                )),
                "{name}"
            );
            assert_eq!(m["process"]["node"], node, "{m}");
        } else {
            assert_eq!(m["pod_name"], "ds-agent-x1", "{m}");
            assert_eq!(m["container"]["name"], "agent", "{m}");
        }
    }
    got.sort();
    let want = [
        ("crio", "node-1", "_host_", true, "kube-node"),
        ("ds-agent", "node-1", ns, false, "kube"),
        ("kubelet", "node-2", "_host_", true, "kube-node"),
    ];
    let want: Vec<(String, String, String, bool, String)> = want
        .iter()
        .map(|w| (w.0.into(), w.1.into(), w.2.into(), w.3, w.4.into()))
        .collect();
    assert_eq!(got, want);

    // `reset --nodes` POSTs through the node proxy (`create` on
    // nodes/proxy): every coverage server found is reset; only the
    // uninstrumented kubelet's refuses.
    let out = Command::new(covfleet())
        .args(["reset", "--kube", "--nodes", "--kubeconfig"])
        .arg(&kc)
        .args(["--timeout", "3s", "--json"])
        .output()
        .unwrap();
    let summary = stdout_json(&out);
    assert_eq!(summary["reset"], 3, "{}", s(&out));
    for failed in summary["failed"].as_array().unwrap() {
        assert!(
            failed["target"]
                .as_str()
                .unwrap()
                .starts_with("node node-1 port 53700"),
            "{summary}"
        );
    }

    // Without `nodes` / `nodes/proxy`: the pods are still collected, the
    // nodes part fails with the API server's refusal.
    let kc = cp.kubeconfig("podsonly-t0ken", ns);
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--nodes", "--kubeconfig"])
        .arg(&kc)
        .args(["--json", "-o"])
        .arg(cp.dir.path().join("podsonly"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], 1, "{summary}");
    let failed = summary["failed"].to_string();
    assert!(
        failed.contains("--nodes") && failed.contains("list nodes") && failed.contains("forbidden"),
        "{summary}"
    );
}

/// `covfleet doctor --kube POD --json`: exit code and findings by id.
fn doctor_kube(kc: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(covfleet())
        .args(["doctor", "--kubeconfig"])
        .arg(kc)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", s(&out)));
    (out.status.code(), v)
}

fn finding<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
}

/// `covfleet doctor --kube POD` against the real apiserver: a pod whose
/// status points into a network namespace where a real instrumented
/// program serves coverage (found through the pod proxy, with its binary
/// and PID, GOCOVERDIR on a volume), a running pod whose server does not
/// answer (restarted, last run ended with Go's PID-1 exit code 2 after
/// SIGTERM, GOCOVERDIR on the container's own filesystem), a Pending pod, a
/// pod that does not exist and a container that does not exist.
#[test]
fn doctor_explains_a_pod_through_the_api() {
    let Some(bin) = bin_or_skip("doctor_explains_a_pod_through_the_api") else {
        return;
    };
    let f = fixtures();
    let ok_ns = Netns::with_veth();
    let web = ok_ns.spawn_ready(&f.named("web"), &["3"], &[]);
    let silent_ns = Netns::with_veth();
    // A node's network for a hostNetwork pod: another host process's server
    // on 53700, the pod's own on 53701.
    let node_ns = Netns::with_veth();
    let other = node_ns.spawn_ready(&f.named("crio"), &["1"], &[]);
    let exporter = node_ns.spawn_ready(&f.named("node-exporter"), &["2"], &[]);
    let cp = ControlPlane::start_with(
        &bin,
        &Options {
            authorization: "RBAC".into(),
            tokens: vec![("viewer-t0ken".into(), "viewer".into(), "".into())],
            ..Default::default()
        },
    );
    grant(&cp, "viewer", false, false);
    let ns = "shop";
    cp.add_namespace(ns);
    let running = |netns: &Netns, name: &str, restarts: i32, last: Value| {
        let ip = netns.ip.clone().unwrap();
        json!({"status": {"phase": "Running", "hostIP": "198.18.0.9", "podIP": ip,
            "containerStatuses": [{"name": name, "image": format!("quay.invalid/shop/{name}:1"),
                "imageID": "", "containerID": "cri-o://0abc", "ready": true,
                "restartCount": restarts, "lastState": last,
                "state": {"running": {"startedAt": "2026-11-30T08:00:00Z"}}}]}})
    };
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-ok"},
            "spec": {"nodeName": "node-1",
                "volumes": [{"name": "cov", "emptyDir": {}}],
                "containers": [{"name": "web", "image": "quay.invalid/shop/web:1",
                    "command": ["/app/web"],
                    "env": [{"name": "GOCOVERDIR", "value": "/cov/web"}],
                    "volumeMounts": [{"name": "cov", "mountPath": "/cov"}]}]}}),
    );
    cp.must(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/web-ok/status"),
        running(&ok_ns, "web", 0, json!({})),
    );
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-silent"},
            "spec": {"nodeName": "node-1",
                "containers": [{"name": "api", "image": "quay.invalid/shop/api:1",
                    "command": ["/app/api"],
                    "env": [{"name": "GOCOVERDIR", "value": "/tmp/cov"}]}]}}),
    );
    cp.must(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/api-silent/status"),
        running(
            &silent_ns,
            "api",
            3,
            json!({"terminated": {"exitCode": 2, "reason": "Error",
                "startedAt": "2026-11-30T07:00:00Z", "finishedAt": "2026-11-30T07:59:00Z"}}),
        ),
    );
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "batch-pending"},
            "spec": {"containers": [{"name": "batch", "image": "quay.invalid/shop/batch:1"}]}}),
    );
    let node_ip = node_ns.ip.clone().unwrap();
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "exporter-x1"},
            "spec": {"nodeName": "node-1", "hostNetwork": true,
                "containers": [{"name": "exporter", "image": "quay.invalid/node-exporter:1",
                    "command": ["/bin/node-exporter"]}]}}),
    );
    cp.must(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/exporter-x1/status"),
        running(&node_ns, "exporter", 0, json!({})),
    );
    let kc = cp.kubeconfig(TOKEN, "default");

    // A hostNetwork pod: its container's server is told apart from the
    // node's other servers.
    let (code, r) = doctor_kube(&kc, &["--kube", "exporter-x1", "-n", ns]);
    assert_eq!(code, Some(0), "{r}");
    assert!(
        finding(&r, "containers").unwrap()["summary"]
            .as_str()
            .unwrap()
            .contains("hostNetwork"),
        "{r}"
    );
    let answers = finding(&r, "server-answers").expect("server-answers");
    let text = answers["summary"].as_str().unwrap();
    assert!(
        text.starts_with("container exporter:")
            && text.contains(&format!("pid {}", exporter.pid))
            && text.contains("port 53701"),
        "{r} ({node_ip})"
    );
    let others = finding(&r, "other-server").expect("other-server");
    assert!(
        others["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("crio (pid {})", other.pid)),
        "{r}"
    );

    // The healthy pod: its server, through the real pod proxy.
    let (code, r) = doctor_kube(&kc, &["--kube", "web-ok", "-n", ns]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["target"], "pod shop/web-ok", "{r}");
    assert_eq!(finding(&r, "pod-running").unwrap()["severity"], "ok", "{r}");
    let answers = finding(&r, "server-answers").expect("server-answers");
    let text = answers["summary"].as_str().unwrap();
    assert!(
        text.starts_with("container web:")
            && text.contains("coverage server of web")
            && text.contains(&format!("pid {}", web.pid))
            && text.contains("port 53700"),
        "{r}"
    );
    assert!(finding(&r, "server-serves-counters").is_some(), "{r}");
    assert!(finding(&r, "gocoverdir-volume").is_some(), "{r}");
    assert!(finding(&r, "no-coverage-server").is_none(), "{r}");

    // The pod whose server does not answer.
    let (code, r) = doctor_kube(&kc, &["--kube", "api-silent", "-n", ns]);
    assert_eq!(code, Some(1), "{r}");
    let none = finding(&r, "no-coverage-server").expect("no-coverage-server");
    assert_eq!(none["severity"], "problem", "{r}");
    assert!(
        none["fix"]
            .as_str()
            .unwrap()
            .contains("covfleet instrument"),
        "{r}"
    );
    assert!(
        finding(&r, "ports-silent").unwrap()["summary"]
            .as_str()
            .unwrap()
            .contains("53700")
    );
    assert!(
        finding(&r, "container-restarts").unwrap()["summary"]
            .as_str()
            .unwrap()
            .contains("restarted 3 times")
    );
    let exit = finding(&r, "exit-path").expect("exit-path");
    assert!(
        exit["summary"].as_str().unwrap().contains("exit code 2")
            && exit["fix"].as_str().unwrap().contains("SIGTERM"),
        "{r}"
    );
    assert_eq!(
        finding(&r, "gocoverdir-not-mounted").unwrap()["severity"],
        "warning",
        "{r}"
    );
    // Text output: each problem with its fix.
    let out = Command::new(covfleet())
        .args(["doctor", "--kubeconfig"])
        .arg(&kc)
        .args(["--kube", "api-silent", "-n", ns])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("pod shop/api-silent")
            && text.contains("[PROBLEM] container api: no coverage server")
            && text.contains("fix: ")
            && text.contains("problems found"),
        "{text}"
    );

    let (code, r) = doctor_kube(&kc, &["--kube", "batch-pending", "-n", ns]);
    assert_eq!(code, Some(1), "{r}");
    assert!(
        finding(&r, "pod-not-running").unwrap()["summary"]
            .as_str()
            .unwrap()
            .contains("Pending")
    );
    assert!(finding(&r, "no-coverage-server").is_none(), "{r}");

    let (code, r) = doctor_kube(&kc, &["--kube", "no-such-pod", "-n", ns]);
    assert_eq!(code, Some(1), "{r}");
    assert!(finding(&r, "pod-not-found").is_some(), "{r}");

    // A user who may read pods but not use their proxy: said so, with the
    // RBAC fix, instead of "no coverage server".
    let viewer = cp.kubeconfig("viewer-t0ken", ns);
    let (code, r) = doctor_kube(&viewer, &["--kube", "web-ok"]);
    assert_eq!(code, Some(1), "{r}");
    let refused = finding(&r, "proxy-forbidden").expect("proxy-forbidden");
    assert!(
        refused["summary"].as_str().unwrap().contains("HTTP 403")
            && refused["fix"].as_str().unwrap().contains("pods/proxy"),
        "{r}"
    );
    assert!(finding(&r, "no-coverage-server").is_none(), "{r}");
    assert!(finding(&r, "server-answers").is_none(), "{r}");
    // Unknown credentials: the question itself is refused (exit 2).
    let nobody = cp.kubeconfig("not-a-known-t0ken", ns);
    let out = Command::new(covfleet())
        .args(["doctor", "--kubeconfig"])
        .arg(&nobody)
        .args(["--kube", "web-ok"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", s(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shop/web-ok"),
        "{}",
        s(&out)
    );

    let (code, r) = doctor_kube(
        &kc,
        &["--kube", "web-ok", "-n", ns, "--container", "sidecar"],
    );
    assert_eq!(code, Some(1), "{r}");
    assert!(
        finding(&r, "container-not-found").unwrap()["summary"]
            .as_str()
            .unwrap()
            .contains("web")
    );
}
