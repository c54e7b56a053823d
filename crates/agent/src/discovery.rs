//! Finding coverage-server candidates on this node from `/proc`.
//!
//! One scan:
//! 1. every process's network namespace (`/proc/PID/ns/net`), so each
//!    namespace's socket tables are read once (`/proc/PID/net/tcp`, `tcp6`
//!    of any one of its processes);
//! 2. the ports to look at: the default range plus `COVERAGE_PORT..+50` of
//!    every process in the namespace that sets it (`/proc/PID/environ`,
//!    read once per process);
//! 3. the owners of each listening socket in range, by socket inode through
//!    `/proc/PID/fd` of the namespace's processes — so in the host
//!    namespace, where every process sees every socket, a process is only
//!    paired with the sockets it holds.
//!
//! Processes are keyed by PID and start time ([`ProcKey`]): a reused PID is
//! another process. Processes that vanish mid-scan and unreadable entries
//! are skipped silently: that is normal on a busy node.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use scrape::local::{Listener, ProcessInfo, parse_tcp_table, process_info};

/// A process, identified across PID reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcKey {
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
}

/// One listening socket in range and the process holding it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key: ProcKey,
    pub process: ProcessInfo,
    pub listener: Listener,
    /// Inode of the process's network namespace.
    pub netns: u64,
    /// Whether that is the host's (the agent's) namespace.
    pub host_netns: bool,
}

impl Candidate {
    /// The PID the process's coverage server reports: its PID in its own
    /// (innermost) PID namespace, the last field of `NSpid:`.
    pub fn server_pid(&self) -> u32 {
        self.process
            .ns_pids
            .last()
            .copied()
            .unwrap_or(self.process.pid)
    }

    /// `PROC/PID/ns/net`, for joining the namespace.
    pub fn netns_path(&self, proc_root: &Path) -> PathBuf {
        proc_root.join(self.key.pid.to_string()).join("ns/net")
    }
}

/// Parses `net:[4026531992]`.
pub fn ns_inode(link: &Path) -> Option<u64> {
    let s = link.to_str()?;
    let rest = s.split_once(":[")?.1.strip_suffix(']')?;
    rest.parse().ok()
}

/// `COVERAGE_PORT` from the NUL-separated environment text.
pub fn coverage_port(environ: &[u8]) -> Option<u16> {
    environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"COVERAGE_PORT="))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Socket inodes held by `pid` (`socket:[N]` links in `/proc/PID/fd`).
