//! The coverage-server protocol, client side.
//!
//! * Ports: from `COVERAGE_PORT` (default [`DEFAULT_PORT`]), up to
//!   [`PORT_TRIES`] consecutive ports.
//! * `HEAD` on any path answers with the identity headers only
//!   (`X-Art-Coverage-Server: 1`, `-Pid`, `-Binary`, and optionally
//!   `-Source-Commit`, `-Source-Url`, `-Software-Group`, `-Software-Key`).
//! * `GET /coverage` answers JSON `{meta_filename, meta_data, counters_filename,
//!   counters_data, timestamp}` (data base64); `?nometa=1` omits the meta data.
//!   Gzip when `Accept-Encoding` allows it. covfleet also asks for the
//!   compact form ([`crate::wire`]) and takes whichever the server sends.
//! * `POST /coverage/reset` zeroes the counters; covfleet sends
//!   `X-Coverage-Client: covfleet` with it, which the server requires so
//!   that a web page cannot reset counters.
//! * A binary not built with `-cover` answers `/coverage` with a non-200
//!   status and a message; an optional bearer token guards the data.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::budget::{BodyLimit, Limits, Reservation, format_size};
use crate::error::{Error, HeaderError, TransportError, TransportErrorKind};
use crate::transport::{RawRequest, RawResponse, Transport};

/// First port a coverage server tries.
pub const DEFAULT_PORT: u16 = 53700;
/// How many consecutive ports a server tries.
pub const PORT_TRIES: u16 = 50;
/// The header every coverage server sends.
pub const H_SERVER: &str = "x-art-coverage-server";
/// The server's PID (in its own PID namespace).
pub const H_PID: &str = "x-art-coverage-pid";
/// The base name of the server's executable.
pub const H_BINARY: &str = "x-art-coverage-binary";
const H_PREFIX: &str = "x-art-coverage-";

/// The default port range, `53700..=53749`.
pub fn default_ports() -> std::ops::RangeInclusive<u16> {
    DEFAULT_PORT..=DEFAULT_PORT + PORT_TRIES - 1
}

/// How requests are made: timeouts, retries, token.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Limit for one request (connect + answer).
    pub timeout: Duration,
    /// Extra attempts after a failed one (connection errors, timeouts, 502-504).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Bearer token sent as `Authorization: Bearer …`.
    pub token: Option<String>,
    /// Size limits of answers and the shared memory budget.
    pub limits: Limits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(250),
            token: None,
            limits: Limits::default(),
        }
    }
}

/// Who answered: the identity headers of a coverage server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `X-Art-Coverage-Pid` (the PID inside the server's PID namespace).
    pub pid: u32,
    /// `X-Art-Coverage-Binary`.
    pub binary: String,
    /// Every `X-Art-Coverage-*` header, keyed by the lowercase_underscore
    /// name without the prefix (`source_commit`, `pid`, `binary`, …).
    pub headers: BTreeMap<String, String>,
}

impl Identity {
    /// Reads the identity headers; `None` when this is no coverage server.
    pub fn from_headers(h: &HeaderMap) -> Result<Option<Identity>, HeaderError> {
        let Some(server) = h.get(H_SERVER) else {
            return Ok(None);
        };
        if server.as_bytes().trim_ascii() != b"1" {
            return Err(HeaderError::Server {
                header: H_SERVER,
                value: String::from_utf8_lossy(server.as_bytes()).into_owned(),
            });
        }
        let text = |name: &str| {
            h.get(name)
                .map(|v| printable(v.as_bytes()).trim().to_string())
        };
        let pid = text(H_PID).ok_or(HeaderError::Missing { header: H_PID })?;
        let pid: u32 = pid.parse().map_err(|_| HeaderError::Pid {
            header: H_PID,
            value: pid.clone(),
        })?;
        let binary = text(H_BINARY).unwrap_or_default();
        let mut headers = BTreeMap::new();
        for (name, value) in h {
            if let Some(rest) = name.as_str().strip_prefix(H_PREFIX) {
                let key = rest.replace('-', "_");
                headers.insert(key, printable(value.as_bytes()).trim().to_string());
            }
        }
        Ok(Some(Identity {
            pid,
            binary,
            headers,
        }))
    }
}

