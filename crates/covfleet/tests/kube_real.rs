//! `covfleet collect --kube` against a REAL kube-apiserver and etcd, built
//! from the Go module proxy by `scripts/k8s-binaries.sh` into
//! `${COVFLEET_CACHE:-~/.cache/covfleet}/k8s-<version>/bin/` (`COVFLEET_K8S_BIN`
//! overrides the folder).
//!
//! The test starts etcd and kube-apiserver on loopback (self-signed serving
//! certificate, a static token, AlwaysAllow), creates a namespace, a
//! ReplicaSet and its pods through the API, then writes each pod's status
//! like a kubelet would (phase Running, Ready, container statuses, podIP =
//! the address of a network namespace this test made, where real
//! instrumented Go programs listen). `covfleet collect --kube` lists the pods
//! and reaches the coverage servers through the API server's real pod
//! `proxy` subresource; `--watch` picks up a pod created later.
//!
//! Not covered here: `--via port-forward` (needs a kubelet and a container
//! runtime; the fake API in `collect.rs` tests that protocol), the
//! controllers (no kube-controller-manager: pods are created directly, owned
//! by a ReplicaSet object nothing reconciles), scheduling, RBAC.
//!
//! Skips (with a printed reason) only when the binaries are not built; once
//! they are present every failure is a test failure.

mod k8s_support;
mod support;

use std::process::{Child, Command, Stdio};

use k8s_support::*;
use serde_json::{Value, json};
use support::*;

