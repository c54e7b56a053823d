//! Findings about a running process, read through `/proc/PID`.
//!
//! Paths are checked as the process sees them: `GOCOVERDIR` is resolved in
//! its mount namespace (`/proc/PID/root/…`, relative paths against its
//! working directory) and its writability is judged for the process's
//! effective uid and groups, including a read-only mount.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::server::{self, ServerCheck};
use crate::{FIX_SIGTERM, Finding, Severity, binary, gobin};

/// What was read about the process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcFacts {
    pub pid: u32,
    /// `/proc/PID/exe` as the kernel names it.
    pub exe: Option<PathBuf>,
    pub argv: Vec<String>,
    /// Effective uid and gid, supplementary groups.
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// PIDs in each nested PID namespace, outermost first (`NSpid`).
    pub ns_pids: Vec<u32>,
    /// The process's working directory in its own mount namespace.
    pub cwd: Option<PathBuf>,
    /// Environment variables (only the ones that matter are kept).
    pub env: Vec<(String, String)>,
    /// TCP ports the process listens on.
    pub listening: Vec<u16>,
    /// Whether it shares covfleet's network namespace.
    pub same_netns: bool,
}

/// Environment variables that matter for coverage (no other value is kept:
/// environments hold secrets).
const ENV_KEPT: &[&str] = &[
    "GOCOVERDIR",
    "COVERAGE_PORT",
    "COVERAGE_DISABLE",
    "COVERAGE_FLUSH_INTERVAL",
    "COVERAGE_BIND",
    "COVERAGE_IN_TESTS",
];

impl ProcFacts {
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the process is PID 1 of a nested PID namespace (a container).
    pub fn container_init(&self) -> bool {
        self.ns_pids.len() > 1 && self.ns_pids.last() == Some(&1)
    }
}

fn status_ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the facts; an error only when the process does not exist or
/// cannot be read at all.
pub fn read_facts(proc_root: &Path, pid: u32) -> Result<ProcFacts, crate::Error> {
    let dir = proc_root.join(pid.to_string());
    let status =
        std::fs::read_to_string(dir.join("status")).map_err(|e| crate::Error::Process {
            pid,
            reason: format!("cannot read {}: {e}", dir.join("status").display()),
        })?;
    let uids = status_ids(&status, "Uid:");
    let gids = status_ids(&status, "Gid:");
    let mut f = ProcFacts {
        pid,
        exe: std::fs::read_link(dir.join("exe")).ok(),
        uid: uids.get(1).copied().unwrap_or(0),
        gid: gids.get(1).copied().unwrap_or(0),
        groups: status_ids(&status, "Groups:"),
        ns_pids: status_ids(&status, "NSpid:"),
        cwd: std::fs::read_link(dir.join("cwd")).ok(),
        ..ProcFacts::default()
    };
    if let Ok(cmd) = std::fs::read(dir.join("cmdline")) {
        f.argv = cmd
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
    }
    if let Ok(env) = std::fs::read(dir.join("environ")) {
        for kv in env.split(|&b| b == 0) {
            let kv = String::from_utf8_lossy(kv);
            if let Some((k, v)) = kv.split_once('=')
                && ENV_KEPT.contains(&k)
            {
                f.env.push((k.to_string(), v.to_string()));
            }
        }
    }
    let own = std::fs::read_link(proc_root.join("self/ns/net")).ok();
    let theirs = std::fs::read_link(dir.join("ns/net")).ok();
    f.same_netns = own.is_some() && own == theirs;
    f.listening = listening_ports(&dir);
    Ok(f)
}

/// Ports of listening TCP sockets held by the process (its network
/// namespace's tables, filtered by the socket inodes in its fd table).
fn listening_ports(dir: &Path) -> Vec<u16> {
    let mut inodes = BTreeSet::new();
    if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && let Some(n) = link
                    .to_str()
                    .and_then(|s| s.strip_prefix("socket:["))
                    .and_then(|s| s.strip_suffix(']'))
                    .and_then(|s| s.parse::<u64>().ok())
            {
                inodes.insert(n);
            }
        }
    }
    let mut ports = BTreeSet::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(table)) {
            for l in scrape::local::parse_tcp_table(&text) {
                if inodes.contains(&l.inode) {
                    ports.insert(l.port);
                }
            }
        }
    }
    ports.into_iter().collect()
}