/// The result of an identity probe.
#[derive(Debug, Clone)]
pub enum Probe {
    /// A coverage server answered.
    Coverage(Identity),
    /// Something answered HTTP without being a usable coverage server.
    NotCoverage {
        /// HTTP status of the answer.
        status: u16,
        /// Why it was not accepted.
        reason: String,
    },
}

/// One `/coverage` answer, decoded and checked.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The meta-data file hash (from the counter file's header).
    pub hash: covdata::Hash,
    /// `covmeta.<hash>` bytes, unless fetched with `nometa`.
    pub meta: Option<Vec<u8>>,
    /// One complete counter file.
    pub counters: Vec<u8>,
    /// The counter file name the server chose.
    pub counters_filename: String,
    /// The server's timestamp field, as sent.
    pub timestamp: Option<serde_json::Value>,
    /// The identity headers of this answer, when present.
    pub identity: Option<Identity>,
    /// Whether the server answered in the compact form ([`crate::wire`])
    /// rather than JSON.
    pub compact: bool,
    /// The share of the memory budget this snapshot holds (given back when
    /// the snapshot is dropped).
    pub memory: Option<Arc<std::sync::Mutex<Reservation>>>,
}

/// A coverage server reached through one transport, with request options.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Label for messages (the transport's description unless overridden).
    pub label: String,
    pub transport: Arc<dyn Transport>,
}

impl Endpoint {
    pub fn new(transport: Arc<dyn Transport>) -> Endpoint {
        Endpoint {
            label: transport.describe(),
            transport,
        }
    }
}

/// Text from a server made safe to print: control characters (C0 and C1,
/// which carry terminal escape sequences) become `?`.
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() && c != ' ' { '?' } else { c })
        .collect()
}