#[test]
fn collect_through_a_real_apiserver_pod_proxy() {
    let bin = match k8s_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED collect_through_a_real_apiserver_pod_proxy: {why}");
            return;
        }
    };
    let f = fixtures();
    // Two replicas, each a pod network namespace with two instrumented
    // programs (53700 web, 53701 exporter), reachable from the host (where
    // the apiserver runs) over a veth pair, never over loopback.
    let ns_a = Netns::with_veth();
    ns_a.spawn_ready(&f.named("web"), &["5"], &[]);
    ns_a.spawn_ready(&f.named("exporter"), &["3"], &[]);
    let ns_b = Netns::with_veth();
    ns_b.spawn_ready(&f.named("web"), &["4"], &[]);
    ns_b.spawn_ready(&f.named("exporter"), &["2"], &[]);
    // A running pod whose program is not instrumented: nothing listens, the
    // apiserver's proxy answers with its own error for every port.
    let ns_bare = Netns::with_veth();
    // A node's namespace for a hostNetwork pod: an uninstrumented program on
    // 53700 (like a kubelet) and the pod's instrumented agent on 53701.
    let ns_node = Netns::with_veth();
    ns_node.spawn_ready(&f.plain, &[], &[]);
    ns_node.spawn_ready(&f.named("agent"), &["6"], &[]);

    let cp = ControlPlane::start(&bin);
    let ns = "shop";
    cp.must(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    );
    // No controller-manager makes the default service account: the
    // ServiceAccount admission plugin wants it before it admits pods.
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    );
    let containers = json!([
        container("web", "quay.invalid/shop/web:1.4", "/app/web"),
        container(
            "metrics",
            "quay.invalid/shop/exporter:0.9",
            "/usr/bin/exporter"
        ),
    ]);
    let labels = json!({"app": "web", "pod-template-hash": "7d4b9c"});
    let rs = cp.must(
        "POST",
        &format!("/apis/apps/v1/namespaces/{ns}/replicasets"),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-7d4b9c", "labels": labels},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}}),
    );
    let rs_uid = rs["metadata"]["uid"].as_str().unwrap().to_string();

    let mut uids = std::collections::BTreeMap::new();
    let replicas = [
        ("web-7d4b9c-aaaaa", &ns_a, 0),
        ("web-7d4b9c-bbbbb", &ns_b, 2),
    ];
    for (name, netns, metrics_restarts) in replicas {
        let pod = cp.must(
            "POST",
            &format!("/api/v1/namespaces/{ns}/pods"),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "web-7d4b9c", "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"nodeName": "node-2", "containers": containers}}),
        );
        assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
        uids.insert(name, pod["metadata"]["uid"].as_str().unwrap().to_string());
        let st = cp.must(
            "PATCH",
            &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
            running_status(
                netns.ip.as_deref().unwrap(),
                "198.18.0.2",
                &[
                    ("web", "quay.invalid/shop/web:1.4", 0),
                    (
                        "metrics",
                        "quay.invalid/shop/exporter:0.9",
                        metrics_restarts,
                    ),
                ],
            ),
        );
        assert_eq!(
            st["status"]["podIP"],
            json!(netns.ip.clone().unwrap()),
            "{st}"
        );
    }
    // A pod nothing runs: it stays Pending as the apiserver created it.
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "batch-5f6d7-pzq8k"},
            "spec": {"containers": [container("batch", "quay.invalid/shop/batch:1", "/batch")]}}),
    );
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0", "labels": {"app": "db"}},
            "spec": {"nodeName": "node-2",
                "containers": [container("postgres", "quay.invalid/postgres:16", "postgres")]}}),
    );
    cp.must(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/db-0/status"),
        running_status(
            ns_bare.ip.as_deref().unwrap(),
            "198.18.0.2",
            &[("postgres", "quay.invalid/postgres:16", 0)],
        ),
    );
    let node_ip = ns_node.ip.clone().unwrap();
    let agent = cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "node-agent-x7k2p", "labels": {"app": "node-agent"}},
            "spec": {"nodeName": "node-1", "hostNetwork": true,
                "containers": [container("agent", "quay.invalid/agent:2", "/usr/bin/agent")]}}),
    );
    uids.insert(
        "node-agent-x7k2p",
        agent["metadata"]["uid"].as_str().unwrap().to_string(),
    );
    cp.must(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/node-agent-x7k2p/status"),
        running_status(&node_ip, &node_ip, &[("agent", "quay.invalid/agent:2", 0)]),
    );
    // The real proxy subresource reaches a coverage server (what collect uses).
    let (code, _) = cp.call(
        "GET",
        &format!("/api/v1/namespaces/{ns}/pods/web-7d4b9c-aaaaa:53700/proxy/health"),
        "",
        &Value::Null,
    );
    assert_eq!(code, 200, "{}", cp.apiserver.tail());

    let out_dir = cp.dir.path().join("out");
    let kc = cp.kubeconfig(TOKEN, "default");
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--kubeconfig"])
        .arg(&kc)
        .args(["-n", ns, "--json", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", s(&out), cp.apiserver.tail());
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], 5, "{summary}");
    let skipped = summary["skipped"].to_string();
    assert!(
        skipped.contains("batch-5f6d7-pzq8k") && skipped.contains("Pending"),
        "{summary}"
    );
    // The uninstrumented program on the node answers on 53700: reported
    // once, for the node, as not a coverage server.
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
    // The pod where nothing listens is reported once, with the reason.
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

    let mut got = Vec::new();
    for d in entries(&out_dir) {
        let m = read_json(&d.join("metadata.json"));
        let pod = m["pod_name"].as_str().unwrap().to_string();
        let cont = m["container"]["name"].as_str().unwrap().to_string();
        let dir_name = d.file_name().unwrap().to_string_lossy().to_string();
        // One entry per pod and container, named after them.
        assert!(
            dir_name.contains(&pod) && dir_name.contains(&cont),
            "{dir_name}: {m}"
        );
        assert_eq!(m["namespace"], ns, "{m}");
        assert_eq!(m["source"], "kube", "{m}");
        assert_eq!(m["host_process"], false, "{m}");
        let node = if pod.starts_with("node-agent") {
            "node-1"
        } else {
            "node-2"
        };
        assert_eq!(m["hostname"], node, "{m}");
        if pod.starts_with("node-agent") {
            assert_eq!(m["process"]["host_network"], "true", "{m}");
        }
        // The UIDs the apiserver assigned, not ones the test made up.
        assert_eq!(
            m["process"]["pod_uid"].as_str(),
            uids.get(pod.as_str()).map(|s| s.as_str()),
            "{m}"
        );
        if pod.starts_with("web-") {
            assert_eq!(m["owner_references"][0]["kind"], "ReplicaSet", "{m}");
            assert_eq!(m["owner_references"][0]["name"], "web-7d4b9c", "{m}");
            assert_eq!(m["owner_references"][0]["uid"], json!(rs_uid), "{m}");
        }
        // Real coverage data: go tool covdata reads it.
        assert!(total_count(&work_profile(&d)) > 0, "{}", d.display());
        got.push((
            pod,
            cont,
            m["container"]["image"].as_str().unwrap().to_string(),
            m["binary_name"].as_str().unwrap().to_string(),
            dir_name.contains("-r2"),
        ));
    }
    got.sort();
    let want: Vec<(String, String, String, String, bool)> = [
        (
            "node-agent-x7k2p",
            "agent",
            "quay.invalid/agent:2",
            "agent",
            false,
        ),
        (
            "web-7d4b9c-aaaaa",
            "metrics",
            "quay.invalid/shop/exporter:0.9",
            "exporter",
            false,
        ),
        (
            "web-7d4b9c-aaaaa",
            "web",
            "quay.invalid/shop/web:1.4",
            "web",
            false,
        ),
        (
            "web-7d4b9c-bbbbb",
            "metrics",
            "quay.invalid/shop/exporter:0.9",
            "exporter",
            true,
        ),
        (
            "web-7d4b9c-bbbbb",
            "web",
            "quay.invalid/shop/web:1.4",
            "web",
            false,
        ),
    ]
    .iter()
    .map(|t| (t.0.into(), t.1.into(), t.2.into(), t.3.into(), t.4))
    .collect();
    assert_eq!(got, want);

    // Label selection and pods by name, answered by the apiserver itself.
    let sel_dir = cp.dir.path().join("selected");
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--kubeconfig"])
        .arg(&kc)
        .args([
            "-n",
            ns,
            "-l",
            "app=web,pod-template-hash=7d4b9c",
            "--json",
            "-o",
        ])
        .arg(&sel_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out));
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], 4, "{summary}");
    let skipped = summary["skipped"].to_string();
    assert!(
        !skipped.contains("db-0") && !skipped.contains("batch"),
        "{summary}"
    );
    let named_dir = cp.dir.path().join("named");
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--kubeconfig"])
        .arg(&kc)
        .args(["-n", ns, "--pod", "web-7d4b9c-bbbbb", "--json", "-o"])
        .arg(&named_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out));
    assert_eq!(stdout_json(&out)["collected"], 2, "{}", s(&out));
    for d in entries(&named_dir) {
        let m = read_json(&d.join("metadata.json"));
        assert_eq!(m["pod_name"], "web-7d4b9c-bbbbb", "{m}");
    }

    // A token the apiserver does not know: a clear failure, no entries.
    let bad_dir = cp.dir.path().join("bad");
    let kc_bad = cp.kubeconfig("not-the-token", ns);
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--kubeconfig"])
        .arg(&kc_bad)
        .arg("-o")
        .arg(&bad_dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", s(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{}",
        s(&out)
    );
    assert!(entries(&bad_dir).is_empty());
}

