//! How requests reach a coverage server: directly over TCP, through the
//! Kubernetes API server's pod `proxy` subresource, or through a
//! port-forward opened by the API server.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;

use crate::budget::BodyLimit;
use crate::error::{TransportError, UrlError};

/// One HTTP request to a coverage server; `path` includes any query.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// How much of the answer may be read (see [`crate::budget`]).
    pub limit: BodyLimit,
}

/// The answer, body fully read (still encoded as sent).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A way to send requests to one coverage server.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Where this transport leads, for messages (URL, `ns/pod:port`, …).
    fn describe(&self) -> String;
    /// Whether identity probes use `GET /health` instead of `HEAD /`. The
    /// identity headers come with every answer; through the API server a
    /// plain GET is the verb every proxy and RBAC setup allows.
    fn probe_with_get(&self) -> bool {
        false
    }
    /// Sends one request and reads the whole answer.
    fn send(&self, req: RawRequest) -> BoxFuture<'_, Result<RawResponse, TransportError>>;
}

/// Reads a whole body, stopping as soon as it exceeds `limit` (a hostile
/// server may announce nothing and send without end).
pub async fn read_body<B>(body: B, limit: &BodyLimit) -> Result<Bytes, TransportError>
where
    B: hyper::body::Body + Send + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = body;
    // Room for the announced length, when it is within the limit.
    let hint = hyper::body::Body::size_hint(&body)
        .exact()
        .filter(|n| *n <= limit.max)
        .unwrap_or(0);
    let mut buf = bytes::BytesMut::with_capacity(hint.min(limit.max) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            TransportError::other(format!("reading the answer: {}", chain(e.as_ref())))
        })?;
        if let Ok(data) = frame.into_data() {
            use bytes::Buf;
            let total = (buf.len() + data.remaining()) as u64;
            limit.check(total, 0).map_err(TransportError::exceeded)?;
            bytes::BufMut::put(&mut buf, data);
        }
    }
    Ok(buf.freeze())
}

/// Reads a whole body of at most `limit` bytes, outside any shared budget
/// (transports that keep their own per-target limit, such as the agent's).
pub async fn read_body_limited<B>(body: B, limit: u64) -> Result<Bytes, TransportError>
where
    B: hyper::body::Body + Send + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    read_body(
        body,
        &BodyLimit {
            max: limit,
            reservation: None,
        },
    )
    .await
}

/// The request's limit, narrowed to a transport's own cap.
pub(crate) fn narrowed(limit: &BodyLimit, cap: u64) -> BodyLimit {
    BodyLimit {
        max: limit.max.min(cap),
        reservation: limit.reservation.clone(),
    }
}

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// `url` with any `user:password@` replaced by `***@`, for messages and
/// metadata (what a user typed may carry credentials).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Plain HTTP to `http://host:port[/prefix]`.
#[derive(Clone)]
pub struct Direct {
    /// The URL without credentials.
    base: Uri,
    /// `Authorization: Basic …` from `user:password@` in the URL.
    basic_auth: Option<http::HeaderValue>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The transport's own cap on an answer (the request's limit applies too).
    max_body: u64,
}

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Direct").field("base", &self.base).finish()
    }
}

impl Direct {
    /// A transport to `base` (an `http://` URL; a path is used as a prefix).
    pub fn new(base: &str, connect_timeout: Duration) -> Result<Direct, UrlError> {
        let base: Uri = base
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Syntax {
                url: redact_url(base),
                reason: e.to_string(),
            })?;
        match base.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(UrlError::Scheme {
                    url: redact_url(&base.to_string()),
                    scheme: other.to_string(),
                });
            }
            None => {
                return Err(UrlError::NoScheme {
                    url: redact_url(&base.to_string()),
                });
            }
        }
        if base.host().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost {
                url: redact_url(&base.to_string()),
            });
        }
        let (base, basic_auth) = split_credentials(base)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Direct {
            base,
            basic_auth,
            client,
            max_body: u64::MAX,
        })
    }

    /// Refuses answers larger than `limit` bytes, whatever the request allows.
    pub fn with_max_body(mut self, limit: u64) -> Direct {
        self.max_body = limit;
        self
    }

    /// The base URL.
    pub fn base(&self) -> &Uri {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        let base = self.base.to_string();
        format!("{}{}", base.trim_end_matches('/'), path)
    }
}

/// Takes `user:password@` out of a URL, as a Basic authorization header.
fn split_credentials(uri: Uri) -> Result<(Uri, Option<http::HeaderValue>), UrlError> {
    let Some(auth) = uri.authority() else {
        return Ok((uri, None));
    };
    let Some((userinfo, hostport)) = auth.as_str().rsplit_once('@') else {
        return Ok((uri, None));
    };
    let hostport = hostport.to_string();
    let token = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        percent_decode(userinfo),
    );
    let syntax = |reason: String| UrlError::Syntax {
        url: redact_url(&uri.to_string()),
        reason,
    };
    let header = http::HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| syntax("the credentials cannot be sent as a header".into()))?;
    let authority = hostport
        .parse()
        .map_err(|e| syntax(format!("not a URL host: {e}")))?;
    let url = redact_url(&uri.to_string());
    let mut parts = uri.into_parts();
    parts.authority = Some(authority);
    let uri = Uri::from_parts(parts).map_err(|e| UrlError::Syntax {
        url,
        reason: e.to_string(),
    })?;
    Ok((uri, Some(header)))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

impl Transport for Direct {
    fn describe(&self) -> String {
        self.base.to_string().trim_end_matches('/').to_string()
    }