/// Where a path of the process's mount namespace is, seen from here.
fn in_root(proc_root: &Path, pid: u32, p: &Path) -> PathBuf {
    let mut out = proc_root.join(pid.to_string()).join("root");
    for c in p.components() {
        if let Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// May `uid`/`gids` do `want` (bits of rwx: 4, 2, 1) on a file with this metadata?
fn permits(md: &std::fs::Metadata, uid: u32, gids: &[u32], want: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let mode = md.mode();
    let bits = if md.uid() == uid {
        (mode >> 6) & 7
    } else if gids.contains(&md.gid()) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & want == want
}

/// The mount holding `path` (in the process's namespace) is read-only?
fn read_only_mount(proc_root: &Path, pid: u32, path: &Path) -> Option<(String, bool)> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("mountinfo")).ok()?;
    let mut best: Option<(usize, String, bool)> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 6 {
            continue;
        }
        let mp = fields[4].replace("\\040", " ");
        let opts = fields[5];
        let under = path.starts_with(&mp);
        if under && best.as_ref().is_none_or(|(n, _, _)| mp.len() >= *n) {
            let ro = opts.split(',').any(|o| o == "ro");
            best = Some((mp.len(), mp, ro));
        }
    }
    best.map(|(_, mp, ro)| (mp, ro))
}

/// Options of a process diagnosis.
#[derive(Debug, Clone)]
pub struct Options {
    /// `/proc` (tests point elsewhere).
    pub proc_root: PathBuf,
    /// Request options for probing the process's coverage server.
    pub client: scrape::ClientOptions,
}

