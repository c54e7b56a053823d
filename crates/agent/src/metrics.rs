//! Prometheus metrics and the `/healthz` + `/metrics` HTTP endpoint.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Upload latency histogram buckets, seconds.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// The agent's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    pub scans: AtomicU64,
    pub scrapes: AtomicU64,
    pub bytes: AtomicU64,
    pub uploads: AtomicU64,
    pub upload_failures: AtomicU64,
    pub spool_depth: AtomicU64,
    pub spool_bytes: AtomicU64,
    /// Exit-time counter files (`--watch-dir`) stored.
    pub exit_files: AtomicU64,
    /// Targets by state (`active`, `failing`, `not_covered`, `rejected`,
    /// `unresponsive`).
    pub targets: Mutex<BTreeMap<String, u64>>,
    /// Scrape failures by reason (`connect`, `timeout`, `status`, …).
    pub failures: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<(Vec<u64>, f64, u64)>,
    /// Whether the last scan ran (for `/healthz`).
    pub last_scan_ok: std::sync::atomic::AtomicBool,
}

impl Metrics {
    pub fn failure(&self, reason: &str) {
        if let Ok(mut m) = self.failures.lock() {
            *m.entry(reason.to_string()).or_default() += 1;
        }
    }

    pub fn upload_latency(&self, d: Duration) {
        if let Ok(mut l) = self.latency.lock() {
            if l.0.is_empty() {
                l.0 = vec![0; BUCKETS.len()];
            }
            let s = d.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if s <= *b {
                    l.0[i] += 1;
                }
            }
            l.1 += s;
            l.2 += 1;
        }
    }

    pub fn set_targets(&self, by_state: BTreeMap<String, u64>) {
        if let Ok(mut t) = self.targets.lock() {
            *t = by_state;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let _ = writeln!(
            o,
            "# HELP covfleet_agent_targets Coverage servers by state.\n# TYPE covfleet_agent_targets gauge"
        );
        if let Ok(t) = self.targets.lock() {
            for state in [
                "active",
                "failing",
                "not_covered",
                "rejected",
                "unresponsive",
            ] {
                let _ = writeln!(
                    o,
                    "covfleet_agent_targets{{state=\"{state}\"}} {}",
                    t.get(state).copied().unwrap_or(0)
                );
            }
        }
        counter(
            &mut o,
            "covfleet_agent_scans_total",
            "Scans of /proc.",
            self.scans.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "covfleet_agent_scrapes_total",
            "Successful snapshot fetches.",
            self.scrapes.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP covfleet_agent_scrape_failures_total Failed fetches by reason.\n# TYPE covfleet_agent_scrape_failures_total counter"
        );
        if let Ok(f) = self.failures.lock() {
            for (reason, n) in f.iter() {
                let _ = writeln!(
                    o,
                    "covfleet_agent_scrape_failures_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        counter(
            &mut o,
            "covfleet_agent_scraped_bytes_total",
            "Bytes of coverage data fetched.",
            self.bytes.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "covfleet_agent_uploads_total",
            "Files stored in the sink.",
            self.uploads.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "covfleet_agent_upload_failures_total",
            "Failed sink writes.",
            self.upload_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "covfleet_agent_exit_files_total",
            "Exit-time counter files from watched directories stored.",
            self.exit_files.load(Ordering::Relaxed),
        );
        gauge(
            &mut o,
            "covfleet_agent_spool_depth",
            "Snapshots waiting for the sink.",
            self.spool_depth.load(Ordering::Relaxed),
        );
        gauge(
            &mut o,
            "covfleet_agent_spool_bytes",
            "Bytes waiting for the sink.",
            self.spool_bytes.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP covfleet_agent_upload_seconds Time to store one file.\n# TYPE covfleet_agent_upload_seconds histogram"
        );
        if let Ok(l) = self.latency.lock() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "covfleet_agent_upload_seconds_bucket{{le=\"{b}\"}} {}",
                    l.0.get(i).copied().unwrap_or(0)
                );
            }
            let _ = writeln!(
                o,
                "covfleet_agent_upload_seconds_bucket{{le=\"+Inf\"}} {}",
                l.2
            );
            let _ = writeln!(o, "covfleet_agent_upload_seconds_sum {}", l.1);
            let _ = writeln!(o, "covfleet_agent_upload_seconds_count {}", l.2);
        }
        o
    }
}

/// Serves `/healthz` and `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let m = m.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/healthz" => (200, "ok\n".to_string()),
                        "/metrics" => (200, m.render()),
                        _ => (404, "not found\n".to_string()),
                    };
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.failure("timeout");
        m.upload_latency(Duration::from_millis(20));
        m.scrapes.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("covfleet_agent_scrapes_total 3"), "{text}");
        assert!(text.contains("covfleet_agent_scrape_failures_total{reason=\"timeout\"} 1"));
        assert!(text.contains("covfleet_agent_upload_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("covfleet_agent_upload_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("covfleet_agent_targets{state=\"active\"} 0"));
    }
}