pub fn socket_inodes(proc_root: &Path, pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| {
            let link = std::fs::read_link(fd.path()).ok()?;
            link.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// What the scanner remembers about a process between scans.
#[derive(Debug, Clone)]
struct Known {
    start_ticks: u64,
    coverage_port: Option<u16>,
}

/// Scans `/proc`, remembering per-process facts between scans.
#[derive(Debug)]
pub struct Scanner {
    proc_root: PathBuf,
    ports: RangeInclusive<u16>,
    /// The host's network namespace inode (the agent's own, unless set).
    host_netns: Option<u64>,
    known: HashMap<u32, Known>,
}

/// Counts of one scan, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub processes: usize,
    pub namespaces: usize,
    pub listeners: usize,
}

impl Scanner {
    /// A scanner of `proc_root` (normally `/proc`) for servers in `ports`.
    pub fn new(proc_root: impl Into<PathBuf>, ports: RangeInclusive<u16>) -> Scanner {
        let proc_root = proc_root.into();
        let host_netns = std::fs::read_link(proc_root.join("self/ns/net"))
            .ok()
            .and_then(|l| ns_inode(&l));
        Scanner {
            proc_root,
            ports,
            host_netns,
            known: HashMap::new(),
        }
    }

    /// Overrides which namespace counts as the host's.
    pub fn with_host_netns(mut self, inode: Option<u64>) -> Scanner {
        self.host_netns = inode;
        self
    }

    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    fn start_ticks(&self, pid: u32) -> Option<u64> {
        let stat =
            std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 1..];
        after.split_whitespace().nth(22 - 3)?.parse().ok()
    }

    /// One scan: every listening socket in range with the process holding it.
    pub fn scan(&mut self) -> (Vec<Candidate>, ScanStats) {
        let mut stats = ScanStats::default();
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return (Vec::new(), stats);
        };
        let pids: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        let mut by_ns: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        let mut seen: HashSet<u32> = HashSet::with_capacity(pids.len());
        for pid in pids {
            let base = self.proc_root.join(pid.to_string());
            let Some(ns) = std::fs::read_link(base.join("ns/net"))
                .ok()
                .and_then(|l| ns_inode(&l))
            else {
                continue;
            };
            let Some(start) = self.start_ticks(pid) else {
                continue;
            };
            seen.insert(pid);
            let fresh = self.known.get(&pid).is_none_or(|k| k.start_ticks != start);
            if fresh {
                let coverage_port = std::fs::read(base.join("environ"))
                    .ok()
                    .and_then(|e| coverage_port(&e));
                self.known.insert(
                    pid,
                    Known {
                        start_ticks: start,
                        coverage_port,
                    },
                );
            }
            by_ns.entry(ns).or_default().push(pid);
        }
        self.known.retain(|pid, _| seen.contains(pid));
        stats.processes = seen.len();
        stats.namespaces = by_ns.len();

        let mut out = Vec::new();
        for (ns, pids) in by_ns {
            let mut ranges = vec![self.ports.clone()];
            for pid in &pids {
                if let Some(p) = self.known.get(pid).and_then(|k| k.coverage_port) {
                    let r = p..=p.saturating_add(scrape::protocol::PORT_TRIES - 1);
                    if !ranges.contains(&r) {
                        ranges.push(r);
                    }
                }
            }
            // The namespace's tables, through the first process that lets us read them.
            let mut listeners: Option<Vec<Listener>> = None;
            for pid in &pids {
                let base = self.proc_root.join(pid.to_string());
                let mut ls: Vec<Listener> = Vec::new();
                let mut any = false;
                for t in ["net/tcp", "net/tcp6"] {
                    if let Ok(text) = std::fs::read_to_string(base.join(t)) {
                        any = true;
                        ls.extend(
                            parse_tcp_table(&text)
                                .into_iter()
                                .filter(|l| ranges.iter().any(|r| r.contains(&l.port))),
                        );
                    }
                }
                if any {
                    ls.sort_by_key(|l| (l.port, l.inode));
                    ls.dedup_by_key(|l| l.inode);
                    listeners = Some(ls);
                    break;
                }
            }
            let Some(listeners) = listeners.filter(|l| !l.is_empty()) else {
                continue;
            };
            stats.listeners += listeners.len();
            let wanted: HashMap<u64, &Listener> = listeners.iter().map(|l| (l.inode, l)).collect();
            let host = self.host_netns == Some(ns);
            for pid in &pids {
                let inodes = socket_inodes(&self.proc_root, *pid);
                let mut mine: Vec<&Listener> = inodes
                    .iter()
                    .filter_map(|i| wanted.get(i).copied())
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                mine.sort_by_key(|l| l.port);
                mine.dedup_by_key(|l| l.inode);
                let Some(info) = process_info(&self.proc_root, *pid) else {
                    continue;
                };
                let key = ProcKey {
                    pid: *pid,
                    start_ticks: info.start_ticks,
                };
                for l in mine {
                    out.push(Candidate {
                        key,
                        process: info.clone(),
                        listener: l.clone(),
                        netns: ns,
                        host_netns: host,
                    });
                }
            }
        }
        out.sort_by_key(|c| (c.key, c.listener.port));
        (out, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ns_links_and_environ() {
        assert_eq!(ns_inode(Path::new("net:[4026531992]")), Some(4026531992));
        assert_eq!(ns_inode(Path::new("garbage")), None);
        assert_eq!(
            coverage_port(b"PATH=/bin\0COVERAGE_PORT=9100\0X=1\0"),
            Some(9100)
        );
        assert_eq!(coverage_port(b"COVERAGE_PORT=x\0"), None);
        assert_eq!(coverage_port(b""), None);
    }
}
