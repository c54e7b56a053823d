//! The compact `/coverage` answer, negotiated with `Accept`.
//!
//! covfleet's injected server answers a request that names [`MEDIA_TYPE`] in
//! `Accept` with the raw files instead of JSON: the body is the meta-data
//! file (empty with `?nometa=1`) followed by the counter file, gzip-compressed
//! when `Accept-Encoding` allows, and these headers describe it:
//!
//! | header | value |
//! |---|---|
//! | `X-Covfleet-Meta-Name` | `covmeta.<hash>`, empty without meta-data |
//! | `X-Covfleet-Meta-Length` | bytes of meta-data at the start of the body |
//! | `X-Covfleet-Counters-Name` | `covcounters.<hash>.<pid>.<nanotime>` |
//! | `X-Covfleet-Counters-Length` | bytes of counter file after it |
//! | `X-Covfleet-Timestamp` | Unix nanoseconds of the snapshot |
//!
//! Servers that do not know the form (the seed system's, go-coverage-http,
//! older covfleet) ignore `Accept` and answer JSON, which
//! [`crate::protocol::fetch`] still decodes: the answer's `Content-Type`
//! decides.

use http::HeaderMap;

use crate::error::Error;
use crate::protocol::{Snapshot, counters_hash, meta_hash};

/// The media type of the compact answer.
pub const MEDIA_TYPE: &str = "application/vnd.covfleet.coverage";
/// The `Accept` value covfleet sends: the compact form, else JSON.
pub const ACCEPT: &str = "application/vnd.covfleet.coverage, application/json;q=0.9";

const H_META_LEN: &str = "x-covfleet-meta-length";
const H_COUNTERS_LEN: &str = "x-covfleet-counters-length";
const H_COUNTERS_NAME: &str = "x-covfleet-counters-name";
const H_TIMESTAMP: &str = "x-covfleet-timestamp";

/// Whether an answer is in the compact form (by its `Content-Type`).
pub fn is_compact(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Decodes a compact answer (body already un-gzipped) into a checked
/// [`Snapshot`]: the lengths must add up to the body, the counter file and
/// the meta-data file must have Go's headers and the same hash.
pub fn decode(
    target: &str,
    headers: &HeaderMap,
    mut body: Vec<u8>,
    want_meta: bool,
) -> Result<Snapshot, Error> {
    let bad = |reason: String| Error::Malformed {
        target: target.to_string(),
        reason,
    };
    let length = |name: &str| -> Result<usize, Error> {
        let v = header(headers, name).ok_or_else(|| bad(format!("{name} header missing")))?;
        v.parse()
            .map_err(|_| bad(format!("{name} is not a length: {v:?}")))
    };
    let meta_len = length(H_META_LEN)?;
    let counters_len = length(H_COUNTERS_LEN)?;
    if meta_len.checked_add(counters_len) != Some(body.len()) {
        return Err(bad(format!(
            "{H_META_LEN} {meta_len} + {H_COUNTERS_LEN} {counters_len} != body of {} bytes",
            body.len()
        )));
    }
    let counters = body.split_off(meta_len);
    let hash = counters_hash(&counters).map_err(|e| bad(e.to_string()))?;
    let meta = if meta_len > 0 {
        let mh = meta_hash(&body).map_err(|e| bad(e.to_string()))?;
        if mh != hash {
            return Err(bad(format!(
                "meta-data hash {} differs from the counters' hash {}",
                covdata::hex(&mh),
                covdata::hex(&hash)
            )));
        }
        Some(body)
    } else if want_meta {
        return Err(bad("meta-data missing".into()));
    } else {
        None
    };
    let counters_filename = header(headers, H_COUNTERS_NAME)
        .unwrap_or_default()
        .to_string();
    let timestamp = header(headers, H_TIMESTAMP)
        .and_then(|v| v.parse::<i64>().ok())
        .map(serde_json::Value::from);
    Ok(Snapshot {
        hash,
        meta,
        counters,
        counters_filename,
        timestamp,
        identity: None,
        compact: true,
        memory: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn counters(hash: u8) -> Vec<u8> {
        let mut c = vec![0x00, 0x63, 0x77, 0x6d, 2, 0, 0, 0];
        c.extend([hash; 16]);
        c.extend([0u8; 16]);
        c
    }

    fn meta(hash: u8) -> Vec<u8> {
        let mut m = vec![0x00, 0x63, 0x76, 0x6d];
        m.extend([0u8; 20]);
        m.extend([hash; 16]);
        m.extend([0u8; 16]);
        m
    }

    fn headers(ml: usize, cl: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(MEDIA_TYPE),
        );
        h.insert(H_META_LEN, ml.into());
        h.insert(H_COUNTERS_LEN, cl.into());
        h.insert(
            H_COUNTERS_NAME,
            HeaderValue::from_static("covcounters.x.1.2"),
        );
        h.insert(H_TIMESTAMP, HeaderValue::from_static("17"));
        h
    }

    #[test]
    fn splits_meta_and_counters() {
        let (m, c) = (meta(7), counters(7));
        let body = [m.clone(), c.clone()].concat();
        let h = headers(m.len(), c.len());
        assert!(is_compact(&h));
        let snap = decode("t", &h, body, true).unwrap();
        assert_eq!(snap.meta.as_deref(), Some(&m[..]));
        assert_eq!(snap.counters, c);
        assert_eq!(snap.hash, [7; 16]);
        assert_eq!(snap.counters_filename, "covcounters.x.1.2");
        assert_eq!(snap.timestamp, Some(serde_json::Value::from(17)));
        let lean = decode("t", &headers(0, c.len()), c.clone(), false).unwrap();
        assert!(lean.meta.is_none() && lean.compact);
    }

    #[test]
    fn rejects_what_does_not_add_up() {
        let (m, c) = (meta(7), counters(7));
        let body = [m.clone(), c.clone()].concat();
        let cases = [
            (headers(m.len(), c.len() + 1), body.clone(), "!= body"),
            (headers(m.len(), usize::MAX), body.clone(), "!= body"),
            (headers(0, c.len()), c.clone(), "meta-data missing"),
            (
                headers(c.len(), m.len()),
                [c.clone(), m.clone()].concat(),
                "bad magic",
            ),
            (
                headers(m.len(), c.len()),
                [meta(8), c.clone()].concat(),
                "differs",
            ),
        ];
        for (h, body, want) in cases {
            let err = decode("pod-a", &h, body, true).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("pod-a"), "{err}");
        }
        let mut h = headers(m.len(), c.len());
        h.remove(H_META_LEN);
        let err = decode("t", &h, body, true).unwrap_err().to_string();
        assert!(err.contains("header missing"), "{err}");
    }

    #[test]
    fn json_is_not_compact() {
        let mut h = HeaderMap::new();
        assert!(!is_compact(&h));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(!is_compact(&h));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("Application/Vnd.Covfleet.Coverage; v=1"),
        );
        assert!(is_compact(&h));
    }
}
