//! `covfleet doctor`: why coverage is missing, and what to do about it.
//!
//! A diagnosis is a list of [`Finding`]s, each with a stable `id` (for
//! scripts), a [`Severity`], what was seen, and — unless all is well — the
//! fix. Findings come from facts read without trusting the target:
//!
//! - [`binary`]: a Go executable, read from the file ([`gobin`]): `-cover`,
//!   counter mode, instrumented packages (is `main` among them?), the
//!   injected coverage server, signal handling, linking and stripping;
//! - [`process`]: a running process through `/proc`: its executable,
//!   `GOCOVERDIR` as the process sees it (its mount namespace, its uid),
//!   PID 1 of a container, coverage servers it listens with;
//! - [`server`]: a coverage server's URL (identity, a counters fetch);
//! - [`kube`]: a pod through the Kubernetes API (phase, containers,
//!   restarts and exit codes, `GOCOVERDIR` and its volume, coverage
//!   servers through the pod proxy);
//! - [`tryexit`]: a copy of the program run with a fresh `GOCOVERDIR` and
//!   stopped with SIGTERM, to see whether Go writes its data on that path.
//!
//! Go writes `GOCOVERDIR` data in two steps (`internal/coverage/cfile`): the
//! meta-data file when the program starts, the counters only when `main`
//! returns or `os.Exit` is called. A process killed by a signal it does not
//! handle — SIGTERM from `kubectl delete`, `docker stop`, `systemctl stop` —
//! leaves at most the meta-data file. That, not static linking, distroless
//! images or multi-stage builds, is the usual reason for an empty directory.

pub mod binary;
pub mod error;
pub mod gobin;
pub mod kube;
pub mod process;
pub mod server;
pub mod tryexit;

pub use error::Error;

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// As it should be.
    Ok,
    /// Worth knowing; not a cause of missing coverage.
    Info,
    /// Limits what can be collected (e.g. no live scraping).
    Warning,
    /// A reason coverage is missing.
    Problem,
}

impl Severity {
    /// A short label for text output.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Problem => "PROBLEM",
        }
    }
}

/// One observation with its consequence and fix.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `main-not-instrumented`.
    pub id: &'static str,
    pub severity: Severity,
    /// What was seen, in one sentence.
    pub summary: String,
    /// What to do, when something should be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(id: &'static str, severity: Severity, summary: impl Into<String>) -> Finding {
        Finding {
            id,
            severity,
            summary: summary.into(),
            fix: None,
        }
    }

    /// Adds the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// The diagnosis of one target.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was examined (`binary /path`, `pid 42`, `url http://…`).
    pub target: String,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(target: impl Into<String>) -> Report {
        Report {
            target: target.into(),
            findings: Vec::new(),
        }
    }

    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    /// Whether any finding is a [`Severity::Problem`].
    pub fn has_problems(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Problem)
    }

    /// The finding with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }
}

/// The fix for a program that dies on SIGTERM, shared by several findings.
pub const FIX_SIGTERM: &str = "make SIGTERM end the program normally: `ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)`, shut down when ctx is done and return from main (or call os.Exit) — Go writes the counters only then; or collect live before stopping it (`covfleet collect`), or, with the injected server, set COVERAGE_FLUSH_INTERVAL=30s (with GOCOVERDIR) so it rewrites the files periodically and once more on SIGTERM";
