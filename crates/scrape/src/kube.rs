//! Kubernetes targets: list pods (kubeconfig or in-cluster configuration),
//! decide which ports to probe in each, reach them through the API server
//! (pod `proxy` subresource, or a port-forward), and attribute each coverage
//! server found to one of the pod's containers.
//!
//! Pods normally have their own network namespace, shared by their
//! containers: instrumented containers take 53700, 53701, … in start order.
//! hostNetwork pods share the node's namespace with the kubelet and other
//! hostNetwork pods, so the whole range is probed and a server is kept only
//! when its binary matches one of the pod's containers.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::error::Error;
use crate::protocol::Identity;
use crate::transport::{KubePortForward, KubeProxy, Transport};

/// How to reach pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// `GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/...` (needs `pods/proxy`).
    #[default]
    Proxy,
    /// A port-forward per request (needs `pods/portforward`).
    PortForward,
}

/// Which pods to collect from.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// `None`: the kubeconfig context's namespace.
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    /// A label selector (`app=x,tier!=db`).
    pub selector: Option<String>,
    /// Explicit pod names (in the namespace).
    pub pods: Vec<String>,
}

/// One container of a pod, as far as collection cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    /// Base names of `command[0]` and `args[0]`, when set.
    pub exe_names: Vec<String>,
    /// `COVERAGE_PORT` from the container's env, when set literally.
    pub coverage_port: Option<u16>,
    pub restart_count: i32,
    pub running: bool,
    /// `status.containerStatuses[].containerID` (`cri-o://…`,
    /// `containerd://…`, `docker://…`), empty before the container started.
    pub container_id: String,
}

/// One pod, as far as collection cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub host_network: bool,
    pub phase: String,
    pub pod_ip: Option<String>,
    pub containers: Vec<ContainerInfo>,
    pub owner_references: Vec<crate::output::OwnerRef>,
}

/// Builds a client from `--kubeconfig`/`--context`, else `KUBECONFIG` /
/// `~/.kube/config`, else the in-cluster service account. It speaks HTTP/2
/// when the API server offers it (see [`client_for`]).
pub async fn client(sel: &Selection) -> Result<Client, Error> {
    client_for(sel, Via::Proxy).await
}

/// [`client`] for reaching pods `via`: with [`Via::Proxy`] the client offers
/// HTTP/2 by ALPN, so all requests share one TLS connection (HTTP/1.1 needs
/// one connection per request in flight, and the API server spends CPU on
/// each handshake); with [`Via::PortForward`] it is kube's own HTTP/1.1
/// client, whose protocol upgrade port-forwarding needs.
pub async fn client_for(sel: &Selection, via: Via) -> Result<Client, Error> {
    let opts = KubeConfigOptions {
        context: sel.context.clone(),
        ..Default::default()
    };
    let config_error = |from: String| {
        move |e: kube::config::KubeconfigError| Error::KubeConfig {
            from,
            source: Box::new(e),
        }
    };
    let config = match &sel.kubeconfig {
        Some(path) => {
            let from = path.display().to_string();
            let kc = Kubeconfig::read_from(path).map_err(config_error(from.clone()))?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(config_error(from))?
        }
        None if sel.context.is_some() => Config::from_kubeconfig(&opts)
            .await
            .map_err(config_error("$KUBECONFIG or ~/.kube/config".into()))?,
        None => Config::infer().await.map_err(|e| Error::KubeConfig {
            from: "$KUBECONFIG, ~/.kube/config or the in-cluster service account".into(),
            source: Box::new(e),
        })?,
    };
    let mut config = config;
    // kube's own retry layer would resend 503 answers with backoff: the API
    // proxy answers 503 for every port where nothing listens, and probes
    // have their own timeouts and retries.
    config.default_retry = false;
    let built = match via {
        Via::Proxy => multiplexed(config),
        Via::PortForward => Client::try_from(config),
    };
    built.map_err(|e| Error::KubeConfig {
        from: "the client built from it".into(),
        source: Box::new(e),
    })
}

/// kube's client stack (base URI, authentication, extra headers) over a
/// connector that offers `h2` and `http/1.1` by ALPN: hyper keeps one
/// HTTP/2 connection and multiplexes every request over it when the server
/// picks `h2`, and falls back to HTTP/1.1 otherwise.
fn multiplexed(config: Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    let mut tls = config.rustls_client_config()?;
    tls.alpn_protocols.clear();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(kube::client::RustlsTlsError::InvalidServerName)
                .map_err(kube::Error::RustlsTls)?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let https = builder.enable_all_versions().wrap_connector(http);
    let hyper_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper_client);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace).build())
}

fn base_name(s: &str) -> Option<String> {
    let b = s.rsplit('/').next()?.trim();
    (!b.is_empty()).then(|| b.to_string())
}