/// First 200 characters of a body, on one line, without control characters.
pub fn short_text(body: &[u8]) -> String {
    let head = &body[..body.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let one = printable(one.as_bytes());
    if one.chars().count() > 200 {
        format!("{}…", one.chars().take(200).collect::<String>())
    } else {
        one
    }
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// Largest answer to a probe or a reset (identity headers and a message).
const SMALL_ANSWER: u64 = 1 << 20;

async fn request(
    ep: &Endpoint,
    opts: &ClientOptions,
    method: Method,
    path: &str,
    extra: &[(&'static str, &'static str)],
    limit: BodyLimit,
) -> Result<RawResponse, Error> {
    let mut headers = HeaderMap::new();
    if let Some(tok) = &opts.token {
        let v = HeaderValue::from_str(&format!("Bearer {tok}")).map_err(|_| Error::Transport {
            target: ep.label.clone(),
            method: method.to_string(),
            path: path.to_string(),
            source: TransportError::other("the token contains characters not allowed in a header"),
        })?;
        headers.insert(http::header::AUTHORIZATION, v);
    }
    for (name, value) in extra {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    let mut attempt = 0;
    loop {
        let req = RawRequest {
            method: method.clone(),
            path: path.to_string(),
            headers: headers.clone(),
            limit: limit.clone(),
        };
        let outcome = tokio::time::timeout(opts.timeout, ep.transport.send(req)).await;
        let last = attempt >= opts.retries;
        let timeout_err = || Error::Timeout {
            target: ep.label.clone(),
            method: method.to_string(),
            path: path.to_string(),
            timeout: opts.timeout,
        };
        match outcome {
            Ok(Ok(resp)) if last || !retryable(resp.status) => return Ok(resp),
            // Retrying cannot make an answer smaller.
            Ok(Err(e)) if e.kind == TransportErrorKind::TooLarge => {
                return Err(Error::TooLarge {
                    target: ep.label.clone(),
                    method: method.to_string(),
                    path: path.to_string(),
                    limit: format_size(limit.max),
                });
            }
            Ok(Err(e)) if last || e.kind == TransportErrorKind::OverBudget => {
                return Err(match e.kind {
                    TransportErrorKind::Timeout => timeout_err(),
                    _ => Error::Transport {
                        target: ep.label.clone(),
                        method: method.to_string(),
                        path: path.to_string(),
                        source: e,
                    },
                });
            }
            Err(_elapsed) if last => return Err(timeout_err()),
            _ => {}
        }
        let wait = opts.backoff.saturating_mul(1 << attempt.min(16));
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// `HEAD /` (or `GET /health` where the transport prefers it): is this a
/// coverage server, and which process?
///
/// Transport failures (nothing listening, timeouts) are errors; an answer
/// without the identity headers is [`Probe::NotCoverage`].
pub async fn probe(ep: &Endpoint, opts: &ClientOptions) -> Result<Probe, Error> {
    let (method, path) = if ep.transport.probe_with_get() {
        (Method::GET, "/health")
    } else {
        (Method::HEAD, "/")
    };
    let resp = request(
        ep,
        opts,
        method.clone(),
        path,
        &[],
        BodyLimit {
            max: SMALL_ANSWER,
            reservation: None,
        },
    )
    .await?;
    let status = resp.status.as_u16();
    match Identity::from_headers(&resp.headers) {
        Ok(Some(id)) if resp.status.is_success() => Ok(Probe::Coverage(id)),
        Ok(Some(id)) => Ok(Probe::NotCoverage {
            status,
            reason: format!(
                "coverage server of {} (pid {}) answered {method} {path} with HTTP {status} (not built with -cover?)",
                id.binary, id.pid
            ),
        }),
        Ok(None) => Ok(Probe::NotCoverage {
            status,
            reason: format!("HTTP {status} without the {H_SERVER} header: not a coverage server"),
        }),
        Err(e) => Ok(Probe::NotCoverage {
            status,
            reason: e.to_string(),
        }),
    }
}

#[derive(serde::Deserialize)]
struct CoverageJson {
    #[serde(default)]
    meta_data: Option<String>,
    counters_filename: String,
    counters_data: String,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
}

/// Decompresses a gzip body, counting every decompressed byte against
/// `limit` as it comes (a small bomb must not expand past it).
fn gunzip(target: &str, path: &str, body: &[u8], limit: &BodyLimit) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(body);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = dec.read(&mut chunk).map_err(|e| Error::Malformed {
            target: target.to_string(),
            reason: format!("bad gzip body: {e}"),
        })?;
        if n == 0 {
            return Ok(out);
        }
        let total = (out.len() + n) as u64;
        limit
            .check(total, body.len() as u64)
            .map_err(|why| match why {
                crate::budget::Exceeded::Size => Error::TooLarge {
                    target: target.to_string(),
                    method: "GET".into(),
                    path: path.to_string(),
                    limit: format!("{} decompressed", format_size(limit.max)),
                },
                crate::budget::Exceeded::Budget => Error::Transport {
                    target: target.to_string(),
                    method: "GET".into(),
                    path: path.to_string(),
                    source: TransportError::exceeded(why),
                },
            })?;
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Checks a counter file header and returns its meta hash.
pub fn counters_hash(data: &[u8]) -> Result<covdata::Hash, HeaderError> {
    if data.len() < 32 || data[..4] != [0x00, 0x63, 0x77, 0x6d] {
        return Err(HeaderError::Magic {
            field: "counters_data",
            kind: "counter",
        });
    }
    let mut h = [0u8; 16];
    h.copy_from_slice(&data[8..24]);
    Ok(h)
}

/// Checks a meta file header and returns its hash.
pub fn meta_hash(data: &[u8]) -> Result<covdata::Hash, HeaderError> {
    if data.len() < 56 || data[..4] != [0x00, 0x63, 0x76, 0x6d] {
        return Err(HeaderError::Magic {
            field: "meta_data",
            kind: "meta-data",
        });
    }
    let mut h = [0u8; 16];
    h.copy_from_slice(&data[24..40]);
    Ok(h)
}

/// Decodes a `/coverage` answer body (already un-gzipped).
pub fn decode_coverage(target: &str, json: &[u8], want_meta: bool) -> Result<Snapshot, Error> {
    let bad = |reason: String| Error::Malformed {
        target: target.to_string(),
        reason,
    };
    let doc: CoverageJson =
        serde_json::from_slice(json).map_err(|e| bad(format!("not the expected JSON: {e}")))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let counters = b64
        .decode(doc.counters_data.trim())
        .map_err(|e| bad(format!("counters_data: bad base64: {e}")))?;
    let hash = counters_hash(&counters).map_err(|e| bad(e.to_string()))?;
    let hex = covdata::hex(&hash);
    // The file names are informational: the hash in the data's header is
    // what counts (files are written under names derived from it), so
    // servers that name files differently still work.
    let meta = match doc
        .meta_data
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(m) => {
            let meta = b64
                .decode(m)
                .map_err(|e| bad(format!("meta_data: bad base64: {e}")))?;
            let mh = meta_hash(&meta).map_err(|e| bad(e.to_string()))?;
            if mh != hash {
                return Err(bad(format!(
                    "meta_data hash {} differs from the counters' hash {hex}",
                    covdata::hex(&mh)
                )));
            }
            Some(meta)
        }
        None if want_meta => return Err(bad("meta_data missing".into())),
        None => None,
    };
    Ok(Snapshot {
        hash,
        meta,
        counters,
        counters_filename: doc.counters_filename,
        timestamp: doc.timestamp,
        identity: None,
        compact: false,
        memory: None,
    })
}

/// `GET /coverage` (or `?nometa=1`): one snapshot.
pub async fn fetch(
    ep: &Endpoint,
    opts: &ClientOptions,
    with_meta: bool,
) -> Result<Snapshot, Error> {
    let path = if with_meta {
        "/coverage"
    } else {
        "/coverage?nometa=1"
    };
    let limits = &opts.limits;
    let first = limits.budget.reserve_initial(limits.max_snapshot).await;
    match fetch_within(ep, opts, path, with_meta, first).await {
        Err(e) if over_budget(&e) => {
            // Give everything back, then wait for room for the largest
            // acceptable answer (compressed and decompressed) and try once more.
            let full = limits
                .budget
                .reserve(limits.max_snapshot.saturating_mul(2))
                .await;
            match fetch_within(ep, opts, path, with_meta, full).await {
                Err(e) if over_budget(&e) => Err(Error::TooLarge {
                    target: ep.label.clone(),
                    method: "GET".into(),
                    path: path.into(),
                    limit: format!(
                        "the memory budget of {} (--max-in-flight)",
                        format_size(limits.budget.bytes())
                    ),
                }),
                other => other,
            }
        }
        other => other,
    }
}

fn over_budget(e: &Error) -> bool {
    matches!(e, Error::Transport { source, .. } if source.kind == TransportErrorKind::OverBudget)
}

async fn fetch_within(
    ep: &Endpoint,
    opts: &ClientOptions,
    path: &str,
    with_meta: bool,
    reservation: Reservation,
) -> Result<Snapshot, Error> {
    let memory = Arc::new(std::sync::Mutex::new(reservation));
    let limit = BodyLimit {
        max: opts.limits.max_snapshot,
        reservation: Some(memory.clone()),
    };
    let resp = request(
        ep,
        opts,
        Method::GET,
        path,
        &[("accept", crate::wire::ACCEPT), ("accept-encoding", "gzip")],
        limit.clone(),
    )
    .await?;
    let identity = Identity::from_headers(&resp.headers).ok().flatten();
    if !resp.status.is_success() {
        return Err(Error::Status {
            target: ep.label.clone(),
            method: "GET".into(),
            path: path.into(),
            status: resp.status.as_u16(),
            message: short_text(&maybe_gunzip(&ep.label, path, resp, &limit)?),
        });
    }
    let headers = resp.headers.clone();
    let body = maybe_gunzip(&ep.label, path, resp, &limit)?;
    let mut snap = if crate::wire::is_compact(&headers) {
        crate::wire::decode(&ep.label, &headers, body, with_meta)?
    } else {
        decode_coverage(&ep.label, &body, with_meta)?
    };
    snap.identity = identity;
    snap.memory = Some(memory);
    Ok(snap)
}

fn maybe_gunzip(
    target: &str,
    path: &str,
    resp: RawResponse,
    limit: &BodyLimit,
) -> Result<Vec<u8>, Error> {
    let gz = resp
        .headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if gz {
        gunzip(target, path, &resp.body, limit)
    } else {
        // Without a copy when the body is not shared.
        Ok(Vec::from(resp.body))
    }
}

/// `POST /coverage/reset`: zero the counters.
pub async fn reset(ep: &Endpoint, opts: &ClientOptions) -> Result<(), Error> {
    let resp = request(
        ep,
        opts,
        Method::POST,
        "/coverage/reset",
        &[("x-coverage-client", "covfleet")],
        BodyLimit {
            max: SMALL_ANSWER,
            reservation: None,
        },
    )
    .await?;
    if resp.status.is_success() {
        Ok(())
    } else {
        Err(Error::Status {
            target: ep.label.clone(),
            method: "POST".into(),
            path: "/coverage/reset".into(),
            status: resp.status.as_u16(),
            message: short_text(&resp.body),
        })
    }
}

/// Why a failed fetch means "this binary has no live coverage data"
/// (skipped) rather than a failure, in plain words; `None` for failures.
///
/// Only the coverage server's own answer counts: HTTP 500 saying the binary
/// was not built with `-cover`, or was built with `-covermode=set|count`
/// (whose counters cannot be read while it runs). Any other status (401,
/// 404, …) is a failure whatever its body says.
pub fn not_covered_reason(err: &Error) -> Option<String> {
    let Error::Status {
        status: 500,
        message,
        ..
    } = err
    else {
        return None;
    };
    if !message.starts_with("coverage unavailable") {
        return None;
    }
    for mode in ["set", "count"] {
        if message.contains(&format!("-covermode={mode} "))
            || message.contains(&format!("-covermode={mode})"))
        {
            return Some(format!(
                "built with -covermode={mode}: live scraping needs -covermode=atomic"
            ));
        }
    }
    message
        .contains("not built with -cover")
        .then(|| "binary not built with -cover".to_string())
}

/// Whether a failed fetch means "this binary has no coverage data".
pub fn is_not_covered(err: &Error) -> bool {
    not_covered_reason(err).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_keys_are_lowercase_underscore() {
        let mut h = HeaderMap::new();
        h.insert("X-Art-Coverage-Server", HeaderValue::from_static("1"));
        h.insert("X-Art-Coverage-Pid", HeaderValue::from_static("42"));
        h.insert("X-Art-Coverage-Binary", HeaderValue::from_static("kubelet"));
        h.insert(
            "X-Art-Coverage-Source-Commit",
            HeaderValue::from_static("abc"),
        );
        let id = Identity::from_headers(&h).unwrap().unwrap();
        assert_eq!(id.pid, 42);
        assert_eq!(id.binary, "kubelet");
        assert_eq!(
            id.headers.get("source_commit").map(String::as_str),
            Some("abc")
        );
        assert_eq!(id.headers.get("server").map(String::as_str), Some("1"));
    }

    #[test]
    fn no_server_header_is_not_coverage() {
        assert!(Identity::from_headers(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn bad_pid_is_reported() {
        let mut h = HeaderMap::new();
        h.insert("X-Art-Coverage-Server", HeaderValue::from_static("1"));
        h.insert("X-Art-Coverage-Pid", HeaderValue::from_static("../1"));
        assert_eq!(
            Identity::from_headers(&h).unwrap_err(),
            HeaderError::Pid {
                header: H_PID,
                value: "../1".into()
            }
        );
    }

    #[test]
    fn malformed_json_names_target() {
        let err = decode_coverage("t:1", b"{", true).unwrap_err().to_string();
        assert!(err.contains("t:1") && err.contains("JSON"), "{err}");
        let err = decode_coverage(
            "t:1",
            br#"{"counters_filename":"x","counters_data":"AAAA"}"#,
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad magic"), "{err}");
    }
}