/// `--kube --watch` against the real apiserver: a pod created (and made
/// Running) after collect started is picked up; SIGTERM ends the watch with
/// a final scrape.
#[test]
fn watch_picks_up_a_pod_created_later() {
    let bin = match k8s_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED watch_picks_up_a_pod_created_later: {why}");
            return;
        }
    };
    let f = fixtures();
    let first = Netns::with_veth();
    first.spawn_ready(&f.named("api"), &["3"], &[]);
    let second = Netns::with_veth();
    second.spawn_ready(&f.named("worker"), &["4"], &[]);
    let cp = ControlPlane::start(&bin);
    let ns = "prod";
    cp.must(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    );
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    );
    let add_pod = |name: &str, netns: &Netns, command: &str| {
        cp.must(
            "POST",
            &format!("/api/v1/namespaces/{ns}/pods"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": "node-3",
                    "containers": [container("main", "quay.invalid/app:1", command)]}}),
        );
        cp.must(
            "PATCH",
            &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
            running_status(
                netns.ip.as_deref().unwrap(),
                "198.18.0.3",
                &[("main", "quay.invalid/app:1", 0)],
            ),
        );
    };
    add_pod("api-6c9d-aaaaa", &first, "/api");

    let kc = cp.kubeconfig(TOKEN, ns);
    let o = cp.dir.path().join("out");
    let child = Command::new(covfleet())
        .args(["collect", "--kube", "--kubeconfig"])
        .arg(&kc)
        .args(["--watch", "--json", "-o"])
        .arg(&o)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    // Killed if the test fails before it is signalled.
    struct Watch(Option<Child>);
    impl Drop for Watch {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut watch = Watch(Some(child));
    wait_for("the first pod", || has_pod("api-6c9d-aaaaa"));
    add_pod("worker-7f8e-bbbbb", &second, "/worker");
    wait_for("the pod created later", || has_pod("worker-7f8e-bbbbb"));
    let child = watch.0.take().unwrap();
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", s(&out));
    assert_eq!(stdout_json(&out)["collected"], 2, "{}", s(&out));
    for d in entries(&o) {
        assert!(total_count(&work_profile(&d)) > 0, "{}", d.display());
    }
}
