//! Container → pod: the pods of this node from the Kubernetes API (a list
//! and watch restricted to `spec.nodeName=<node>`, the only scope a node's
//! credentials allow), with `crictl inspect` as the fallback.
//!
//! The node name comes from `NODE_NAME` or from a SelfSubjectReview
//! (`system:node:<name>`), never from the kubeconfig's user name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use scrape::kube::{ContainerInfo, PodInfo, pod_info};

use crate::cgroup::ContainerRef;

/// Errors of the Kubernetes side.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// An API call failed.
    #[error("kubernetes: {context}: {source}")]
    Api {
        context: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The credentials are not a node's (`system:node:<name>`) and no
    /// `NODE_NAME` was given.
    #[error(
        "kubernetes: cannot tell this node's name: the credentials are {user:?}, not system:node:<name>; set NODE_NAME or --node-name"
    )]
    NotANode { user: String },
}

/// This node's name: `SelfSubjectReview` says `system:node:<name>`.
pub async fn node_name_from_api(client: &Client) -> Result<String, KubeError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| KubeError::Api {
            context: "create SelfSubjectReview".into(),
            source: Box::new(e),
        })?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default();
    match user.strip_prefix("system:node:") {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(KubeError::NotANode { user }),
    }
}

/// What the agent knows about one container of a pod on this node.
#[derive(Debug, Clone)]
pub struct Attribution {
    pub pod: Arc<PodInfo>,
    pub container: ContainerInfo,
}

/// The pods of this node, indexed by container ID.
#[derive(Debug, Default)]
pub struct PodIndex {
    pods: HashMap<String, (Arc<PodInfo>, Option<Instant>)>,
    by_container: HashMap<String, String>,
    /// Whether a list ever succeeded.
    pub synced: bool,
    /// This node's name, once known (`NODE_NAME` or a SelfSubjectReview).
    pub node: Option<String>,
}

/// The ID part of `cri-o://<id>`.
fn bare_id(container_id: &str) -> &str {
    container_id
        .split_once("://")
        .map_or(container_id, |(_, id)| id)
}

/// How long a deleted pod stays known (its processes' last scrapes are
/// still attributed to it).
const KEEP_DELETED: Duration = Duration::from_secs(300);

/// The node's name in the storage layout: the configured `hostname`,
/// or, when `from_node` and the index has learnt it, this node's name
/// (as `collect --kube` names a pod's node).
pub fn layout_hostname(pods: &RwLock<PodIndex>, hostname: &str, from_node: bool) -> String {
    if from_node
        && let Ok(idx) = pods.read()
        && let Some(node) = &idx.node
    {
        return node.clone();
    }
    hostname.to_string()
}

impl PodIndex {
    /// Adds or replaces a pod.
    pub fn upsert(&mut self, pod: PodInfo) {
        self.remove_containers(&pod.uid);
        for c in &pod.containers {
            if !c.container_id.is_empty() {
                self.by_container.insert(
                    bare_id(&c.container_id).to_ascii_lowercase(),
                    pod.uid.clone(),
                );
            }
        }
        self.pods.insert(pod.uid.clone(), (Arc::new(pod), None));
    }

    fn remove_containers(&mut self, uid: &str) {
        if let Some((old, _)) = self.pods.get(uid) {
            for c in &old.containers {
                self.by_container
                    .remove(&bare_id(&c.container_id).to_ascii_lowercase());
            }
        }
    }

    /// Marks a pod deleted; it is forgotten five minutes later.
    pub fn delete(&mut self, uid: &str) {
        if let Some(e) = self.pods.get_mut(uid) {
            e.1.get_or_insert_with(Instant::now);
        }
        self.purge();
    }

    fn purge(&mut self) {
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, (_, d))| d.is_some_and(|t| t.elapsed() > KEEP_DELETED))
            .map(|(k, _)| k.clone())
            .collect();
        for uid in gone {
            self.remove_containers(&uid);
            self.pods.remove(&uid);
        }
    }

    /// Replaces the whole set (after a list).
    pub fn replace_all(&mut self, pods: Vec<PodInfo>) {
        let keep: std::collections::HashSet<String> = pods.iter().map(|p| p.uid.clone()).collect();
        let old: Vec<String> = self
            .pods
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for uid in old {
            self.delete(&uid);
        }
        for p in pods {
            self.upsert(p);
        }
        self.synced = true;
    }

    /// The pod and container a cgroup names.
    pub fn lookup(&self, c: &ContainerRef) -> Option<Attribution> {
        let uid = self.by_container.get(&c.id)?;
        let (pod, _) = self.pods.get(uid)?;
        let container = pod
            .containers
            .iter()
            .find(|x| bare_id(&x.container_id).eq_ignore_ascii_case(&c.id))?
            .clone();
        Some(Attribution {
            pod: pod.clone(),
            container,
        })
    }

    /// A pod's container by namespace, pod and container name (the newest
    /// pod of that name that is not deleted, else any).
    pub fn by_name(&self, namespace: &str, pod: &str, container: &str) -> Option<Attribution> {
        let mut found: Vec<&(Arc<PodInfo>, Option<Instant>)> = self
            .pods
            .values()
            .filter(|(p, _)| p.namespace == namespace && p.name == pod)
            .collect();
        found.sort_by_key(|(_, deleted)| deleted.is_some());
        found.into_iter().find_map(|(p, _)| {
            let c = p.containers.iter().find(|c| c.name == container)?.clone();
            Some(Attribution {
                pod: p.clone(),
                container: c,
            })
        })
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

/// Whether a pod is on its way out (deleted, finished, or a container
/// terminated): its processes should be scraped now.
pub fn terminating(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return true;
    }
    let status = pod.status.as_ref();
    if status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
    {
        return true;
    }
    status
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
        })
}