/// The whole diagnosis of a running process.
pub async fn diagnose(
    pid: u32,
    opts: &Options,
) -> Result<(crate::Report, ProcFacts), crate::Error> {
    let facts = read_facts(&opts.proc_root, pid)?;
    let exe_name = facts
        .exe
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".into());
    let mut report = crate::Report::new(format!("pid {pid} ({exe_name})"));
    let exe_path = opts.proc_root.join(pid.to_string()).join("exe");
    let bin = match gobin::read(&exe_path) {
        Ok(b) => {
            for f in binary::findings(&b) {
                report.push(f);
            }
            Some(b)
        }
        Err(e) => {
            report.push(Finding::new(
                "binary-unreadable",
                Severity::Warning,
                format!("cannot read the executable: {e}"),
            ));
            None
        }
    };

    // The coverage server.
    let server_in = bin
        .as_ref()
        .is_some_and(|b| b.has_function_prefix("main._cov"));
    let mut served = false;
    let candidates: Vec<u16> = facts
        .listening
        .iter()
        .copied()
        .filter(|p| {
            let start: u16 = facts
                .env("COVERAGE_PORT")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(scrape::protocol::DEFAULT_PORT);
            (start..start.saturating_add(scrape::protocol::PORT_TRIES)).contains(p)
        })
        .collect();
    if facts.env("COVERAGE_DISABLE") == Some("1") {
        report.push(
            Finding::new(
                "server-disabled",
                Severity::Warning,
                "COVERAGE_DISABLE=1: the injected coverage server does not start",
            )
            .fix("unset COVERAGE_DISABLE to collect live coverage"),
        );
    }
    {
        // A process in another network namespace (a pod) is probed from
        // inside that namespace: its 127.0.0.1 is not the host's.
        let netns = opts.proc_root.join(pid.to_string()).join("ns/net");
        if !facts.same_netns && !candidates.is_empty() {
            report.push(Finding::new(
                "server-other-netns",
                Severity::Info,
                format!(
                    "listens on {} in another network namespace; probed from inside it ({})",
                    join_ports(&candidates),
                    netns.display()
                ),
            ));
        }
        for port in &candidates {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            let check = if facts.same_netns {
                server::check(&format!("http://{addr}"), &opts.client).await
            } else {
                let url = format!("http://{addr} in the network namespace of pid {pid}");
                match scrape::netns::InNetns::open(
                    &netns,
                    format!("pid {pid}"),
                    addr,
                    opts.client.timeout,
                ) {
                    Ok(t) => {
                        let ep = scrape::protocol::Endpoint::new(std::sync::Arc::new(t));
                        server::check_endpoint(&ep, &url, &opts.client).await
                    }
                    Err(e) => {
                        report.push(
                            Finding::new(
                                "netns-unreachable",
                                Severity::Warning,
                                format!(
                                    "cannot enter the network namespace of pid {pid} ({}): {e}",
                                    netns.display()
                                ),
                            )
                            .fix(format!(
                                "run as root, or `nsenter -t {pid} -n covfleet doctor --url http://127.0.0.1:{port}`"
                            )),
                        );
                        continue;
                    }
                }
            };
            let ServerCheck { findings, identity } = check;
            if let Some(id) = &identity {
                served = true;
                let ours = facts.ns_pids.contains(&id.pid);
                if !ours {
                    report.push(Finding::new(
                        "server-pid-mismatch",
                        Severity::Warning,
                        format!(
                            "the server on port {port} says pid {}, not one of {:?}",
                            id.pid, facts.ns_pids
                        ),
                    ));
                }
            }
            report.findings.extend(findings);
        }
        if candidates.is_empty() && server_in {
            report.push(
                Finding::new(
                    "server-not-listening",
                    Severity::Warning,
                    format!(
                        "contains the coverage server but listens on no port in its range (listening: {})",
                        if facts.listening.is_empty() { "none".to_string() } else { join_ports(&facts.listening) }
                    ),
                )
                .fix("check COVERAGE_PORT/COVERAGE_DISABLE and the program's stderr with COVERAGE_DEBUG=1"),
            );
        }
    }

    // GOCOVERDIR.
    gocoverdir_findings(&opts.proc_root, &facts, served, &mut report);

    // How the process will end.
    if facts.container_init() {
        let handles = bin
            .as_ref()
            .is_some_and(|b| b.has_function("os/signal.Notify"));
        let f = Finding::new(
            "container-init",
            if handles {
                Severity::Info
            } else {
                Severity::Warning
            },
            format!(
                "PID 1 of its PID namespace (pid {} inside): the container's main process gets the SIGTERM when the pod stops; {}",
                facts.ns_pids.last().copied().unwrap_or(1),
                if handles {
                    "it links os/signal.Notify — whether SIGTERM leads to a normal exit is what --try-exit checks"
                } else {
                    "without a handler the Go runtime ends it on SIGTERM without a normal exit, so no counters are written"
                }
            ),
        );
        report.push(if handles { f } else { f.fix(FIX_SIGTERM) });
    }
    if server_in
        && facts.env("GOCOVERDIR").is_some()
        && facts.env("COVERAGE_FLUSH_INTERVAL").is_none()
    {
        report.push(Finding::new(
            "flush-off",
            Severity::Info,
            "the injected server can keep GOCOVERDIR current however the process ends: COVERAGE_FLUSH_INTERVAL is not set",
        ).fix("set COVERAGE_FLUSH_INTERVAL=30s to rewrite the files every 30 s and once more on SIGTERM"));
    }
    if let Some(v) = facts.env("COVERAGE_FLUSH_INTERVAL") {
        report.push(Finding::new(
            "flush-interval",
            Severity::Ok,
            format!("COVERAGE_FLUSH_INTERVAL={v}: the injected server rewrites GOCOVERDIR data periodically and on SIGTERM"),
        ));
    }
    Ok((report, facts))
}

fn join_ports(p: &[u16]) -> String {
    p.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}

