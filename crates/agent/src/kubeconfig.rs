//! Finding Kubernetes credentials, and bootstrap mode.
//!
//! In order: `--kubeconfig`; the in-cluster service account (a DaemonSet);
//! the kubelet's own `--kubeconfig` from its command line; then
//! `/var/lib/kubelet/kubeconfig`. On a node that is still bootstrapping
//! none may exist yet: the agent then collects host processes only and
//! keeps looking ([`pod_metadata_loop`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::pods::{PodIndex, node_name_from_api, watch_pods};

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--kubeconfig PATH`.
    Explicit(PathBuf),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST` and the token file).
    InCluster,
    /// The kubelet's `--kubeconfig`.
    Kubelet(PathBuf),
    /// `/var/lib/kubelet/kubeconfig`.
    Default(PathBuf),
}

/// The kubelet's default kubeconfig.
pub const KUBELET_DEFAULT: &str = "/var/lib/kubelet/kubeconfig";
const SA_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// `--kubeconfig` from a NUL-separated command line whose program is named
/// `kubelet` (`--kubeconfig=X` or `--kubeconfig X`).
pub fn kubeconfig_flag(cmdline: &[u8]) -> Option<PathBuf> {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let prog = std::str::from_utf8(args.first()?).ok()?;
    if prog.rsplit('/').next()? != "kubelet" {
        return None;
    }
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = std::str::from_utf8(a).ok()?;
        if let Some(v) = a
            .strip_prefix("--kubeconfig=")
            .or_else(|| a.strip_prefix("-kubeconfig="))
        {
            return Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
        }
        if a == "--kubeconfig" || a == "-kubeconfig" {
            let v = std::str::from_utf8(it.next()?).ok()?;
            return Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
        }
    }
    None
}

/// The kubelet's kubeconfig, from the first `kubelet` process in `proc_root`.
pub fn kubelet_kubeconfig(proc_root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(proc_root)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .find_map(|e| kubeconfig_flag(&std::fs::read(e.path().join("cmdline")).ok()?))
}

/// The first usable source, or `None` (bootstrap mode).
pub fn find(explicit: Option<&Path>, proc_root: &Path) -> Option<Source> {
    if let Some(p) = explicit {
        return p.is_file().then(|| Source::Explicit(p.to_path_buf()));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() && Path::new(SA_TOKEN).is_file() {
        return Some(Source::InCluster);
    }
    if let Some(p) = kubelet_kubeconfig(proc_root)
        && p.is_file()
    {
        return Some(Source::Kubelet(p));
    }
    let d = PathBuf::from(KUBELET_DEFAULT);
    d.is_file().then_some(Source::Default(d))
}

/// A client for `source`.
pub async fn client(source: &Source) -> Result<kube::Client, scrape::Error> {
    let sel = scrape::kube::Selection {
        kubeconfig: match source {
            Source::Explicit(p) | Source::Kubelet(p) | Source::Default(p) => Some(p.clone()),
            Source::InCluster => None,
        },
        ..Default::default()
    };
    scrape::kube::client(&sel).await
}

/// Finds credentials (waiting for them in bootstrap mode), learns this
/// node's name (`node_name`, else a SelfSubjectReview, retried until the
/// API server answers) and keeps `index` in sync with the node's pods.
/// Never returns.
pub async fn pod_metadata_loop(
    explicit: Option<PathBuf>,
    proc_root: PathBuf,
    node_name: Option<String>,
    index: Arc<RwLock<PodIndex>>,
    terminating: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut said_bootstrap = false;
    let source = loop {
        let e = explicit.clone();
        let root = proc_root.clone();
        let found = tokio::task::spawn_blocking(move || find(e.as_deref(), &root))
            .await
            .ok()
            .flatten();
        if let Some(s) = found {
            break s;
        }
        if !said_bootstrap {
            tracing::info!(
                "bootstrap mode: no kubeconfig yet (--kubeconfig, in-cluster, the kubelet's, {KUBELET_DEFAULT}); collecting host processes and looking again every 5 s"
            );
            said_bootstrap = true;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    tracing::info!(?source, "Kubernetes credentials found");
    let mut backoff = Duration::from_secs(1);
    let (client, node) = loop {
        match client(&source).await {
            Ok(c) => {
                let node = match &node_name {
                    Some(n) => Ok(n.clone()),
                    None => node_name_from_api(&c).await,
                };
                match node {
                    Ok(n) => break (c, n),
                    Err(e) => tracing::warn!(error = %e, "cannot learn this node's name yet"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot build a Kubernetes client yet"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    };
    if let Ok(mut idx) = index.write() {
        idx.node = Some(node.clone());
    }
    tracing::info!(node = %node, "watching this node's pods");
    watch_pods(client, node, index, terminating).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_flag_forms() {
        assert_eq!(
            kubeconfig_flag(b"/usr/bin/kubelet\0--v=2\0--kubeconfig=/etc/k.conf\0"),
            Some(PathBuf::from("/etc/k.conf"))
        );
        assert_eq!(
            kubeconfig_flag(b"kubelet\0--kubeconfig\0/var/lib/kubelet/kubeconfig\0"),
            Some(PathBuf::from("/var/lib/kubelet/kubeconfig"))
        );
        assert_eq!(
            kubeconfig_flag(b"/usr/bin/notkubelet\0--kubeconfig=/x\0"),
            None
        );
        assert_eq!(kubeconfig_flag(b"kubelet\0--kubeconfig\0"), None);
        assert_eq!(kubeconfig_flag(b""), None);
    }

    #[test]
    fn finds_the_kubelets_kubeconfig_in_a_proc_tree() {
        let root = tempfile::tempdir().unwrap();
        let kc = root.path().join("kc");
        std::fs::write(&kc, "apiVersion: v1\n").unwrap();
        let p = root.path().join("proc");
        std::fs::create_dir_all(p.join("17")).unwrap();
        std::fs::create_dir_all(p.join("self")).unwrap();
        std::fs::write(
            p.join("17/cmdline"),
            format!("/usr/bin/kubelet\0--kubeconfig={}\0", kc.display()),
        )
        .unwrap();
        assert_eq!(kubelet_kubeconfig(&p), Some(kc.clone()));
        // An explicit path wins, and waits while it does not exist.
        assert_eq!(find(Some(&root.path().join("missing")), &p), None);
        assert_eq!(find(Some(&kc), &p), Some(Source::Explicit(kc)));
    }
}