/// Keeps `index` in sync with the pods of `node` until the process ends;
/// sends the UID of every pod that starts terminating on `terminating_tx`.
pub async fn watch_pods(
    client: Client,
    node: String,
    index: Arc<RwLock<PodIndex>>,
    terminating_tx: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let api: Api<Pod> = Api::all(client);
    let fields = format!("spec.nodeName={node}");
    let mut backoff = Duration::from_secs(1);
    loop {
        let list = match api.list(&ListParams::default().fields(&fields)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, node = %node, "listing this node's pods failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
        for p in &list.items {
            if terminating(p)
                && let Some(uid) = &p.metadata.uid
            {
                let _ = terminating_tx.send(uid.clone());
            }
        }
        if let Ok(mut idx) = index.write() {
            idx.replace_all(list.items.iter().map(pod_info).collect());
        }
        tracing::debug!(pods = list.items.len(), node = %node, "pods listed");
        loop {
            let wp = WatchParams::default().fields(&fields).timeout(290);
            let stream = match api.watch(&wp, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "pod watch failed; relisting");
                    break;
                }
            };
            let mut stream = stream.boxed();
            let mut relist = false;
            loop {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                        if let Some(v) = &p.metadata.resource_version {
                            rv = v.clone();
                        }
                        if terminating(&p)
                            && let Some(uid) = &p.metadata.uid
                        {
                            let _ = terminating_tx.send(uid.clone());
                        }
                        if let Ok(mut idx) = index.write() {
                            idx.upsert(pod_info(&p));
                        }
                    }
                    Ok(Some(WatchEvent::Deleted(p))) => {
                        if let Some(v) = &p.metadata.resource_version {
                            rv = v.clone();
                        }
                        if let Some(uid) = &p.metadata.uid {
                            let _ = terminating_tx.send(uid.clone());
                            if let Ok(mut idx) = index.write() {
                                idx.upsert(pod_info(&p));
                                idx.delete(uid);
                            }
                        }
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    Ok(Some(WatchEvent::Error(e))) => {
                        // 410 Gone: the resource version is too old.
                        tracing::debug!(code = e.code, message = %e.message, "pod watch error; relisting");
                        relist = true;
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "pod watch stream failed");
                        relist = true;
                        break;
                    }
                }
            }
            if relist {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `crictl inspect` fallback: pod and container from the runtime's
/// labels (`io.kubernetes.pod.name`, …).
pub fn crictl_inspect(crictl: &std::path::Path, id: &str) -> Option<Attribution> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let out = std::process::Command::new(crictl)
        .args(["inspect", "-o", "json", id])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_crictl_inspect(&out.stdout, id)
}

/// Parses `crictl inspect -o json` output.
pub fn parse_crictl_inspect(json: &[u8], id: &str) -> Option<Attribution> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let status = v.get("status")?;
    let labels = status.get("labels")?;
    let annotations = status.get("annotations");
    let label = |k: &str| labels.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let name = label("io.kubernetes.pod.name")?;
    let namespace = label("io.kubernetes.pod.namespace")?;
    let container = label("io.kubernetes.container.name")?;
    let uid = label("io.kubernetes.pod.uid").unwrap_or_default();
    let restart_count = annotations
        .and_then(|a| a.get("io.kubernetes.container.restartCount"))
        .and_then(|x| x.as_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let image = status
        .get("image")
        .and_then(|i| i.get("image"))
        .and_then(|x| x.as_str())
        .or_else(|| status.get("imageRef").and_then(|x| x.as_str()))
        .unwrap_or_default()
        .to_string();
    let c = ContainerInfo {
        name: container,
        image,
        restart_count,
        running: true,
        container_id: id.to_string(),
        ..Default::default()
    };
    Some(Attribution {
        pod: Arc::new(PodInfo {
            namespace,
            name,
            uid,
            containers: vec![c.clone()],
            ..Default::default()
        }),
        container: c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Runtime;

    #[test]
    fn index_finds_containers_by_id() {
        let mut idx = PodIndex::default();
        idx.upsert(PodInfo {
            namespace: "ns".into(),
            name: "web".into(),
            uid: "u1".into(),
            containers: vec![ContainerInfo {
                name: "app".into(),
                container_id: "cri-o://ABCDEF0123456789".into(),
                restart_count: 2,
                ..Default::default()
            }],
            ..Default::default()
        });
        let r = ContainerRef {
            runtime: Runtime::CriO,
            id: "abcdef0123456789".into(),
            pod_uid: None,
        };
        let a = idx.lookup(&r).unwrap();
        assert_eq!(a.pod.name, "web");
        assert_eq!(a.container.restart_count, 2);
        idx.replace_all(Vec::new());
        // Deleted pods stay known for a while (last scrapes).
        assert!(idx.lookup(&r).is_some());
    }

    #[test]
    fn crictl_labels() {
        let json = br#"{"status":{"id":"abc","labels":{"io.kubernetes.pod.name":"p","io.kubernetes.pod.namespace":"n","io.kubernetes.container.name":"c","io.kubernetes.pod.uid":"u"},"annotations":{"io.kubernetes.container.restartCount":"3"},"image":{"image":"quay.io/x:1"}}}"#;
        let a = parse_crictl_inspect(json, "abc").unwrap();
        assert_eq!(
            (
                a.pod.namespace.as_str(),
                a.pod.name.as_str(),
                a.container.name.as_str()
            ),
            ("n", "p", "c")
        );
        assert_eq!(a.container.restart_count, 3);
        assert_eq!(a.container.image, "quay.io/x:1");
        assert!(parse_crictl_inspect(b"{}", "abc").is_none());
    }
}
