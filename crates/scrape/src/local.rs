//! Coverage servers on this host: listening TCP sockets in the port range
//! (`/proc/net/tcp` and `/proc/net/tcp6` of the caller's network
//! namespace), their owning processes (socket inode → PID through
//! `/proc/*/fd`), and the facts needed to tell processes apart (start time,
//! PIDs in nested PID namespaces). A process that vanishes while being read
//! is normal and simply skipped.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

impl Listener {
    /// The address to connect to (loopback for a wildcard bind).
    pub fn connect_addr(&self) -> SocketAddr {
        let ip = match self.addr {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(a),
            },
            other => other,
        };
        SocketAddr::new(ip, self.port)
    }
}

/// Facts about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// `/proc/PID/exe`, when readable.
    pub exe: Option<PathBuf>,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`):
    /// with the PID, it identifies a process even across PID reuse.
    pub start_ticks: u64,
    /// The PID in each nested PID namespace, outermost first (`NSpid:`).
    pub ns_pids: Vec<u32>,
}

impl ProcessInfo {
    /// Whether a server reporting `pid` can be this process.
    pub fn answers_to(&self, pid: u32) -> bool {
        self.pid == pid || self.ns_pids.contains(&pid)
    }
}

/// A coverage-server candidate found on this host.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub listener: Listener,
    /// Processes holding the socket (usually one).
    pub owners: Vec<ProcessInfo>,
}

fn parse_hex_u32_le(s: &str) -> Option<[u8; 4]> {
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(v.to_le_bytes())
}

/// Parses one `/proc/net/tcp{,6}` table, keeping listening sockets.
pub fn parse_tcp_table(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some((ip_hex, port_hex)) = f[1].split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port_hex, 16) else {
            continue;
        };
        let Ok(inode) = f[9].parse::<u64>() else {
            continue;
        };
        let addr = match ip_hex.len() {
            8 => match parse_hex_u32_le(ip_hex) {
                Some(b) => IpAddr::V4(Ipv4Addr::from(b)),
                None => continue,
            },
            32 => {
                let mut bytes = [0u8; 16];
                let mut ok = true;
                for i in 0..4 {
                    match parse_hex_u32_le(&ip_hex[i * 8..i * 8 + 8]) {
                        Some(b) => bytes[i * 4..i * 4 + 4].copy_from_slice(&b),
                        None => ok = false,
                    }
                }
                if !ok {
                    continue;
                }
                IpAddr::V6(Ipv6Addr::from(bytes))
            }
            _ => continue,
        };
        out.push(Listener { addr, port, inode });
    }
    out
}

/// Listening sockets with a port in `ports`, from `PROC/net/tcp` and `tcp6`.
pub fn listening_sockets(
    proc_root: &Path,
    ports: &RangeInclusive<u16>,
) -> Result<Vec<Listener>, Error> {
    let mut out = Vec::new();
    let mut any = false;
    for table in ["net/tcp", "net/tcp6"] {
        let path = proc_root.join(table);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                any = true;
                out.extend(
                    parse_tcp_table(&text)
                        .into_iter()
                        .filter(|l| ports.contains(&l.port)),
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    if !any {
        return Err(Error::io(
            proc_root.join("net/tcp"),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither net/tcp nor net/tcp6 is readable",
            ),
        ));
    }
    out.sort_by_key(|l| (l.port, l.inode));
    out.dedup_by_key(|l| l.inode);
    Ok(out)
}

/// Maps socket inodes to the PIDs that hold them, by reading every
/// `/proc/PID/fd/*` link. Unreadable or vanished processes are skipped.
pub fn socket_owners(proc_root: &Path, inodes: &[u64]) -> HashMap<u64, Vec<u32>> {
    let mut out: HashMap<u64, Vec<u32>> = HashMap::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = link
                .to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                let pids = out.entry(inode).or_default();
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    for pids in out.values_mut() {
        pids.sort_unstable();
    }
    out
}

/// Reads what we need about `pid`; `None` when it is gone or unreadable.
pub fn process_info(proc_root: &Path, pid: u32) -> Option<ProcessInfo> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' the first field is field 3 (state); starttime is field 22.
    let start_ticks = fields.get(22 - 3)?.parse().ok()?;
    let comm = std::fs::read_to_string(dir.join("comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default();
    let exe = std::fs::read_link(dir.join("exe")).ok();
    let ns_pids = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("NSpid:")).map(|v| {
                v.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_else(|| vec![pid]);
    Some(ProcessInfo {
        pid,
        exe,
        comm,
        start_ticks,
        ns_pids,
    })
}

/// Every listening socket in `ports` with its owners.
pub fn discover(proc_root: &Path, ports: &RangeInclusive<u16>) -> Result<Vec<Candidate>, Error> {
    let listeners = listening_sockets(proc_root, ports)?;
    let inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
    let owners = socket_owners(proc_root, &inodes);
    let mut by_port: BTreeMap<(u16, u64), Candidate> = BTreeMap::new();
    for l in listeners {
        let procs = owners
            .get(&l.inode)
            .map(|pids| {
                pids.iter()
                    .filter_map(|p| process_info(proc_root, *p))
                    .collect()
            })
            .unwrap_or_default();
        by_port.insert(
            (l.port, l.inode),
            Candidate {
                listener: l,
                owners: procs,
            },
        );
    }
    Ok(by_port.into_values().collect())
}

/// This host's name (`/proc/sys/kernel/hostname`, else `HOSTNAME`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:D1C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D1C5 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:D1C5 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000200A8C0:D1C6 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_listening_v4_and_v6() {
        let v4 = parse_tcp_table(TCP);
        assert_eq!(
            v4,
            vec![Listener {
                addr: "127.0.0.1".parse().unwrap(),
                port: 53700,
                inode: 4242
            }]
        );
        let v6 = parse_tcp_table(TCP6);
        assert_eq!(v6.len(), 2);
        assert_eq!(v6[0].addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(v6[0].port, 53701);
        assert_eq!(v6[0].connect_addr(), "127.0.0.1:53701".parse().unwrap());
        assert_eq!(v6[1].connect_addr(), "192.168.0.2:53702".parse().unwrap());
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        let info = process_info(Path::new("/proc"), me).expect("own /proc entry");
        assert!(info.answers_to(me));
        assert!(info.start_ticks > 0);
    }
}
