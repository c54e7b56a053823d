//! Findings about a coverage server reached at a URL.

use std::sync::Arc;
use std::time::Duration;

use scrape::protocol::{self, ClientOptions, Endpoint, Probe};
use scrape::transport::Direct;

use crate::{Finding, Severity};

/// What a URL answered: the findings, and the identity when it is a
/// coverage server.
#[derive(Debug, Clone, Default)]
pub struct ServerCheck {
    pub findings: Vec<Finding>,
    pub identity: Option<scrape::Identity>,
}

/// Client options for the doctor: short, one retry.
pub fn options(timeout: Duration, token: Option<String>) -> ClientOptions {
    ClientOptions {
        timeout,
        retries: 1,
        token,
        ..ClientOptions::default()
    }
}

/// Probes `url` and fetches one counters-only snapshot.
pub async fn check(url: &str, opts: &ClientOptions) -> ServerCheck {
    let mut out = ServerCheck::default();
    let transport = match Direct::new(url, opts.timeout) {
        Ok(t) => t,
        Err(e) => {
            out.findings.push(
                Finding::new("bad-url", Severity::Problem, e.to_string())
                    .fix("give the server's base URL, e.g. http://10.0.0.5:53700"),
            );
            return out;
        }
    };
    check_endpoint(&Endpoint::new(Arc::new(transport)), url, opts).await
}

/// Probes a coverage server reached through `ep` (described as `at` in
/// the findings) and fetches one counters-only snapshot.
pub async fn check_endpoint(ep: &Endpoint, at: &str, opts: &ClientOptions) -> ServerCheck {
    let mut out = ServerCheck::default();
    let url = at;
    match protocol::probe(ep, opts).await {
        Err(e) => out.findings.push(
            Finding::new(
                "server-unreachable",
                Severity::Problem,
                format!("no coverage server answers at {url}: {e}"),
            )
            .fix("check the port (53700-53749, or COVERAGE_PORT), that the binary contains the injected server (`covfleet doctor BINARY`), and that nothing blocks the connection"),
        ),
        Ok(Probe::NotCoverage { reason, .. }) => out.findings.push(
            Finding::new(
                "not-a-coverage-server",
                Severity::Problem,
                format!("{url} answers, but not as a coverage server: {reason}"),
            )
            .fix("point at the coverage port (53700+), not the program's own port"),
        ),
        Ok(Probe::Coverage(id)) => {
            out.findings.push(Finding::new(
                "server-answers",
                Severity::Ok,
                format!(
                    "coverage server of {} (pid {}) answers at {url}",
                    id.binary, id.pid
                ),
            ));
            match protocol::fetch(ep, opts, false).await {
                Ok(snap) => out.findings.push(Finding::new(
                    "server-serves-counters",
                    Severity::Ok,
                    format!(
                        "it serves live counters ({} bytes, meta-data {})",
                        snap.counters.len(),
                        covdata::hex(&snap.hash)
                    ),
                )),
                Err(e) if protocol::is_not_covered(&e) => out.findings.push(
                    Finding::new(
                        "server-no-counters",
                        Severity::Problem,
                        format!("the server cannot serve counters: {e}"),
                    )
                    .fix("build with -cover -covermode=atomic"),
                ),
                Err(e) => out.findings.push(Finding::new(
                    "server-fetch-failed",
                    Severity::Problem,
                    format!("fetching counters failed: {e}"),
                )),
            }
            out.identity = Some(id);
        }
    }
    out
}
