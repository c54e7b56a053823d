//! Node credentials and node-level targets against a REAL kube-apiserver
//! (+ etcd; see `kube_real.rs` for where the binaries come from).
//!
//! - `agent_with_node_credentials`: the apiserver runs as in a real cluster,
//!   `--authorization-mode=Node,RBAC` with the NodeRestriction admission
//!   plugin and a client CA made by the test; the agent gets a client
//!   certificate for `system:node:node-a` in group `system:nodes`, exactly a
//!   kubelet's identity. Its own code paths learn the node name from a
//!   SelfSubjectReview, are refused a cluster-wide pod list, and its
//!   field-selected (`spec.nodeName`) list and watch attribute a real
//!   instrumented process (in a CRI-O-named cgroup, in its own network
//!   namespace) to its pod once the pod's status names the container.
//!
//! Not covered: a kubelet and a container runtime (the test writes the pod
//! status a kubelet would write), controllers, scheduling.
//!
//! Skips (with a printed reason) only when the binaries are not built.

mod k8s_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

/// Directories holding metadata.json under `root`, with their metadata.
fn stored(root: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "metadata.json")
                && let Ok(b) = std::fs::read(&p)
                && let Ok(v) = serde_json::from_slice::<Value>(&b)
            {
                out.push((d.clone(), v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A child process killed on drop.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn setup_namespace(cp: &ControlPlane, ns: &str) {
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
}

#[test]
fn agent_with_node_credentials() {
    let bin = match k8s_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED agent_with_node_credentials: {why}");
            return;
        }
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
    setup_namespace(&cp, ns);
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
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &node.name, covfleet()])
        .args(["agent", "--sink"])
        .arg(format!("file://{}", sink.display()))
        .arg("--spool")
        .arg(tmp.path().join("spool"))
        .arg("--kubeconfig")
        .arg(&kc)
        .args([
            "--scan-interval",
            "300ms",
            "--schedule",
            "200ms:3s,500ms",
            "--hostname",
            "node-a",
        ])
        .env("COVFLEET_LOG", "debug")
        .env_remove("NODE_NAME")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut agent = Running(Some(c.spawn().expect("start covfleet agent")));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    // The agent learned its node from the API and watches its pods; the
    // process is seen while its pod's status does not name it yet (the
    // kubelet writes the container ID only after the container started).
    wait_for("the agent to watch node-a's pods", || {
        log_text().contains("watching this node's pods")
    });
    assert!(log_text().contains("node-a"), "{}", log_text());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        stored(&sink).is_empty(),
        "stored before its pod named it: {:?}\n{}",
        stored(&sink),
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
    let rel: Vec<String> = dir
        .strip_prefix(&sink)
        .unwrap()
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    assert_eq!(&rel[..4], ["node-a", ns, pod_name, "web"], "{rel:?}");
    assert_eq!(md["pod_name"], pod_name, "{md}");
    assert_eq!(md["host_process"], false, "{md}");
    assert_eq!(md["process"]["pod_uid"], json!(uid), "{md}");
    assert_eq!(md["process"]["restart_count"], "1", "{md}");
    assert_eq!(md["process"]["container_id"], json!(cid), "{md}");
}