/// Extracts what collection needs from a Pod object.
pub fn pod_info(pod: &Pod) -> PodInfo {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let statuses = status.and_then(|s| s.container_statuses.as_ref());
    let containers = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let st = statuses.and_then(|v| v.iter().find(|s| s.name == c.name));
            let mut exe_names = Vec::new();
            if let Some(b) = c
                .command
                .as_ref()
                .and_then(|v| v.first())
                .and_then(|s| base_name(s))
            {
                exe_names.push(b);
            }
            if let Some(b) = c
                .args
                .as_ref()
                .and_then(|v| v.first())
                .and_then(|s| base_name(s))
            {
                exe_names.push(b);
            }
            let coverage_port = c
                .env
                .as_ref()
                .and_then(|env| env.iter().find(|e| e.name == "COVERAGE_PORT"))
                .and_then(|e| e.value.as_deref())
                .and_then(|v| v.trim().parse().ok());
            ContainerInfo {
                name: c.name.clone(),
                image: st
                    .map(|s| s.image.clone())
                    .filter(|s| !s.is_empty())
                    .or_else(|| c.image.clone())
                    .unwrap_or_default(),
                exe_names,
                coverage_port,
                restart_count: st.map_or(0, |s| s.restart_count),
                running: st
                    .and_then(|s| s.state.as_ref())
                    .and_then(|s| s.running.as_ref())
                    .is_some(),
                container_id: st.and_then(|s| s.container_id.clone()).unwrap_or_default(),
            }
        })
        .collect();
    PodInfo {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        pod_ip: status.and_then(|s| s.pod_ip.clone()),
        containers,
        owner_references: meta
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|o| crate::output::OwnerRef {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                name: o.name.clone(),
                uid: o.uid.clone(),
                controller: o.controller,
            })
            .collect(),
    }
}

/// Lists the selected pods.
pub async fn list_pods(client: &Client, sel: &Selection) -> Result<Vec<PodInfo>, Error> {
    let ns = sel
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let kerr = |context: String| {
        move |e: kube::Error| Error::Kube {
            context,
            source: Box::new(e),
        }
    };
    let mut out = Vec::new();
    if !sel.pods.is_empty() {
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        for name in &sel.pods {
            let pod = api
                .get(name)
                .await
                .map_err(kerr(format!("get pod {ns}/{name}")))?;
            out.push(pod_info(&pod));
        }
        return Ok(out);
    }
    let (api, what): (Api<Pod>, String) = if sel.all_namespaces {
        (
            Api::all(client.clone()),
            "list pods in all namespaces".into(),
        )
    } else {
        (
            Api::namespaced(client.clone(), &ns),
            format!("list pods in namespace {ns}"),
        )
    };
    let mut lp = ListParams::default();
    if let Some(s) = &sel.selector {
        lp = lp.labels(s);
    }
    let list = api.list(&lp).await.map_err(kerr(what))?;
    out.extend(list.items.iter().map(pod_info));
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// Ports to probe in a pod: the whole range for hostNetwork pods; else one
/// port per container from the start of the range, plus any literal
/// `COVERAGE_PORT`s.
pub fn ports_to_probe(pod: &PodInfo, range: &RangeInclusive<u16>) -> Vec<u16> {
    let mut ports: Vec<u16> = if pod.host_network {
        range.clone().collect()
    } else {
        range.clone().take(pod.containers.len().max(1)).collect()
    };
    for c in &pod.containers {
        if let Some(p) = c.coverage_port
            && !ports.contains(&p)
        {
            ports.push(p);
        }
    }
    ports.sort_unstable();
    ports
}

/// The container a server found on `port` belongs to: the one whose
/// `COVERAGE_PORT` is that port, else whose command (or name) is the
/// binary, else the only container of a pod with its own network.
pub fn match_container<'a>(
    pod: &'a PodInfo,
    id: &Identity,
    port: u16,
) -> Option<&'a ContainerInfo> {
    pod.containers
        .iter()
        .find(|c| c.coverage_port == Some(port))
        .or_else(|| {
            pod.containers
                .iter()
                .find(|c| c.exe_names.iter().any(|n| n == &id.binary))
        })
        .or_else(|| pod.containers.iter().find(|c| c.name == id.binary))
        .or_else(|| (!pod.host_network && pod.containers.len() == 1).then(|| &pod.containers[0]))
}

/// A transport to `port` of `pod`.
pub fn transport(client: &Client, via: Via, pod: &PodInfo, port: u16) -> Arc<dyn Transport> {
    match via {
        Via::Proxy => Arc::new(KubeProxy {
            client: client.clone(),
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            port,
        }),
        Via::PortForward => Arc::new(KubePortForward {
            client: client.clone(),
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            port,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(host: bool, containers: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            namespace: "ns".into(),
            name: "p".into(),
            host_network: host,
            containers: containers
                .iter()
                .map(|(n, cmd)| ContainerInfo {
                    name: n.to_string(),
                    exe_names: vec![cmd.to_string()],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn id(binary: &str) -> Identity {
        Identity {
            pid: 1,
            binary: binary.into(),
            headers: Default::default(),
        }
    }

    #[test]
    fn ports() {
        let r = crate::protocol::default_ports();
        assert_eq!(ports_to_probe(&pod(false, &[("a", "a")]), &r), vec![53700]);
        assert_eq!(
            ports_to_probe(&pod(false, &[("a", "a"), ("b", "b")]), &r),
            vec![53700, 53701]
        );
        assert_eq!(ports_to_probe(&pod(true, &[("a", "a")]), &r).len(), 50);
    }

    #[test]
    fn matching() {
        let p = pod(true, &[("etcd", "etcd"), ("metrics", "exporter")]);
        assert_eq!(
            match_container(&p, &id("exporter"), 53702).map(|c| c.name.as_str()),
            Some("metrics")
        );
        assert!(
            match_container(&p, &id("kubelet"), 53700).is_none(),
            "host servers of other processes are not the pod's"
        );
        let single = pod(false, &[("app", "/bin/sh")]);
        assert_eq!(
            match_container(&single, &id("server"), 53700).map(|c| c.name.as_str()),
            Some("app")
        );
    }
}