fn gocoverdir_findings(
    proc_root: &Path,
    facts: &ProcFacts,
    served: bool,
    report: &mut crate::Report,
) {
    let pid = facts.pid;
    let Some(dir) = facts.env("GOCOVERDIR").filter(|d| !d.is_empty()) else {
        if served {
            report.push(Finding::new(
                "gocoverdir-unset",
                Severity::Info,
                "GOCOVERDIR is not set: nothing is written at exit (fine when coverage is collected live)",
            ));
        } else {
            report.push(
                Finding::new(
                    "gocoverdir-unset",
                    Severity::Problem,
                    "GOCOVERDIR is not set in the process's environment: Go writes no coverage files",
                )
                .fix("set GOCOVERDIR to a directory on a volume that outlives the container (env: in the pod spec)"),
            );
        }
        return;
    };
    let mut path = PathBuf::from(dir);
    if path.is_relative() {
        match &facts.cwd {
            Some(cwd) => path = cwd.join(path),
            None => {
                report.push(Finding::new(
                    "gocoverdir-relative",
                    Severity::Warning,
                    format!("GOCOVERDIR={dir} is relative and the working directory is unreadable"),
                ));
                return;
            }
        }
    }
    let here = in_root(proc_root, pid, &path);
    let md = match std::fs::metadata(&here) {
        Ok(md) => md,
        Err(e) => {
            report.push(
                Finding::new(
                    "gocoverdir-missing",
                    Severity::Problem,
                    format!(
                        "GOCOVERDIR={dir} does not exist in the process's mount namespace ({e}): Go does not create it, and writes nothing"
                    ),
                )
                .fix("create the directory before the program starts: mount a volume there (emptyDir/hostPath/PVC) or mkdir it in the image"),
            );
            return;
        }
    };
    if !md.is_dir() {
        report.push(
            Finding::new(
                "gocoverdir-not-dir",
                Severity::Problem,
                format!("GOCOVERDIR={dir} is not a directory"),
            )
            .fix("point GOCOVERDIR at a directory"),
        );
        return;
    }
    let mut gids = facts.groups.clone();
    gids.push(facts.gid);
    // Every ancestor must be searchable, the directory writable.
    let mut blocked = None;
    let mut walk = PathBuf::from("/");
    for c in path.components() {
        if let Component::Normal(n) = c {
            if let Ok(m) = std::fs::metadata(in_root(proc_root, pid, &walk))
                && !permits(&m, facts.uid, &gids, 1)
            {
                blocked = Some(walk.clone());
                break;
            }
            walk.push(n);
        }
    }
    let writable = blocked.is_none() && permits(&md, facts.uid, &gids, 3);
    if !writable {
        report.push(
            Finding::new(
                "gocoverdir-not-writable",
                Severity::Problem,
                format!(
                    "GOCOVERDIR={dir} is not writable by uid {} (gid {}): {}",
                    facts.uid,
                    facts.gid,
                    match &blocked {
                        Some(b) => format!("{} is not searchable", b.display()),
                        None => format!(
                            "owner {}:{} mode {:o}",
                            md.uid(),
                            md.gid(),
                            md.mode() & 0o7777
                        ),
                    }
                ),
            )
            .fix(format!(
                "make it writable for uid {}: fsGroup/runAsGroup in the pod's securityContext, an initContainer chown, or mode 1777",
                facts.uid
            )),
        );
    } else {
        report.push(Finding::new(
            "gocoverdir-writable",
            Severity::Ok,
            format!(
                "GOCOVERDIR={dir} exists in the process's mount namespace and is writable by uid {}",
                facts.uid
            ),
        ));
    }
    if let Some((mp, true)) = read_only_mount(proc_root, pid, &path) {
        report.push(
            Finding::new(
                "gocoverdir-read-only",
                Severity::Problem,
                format!("GOCOVERDIR={dir} is on a read-only mount ({mp})"),
            )
            .fix("mount a writable volume at GOCOVERDIR (readOnlyRootFilesystem makes the image read-only)"),
        );
    }
    // What Go has written so far.
    let (mut metas, mut counters) = (0, 0);
    if let Ok(rd) = std::fs::read_dir(&here) {
        for e in rd.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with("covmeta.") {
                metas += 1;
            } else if n.starts_with("covcounters.") {
                counters += 1;
            }
        }
    }
    if metas == 0 {
        report.push(
            Finding::new(
                "gocoverdir-no-meta",
                Severity::Problem,
                format!(
                    "GOCOVERDIR={dir} holds no covmeta.* file: Go writes it when the program starts, so at start the directory was missing or not writable, or main is not instrumented"
                ),
            )
            .fix("fix the findings above and restart the program"),
        );
    } else {
        report.push(Finding::new(
            "gocoverdir-contents",
            Severity::Info,
            format!(
                "GOCOVERDIR={dir} holds {metas} covmeta and {counters} covcounters file(s) as the process sees it (meta-data is written at start, counters only at a normal exit)"
            ),
        ));
    }
}
