//! Reaching a coverage server from inside its network namespace.
//!
//! A pod's server may be unreachable from the host: its pod IP not routable
//! from here, or the server bound to loopback inside the pod
//! (`COVERAGE_BIND=127.0.0.1`). [`InNetns`] opens each connection on a
//! short-lived dedicated thread that first joins the namespace
//! (`setns(2)` on an open `/proc/PID/ns/net`), so the socket lives in the
//! pod's namespace while the rest of the program stays where it is. The
//! namespace file is opened once, when the target is found: if the process
//! exits and its PID is reused, requests still go to the original namespace
//! (and fail there), never to another process's.

use std::fmt;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::error::TransportError;
use crate::transport::{RawRequest, RawResponse, Transport, chain, narrowed, read_body};

/// A coverage server at `addr` inside the network namespace `ns`.
#[derive(Clone)]
pub struct InNetns {
    ns: Arc<File>,
    label: String,
    addr: SocketAddr,
    connect_timeout: Duration,
    max_body: u64,
}

impl fmt::Debug for InNetns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InNetns({})", self.describe())
    }
}

impl InNetns {
    /// Opens the namespace file now (`/proc/PID/ns/net`); `label` names the
    /// namespace in messages (e.g. `pid 1234`).
    pub fn open(
        ns_path: &Path,
        label: impl Into<String>,
        addr: SocketAddr,
        connect_timeout: Duration,
    ) -> std::io::Result<InNetns> {
        let ns = File::open(ns_path)?;
        Ok(InNetns {
            ns: Arc::new(ns),
            label: label.into(),
            addr,
            connect_timeout,
            max_body: u64::MAX,
        })
    }

    /// Refuses answers larger than `limit` bytes.
    pub fn with_max_body(mut self, limit: u64) -> InNetns {
        self.max_body = limit;
        self
    }

    /// Connects from a thread that joined the namespace.
    async fn connect(&self) -> Result<tokio::net::TcpStream, TransportError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ns = self.ns.clone();
        let addr = self.addr;
        let timeout = self.connect_timeout;
        std::thread::Builder::new()
            .name("netns-connect".into())
            .spawn(move || {
                let result = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| TransportError::other(format!("setns: {e}")))
                    .and_then(|()| {
                        let s =
                            std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
                                match e.kind() {
                                    std::io::ErrorKind::TimedOut => TransportError {
                                        kind: crate::error::TransportErrorKind::Timeout,
                                        message: format!("connect {addr}: {e}"),
                                    },
                                    _ => TransportError::connect(format!("connect {addr}: {e}")),
                                }
                            })?;
                        s.set_nonblocking(true)
                            .map_err(|e| TransportError::other(e.to_string()))?;
                        let _ = s.set_nodelay(true);
                        Ok(s)
                    });
                // The thread (and its namespace) ends here; the socket stays
                // in the namespace it was created in.
                let _ = tx.send(result);
            })
            .map_err(|e| TransportError::other(format!("starting a thread: {e}")))?;
        let std_stream = rx
            .await
            .map_err(|_| TransportError::other("the connecting thread died"))??;
        tokio::net::TcpStream::from_std(std_stream)
            .map_err(|e| TransportError::other(format!("registering the socket: {e}")))
    }
}

impl Transport for InNetns {
    fn describe(&self) -> String {
        format!("http://{} (netns of {})", self.addr, self.label)
    }

    fn send(&self, req: RawRequest) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            let stream = self.connect().await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| TransportError::connect(format!("HTTP handshake: {}", chain(&e))))?;
            let conn_task = tokio::spawn(conn);
            let mut builder = Request::builder()
                .method(req.method)
                .uri(req.path.as_str())
                .header(http::header::HOST, self.addr.to_string());
            if let Some(h) = builder.headers_mut() {
                h.extend(req.headers);
            }
            let request = builder
                .body(Full::new(Bytes::new()))
                .map_err(|e| TransportError::other(format!("building the request: {e}")))?;
            let result = async {
                let resp = sender
                    .send_request(request)
                    .await
                    .map_err(|e| TransportError::other(chain(&e)))?;
                let (parts, body) = resp.into_parts();
                let body = read_body(body, &narrowed(&req.limit, self.max_body)).await?;
                Ok(RawResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            }
            .await;
            drop(sender);
            conn_task.abort();
            result
        })
    }
}