    fn send(&self, req: RawRequest) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            let mut builder = Request::builder()
                .method(req.method)
                .uri(self.url(&req.path));
            if let Some(h) = builder.headers_mut() {
                h.extend(req.headers);
                if let Some(basic) = &self.basic_auth
                    && !h.contains_key(http::header::AUTHORIZATION)
                {
                    h.insert(http::header::AUTHORIZATION, basic.clone());
                }
            }
            let request = builder
                .body(Full::new(Bytes::new()))
                .map_err(|e| TransportError::other(format!("building the request: {e}")))?;
            let resp = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    TransportError::connect(chain(&e))
                } else {
                    TransportError::other(chain(&e))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = read_body(body, &narrowed(&req.limit, self.max_body)).await?;
            Ok(RawResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
    }
}

/// Through the API server: `/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH`.
#[derive(Clone)]
pub struct KubeProxy {
    pub client: ::kube::Client,
    pub namespace: String,
    pub pod: String,
    pub port: u16,
}

impl fmt::Debug for KubeProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KubeProxy({})", self.describe())
    }
}

/// Percent-encodes one path segment (pod and namespace names are DNS labels,
/// but a hostile name must not change the API path).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Maps an API-server error answer of the proxy (no coverage headers) to a
/// transport error when it means "nothing listens on that port".
fn proxy_refused(resp: &RawResponse) -> Option<TransportError> {
    if resp.headers.contains_key(crate::protocol::H_SERVER) {
        return None;
    }
    if matches!(resp.status.as_u16(), 502 | 503) {
        let text = String::from_utf8_lossy(&resp.body);
        if text.contains("connection refused")
            || text.contains("connect: ")
            || text.contains("no route")
        {
            return Some(TransportError::connect(format!(
                "API server proxy: HTTP {}: {}",
                resp.status.as_u16(),
                crate::protocol::short_text(&resp.body)
            )));
        }
    }
    None
}

impl Transport for KubeProxy {
    fn probe_with_get(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("{}/{}:{} (API proxy)", self.namespace, self.pod, self.port)
    }

    fn send(&self, req: RawRequest) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        let uri = format!(
            "/api/v1/namespaces/{}/pods/{}:{}/proxy{}",
            segment(&self.namespace),
            segment(&self.pod),
            self.port,
            req.path
        );
        Box::pin(send_through_api(&self.client, uri, req))
    }
}

/// Sends `req` to `uri`, a `proxy` subresource of the API server (pods or
/// nodes); the API server's own "nothing listens there" answers become
/// connection errors.
pub(crate) fn send_through_api(
    client: &::kube::Client,
    uri: String,
    req: RawRequest,
) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
    Box::pin(async move {
        let mut builder = Request::builder().method(req.method).uri(uri);
        if let Some(h) = builder.headers_mut() {
            h.extend(req.headers);
        }
        let request = builder
            .body(::kube::client::Body::empty())
            .map_err(|e| TransportError::other(format!("building the request: {e}")))?;
        let resp = client.send(request).await.map_err(|e| match &e {
            ::kube::Error::HyperError(h) if h.is_timeout() => TransportError {
                kind: crate::error::TransportErrorKind::Timeout,
                message: chain(&e),
            },
            _ => TransportError::other(chain(&e)),
        })?;
        let (parts, body) = resp.into_parts();
        let body = read_body(body, &req.limit).await?;
        let raw = RawResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        match proxy_refused(&raw) {
            Some(err) => Err(err),
            None => Ok(raw),
        }
    })
}

/// Through a port-forward stream opened by the API server (one per request).
#[derive(Clone)]
pub struct KubePortForward {
    pub client: ::kube::Client,
    pub namespace: String,
    pub pod: String,
    pub port: u16,
}

impl fmt::Debug for KubePortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KubePortForward({})", self.describe())
    }
}

impl Transport for KubePortForward {
    fn probe_with_get(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "{}/{}:{} (port-forward)",
            self.namespace, self.pod, self.port
        )
    }

    fn send(&self, req: RawRequest) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            let pods: ::kube::Api<Pod> =
                ::kube::Api::namespaced(self.client.clone(), &self.namespace);
            let mut pf = pods
                .portforward(&self.pod, &[self.port])
                .await
                .map_err(|e| {
                    TransportError::connect(format!("opening the port-forward: {}", chain(&e)))
                })?;
            let stream = pf
                .take_stream(self.port)
                .ok_or_else(|| TransportError::other("the port-forward has no stream"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| {
                    TransportError::connect(format!("HTTP over the port-forward: {}", chain(&e)))
                })?;
            let conn_task = tokio::spawn(conn);
            let mut builder = Request::builder()
                .method(req.method)
                .uri(req.path.as_str())
                .header(http::header::HOST, format!("localhost:{}", self.port));
            if let Some(h) = builder.headers_mut() {
                h.extend(req.headers);
            }
            let request = builder
                .body(Full::new(Bytes::new()))
                .map_err(|e| TransportError::other(format!("building the request: {e}")))?;
            let result = async {
                let resp = sender.send_request(request).await.map_err(|e| {
                    // A refused port surfaces as a closed stream.
                    TransportError::connect(format!("request over the port-forward: {}", chain(&e)))
                })?;
                let (parts, body) = resp.into_parts();
                let body = read_body(body, &req.limit).await?;
                Ok(RawResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            }
            .await;
            drop(sender);
            conn_task.abort();
            pf.abort();
            result
        })
    }
}
