//! Host daemons of every node (kubelet, CRI-O, anything on the node's own
//! network) through the API server's node `proxy` subresource
//! (`GET /api/v1/nodes/NODE:PORT/proxy/…`): `collect --kube --nodes`, for
//! users who cannot run the agent on the nodes.
//!
//! The API server resolves `NODE` to the node's address (its
//! `--kubelet-preferred-address-types`, usually the InternalIP) and opens a
//! plain HTTP connection to `PORT` there. Needs `list` on `nodes` and `get`
//! on `nodes/proxy` (`create` for `reset`) — a powerful grant: `nodes/proxy`
//! also reaches the kubelet's own API.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::error::{Error, TransportError};
use crate::transport::{RawRequest, RawResponse, Transport, segment, send_through_api};

/// One node, as far as collection cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// The InternalIP (else the first address), for messages.
    pub address: Option<String>,
    /// The `Ready` condition: `None` when the node reports none.
    pub ready: Option<bool>,
}

/// Extracts what collection needs from a Node object.
pub fn node_info(node: &Node) -> NodeInfo {
    let status = node.status.as_ref();
    let addresses = status
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    let address = addresses
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .or_else(|| addresses.first())
        .map(|a| a.address.clone());
    let ready = status
        .and_then(|s| s.conditions.as_deref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status == "True");
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        address,
        ready,
    }
}

/// Lists the cluster's nodes, sorted by name.
pub async fn list_nodes(client: &Client) -> Result<Vec<NodeInfo>, Error> {
    let api: Api<Node> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Kube {
            context: "list nodes".into(),
            source: Box::new(e),
        })?;
    let mut out: Vec<NodeInfo> = list.items.iter().map(node_info).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Through the API server's node proxy to `port` on `node`.
#[derive(Clone)]
pub struct KubeNodeProxy {
    pub client: Client,
    pub node: String,
    pub port: u16,
}

impl std::fmt::Debug for KubeNodeProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KubeNodeProxy({})", self.describe())
    }
}

impl Transport for KubeNodeProxy {
    fn probe_with_get(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("node {} port {} (API node proxy)", self.node, self.port)
    }

    fn send(&self, req: RawRequest) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        let uri = format!(
            "/api/v1/nodes/{}:{}/proxy{}",
            segment(&self.node),
            self.port,
            req.path
        );
        send_through_api(&self.client, uri, req)
    }
}

/// A transport to `port` of `node`.
pub fn transport(client: &Client, node: &str, port: u16) -> Arc<dyn Transport> {
    Arc::new(KubeNodeProxy {
        client: client.clone(),
        node: node.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_fields() {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "worker-1"},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "worker-1"},
                    {"type": "InternalIP", "address": "10.0.0.7"}
                ],
                "conditions": [{"type": "Ready", "status": "False"}]
            }
        }))
        .unwrap();
        let i = node_info(&n);
        assert_eq!(i.name, "worker-1");
        assert_eq!(i.address.as_deref(), Some("10.0.0.7"));
        assert_eq!(i.ready, Some(false));
        assert_eq!(node_info(&Node::default()).ready, None);
    }
}
