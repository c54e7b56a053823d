//! The seed system's object layout, exactly:
//!
//! ```text
//! {prefix}/{hostname}/{namespace}/{pod}/{container}/{discovery-time}/{image}/{binary}/
//! {prefix}/{hostname}/_host_/{discovery-time}/{binary}/
//! ```
//!
//! each directory holding `covmeta.<hash>` (written once),
//! `covcounters.<hash>.<pid>.1|.2` (alternating) and `info.json` (written
//! once). Every component goes through [`sanitize`], so no name from a pod
//! or a coverage server can add or remove a level or climb out of the
//! prefix. [`Location::parse`] reads such keys back (for `download`).

use std::time::SystemTime;

use covdata::names::{NameLimit, fnv64};

/// The namespace component of host (non-pod) processes.
pub const HOST_NAMESPACE: &str = "_host_";

/// Longest sanitized component (120 bytes, 16 hash digits when cut).
const KEY_COMPONENT: NameLimit = NameLimit {
    max_len: 120,
    hash_digits: 16,
};

/// Makes one name safe as a key component: keeps `[A-Za-z0-9._-]`, maps
/// everything else to `_`, never starts with `.`, never empty, at most 120
/// bytes (longer names keep a hash of the original so they stay distinct).
pub fn sanitize(name: &str) -> String {
    covdata::names::sanitize(name, KEY_COMPONENT)
}

/// The discovery-time component: UTC, `YYYYMMDDTHHMMSSZ` (no `:` so keys
/// stay plain file names after `download`).
pub fn discovery_time(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string(); // 2026-11-30T13:45:00Z
    s.replace(['-', ':'], "")
}

/// Converts a discovery-time component back to RFC 3339 when it is one
/// (`YYYYMMDDTHHMMSSZ`, RFC 3339 itself, or Unix seconds).
pub fn discovery_time_rfc3339(s: &str) -> Option<String> {
    if humantime::parse_rfc3339(s).is_ok() {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    if b.len() == 16 && b[8] == b'T' && b[15] == b'Z' {
        let r = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[9..11],
            &s[11..13],
            &s[13..15]
        );
        return humantime::parse_rfc3339(&r).is_ok().then_some(r);
    }
    if let Ok(secs) = s.parse::<u64>() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        return Some(humantime::format_rfc3339_seconds(t).to_string());
    }
    None
}

/// Where one process's data lives (before sanitizing).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A container of a pod.
    Pod {
        hostname: String,
        namespace: String,
        pod: String,
        container: String,
        discovery_time: String,
        image: String,
        binary: String,
    },
    /// A process of the node outside any pod (or seen on the host network).
    Host {
        hostname: String,
        discovery_time: String,
        binary: String,
    },
}

/// A file name in a location directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// `covmeta.<hash>`.
    Meta { hash: String },
    /// `covcounters.<hash>.<pid>.<n>`.
    Counters { hash: String, pid: u32, slot: u32 },
    /// `info.json`.
    Info,
    /// `metadata.json` (written by covfleet's agent; not in the seed).
    Metadata,
    /// Anything else.
    Other,
}

impl FileKind {
    /// Classifies a file name.
    pub fn of(name: &str) -> FileKind {
        if name == "info.json" {
            return FileKind::Info;
        }
        if name == "metadata.json" {
            return FileKind::Metadata;
        }
        if let Some(h) = name.strip_prefix("covmeta.")
            && is_hash(h)
        {
            return FileKind::Meta { hash: h.into() };
        }
        if let Some(rest) = name.strip_prefix("covcounters.") {
            let parts: Vec<&str> = rest.split('.').collect();
            if let [h, pid, slot] = parts[..]
                && is_hash(h)
                && let (Ok(pid), Ok(slot)) = (pid.parse(), slot.parse())
            {
                return FileKind::Counters {
                    hash: h.into(),
                    pid,
                    slot,
                };
            }
        }
        FileKind::Other
    }
}

fn is_hash(h: &str) -> bool {
    h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `covmeta.<hash>`.
pub fn meta_name(hash: &str) -> String {
    format!("covmeta.{hash}")
}

/// `covcounters.<hash>.<pid>.<slot>`.
pub fn counters_name(hash: &str, pid: u32, slot: u32) -> String {
    format!("covcounters.{hash}.{pid}.{slot}")
}

impl Location {
    /// The directory relative to the prefix, sanitized, with a trailing `/`.
    pub fn dir(&self) -> String {
        let parts: Vec<&str> = match self {
            Location::Pod {
                hostname,
                namespace,
                pod,
                container,
                discovery_time,
                image,
                binary,
            } => vec![
                hostname,
                namespace,
                pod,
                container,
                discovery_time,
                image,
                binary,
            ],
            Location::Host {
                hostname,
                discovery_time,
                binary,
            } => vec![hostname, HOST_NAMESPACE, discovery_time, binary],
        };
        let mut out = String::new();
        for (i, p) in parts.iter().enumerate() {
            if matches!(self, Location::Host { .. }) && i == 1 {
                out.push_str(HOST_NAMESPACE);
            } else {
                out.push_str(&sanitize(p));
            }
            out.push('/');
        }
        out
    }

    /// The key of `file` in this location, relative to the prefix.
    pub fn key(&self, file: &str) -> String {
        format!("{}{}", self.dir(), file)
    }

    /// Parses a key relative to the prefix into its location and file name.
    /// `None` for keys that are not in the layout.
    pub fn parse(rel: &str) -> Option<(Location, &str)> {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        match parts[..] {
            [hostname, HOST_NAMESPACE, time, binary, file] => Some((
                Location::Host {
                    hostname: hostname.into(),
                    discovery_time: time.into(),
                    binary: binary.into(),
                },
                file,
            )),
            [
                hostname,
                namespace,
                pod,
                container,
                time,
                image,
                binary,
                file,
            ] if namespace != HOST_NAMESPACE => Some((
                Location::Pod {
                    hostname: hostname.into(),
                    namespace: namespace.into(),
                    pod: pod.into(),
                    container: container.into(),
                    discovery_time: time.into(),
                    image: image.into(),
                    binary: binary.into(),
                },
                file,
            )),
            _ => None,
        }
    }

    pub fn hostname(&self) -> &str {
        match self {
            Location::Pod { hostname, .. } | Location::Host { hostname, .. } => hostname,
        }
    }

    pub fn binary(&self) -> &str {
        match self {
            Location::Pod { binary, .. } | Location::Host { binary, .. } => binary,
        }
    }

    pub fn discovery_time(&self) -> &str {
        match self {
            Location::Pod { discovery_time, .. } | Location::Host { discovery_time, .. } => {
                discovery_time
            }
        }
    }

    /// The namespace (`_host_` for host processes).
    pub fn namespace(&self) -> &str {
        match self {
            Location::Pod { namespace, .. } => namespace,
            Location::Host { .. } => HOST_NAMESPACE,
        }
    }

    /// The pod name (empty for host processes).
    pub fn pod(&self) -> &str {
        match self {
            Location::Pod { pod, .. } => pod,
            Location::Host { .. } => "",
        }
    }

    /// The collection entry directory name `download` gives this location:
    /// the components joined by `_`, then a hash of the key directory so
    /// two locations never share an entry.
    pub fn entry_name(&self) -> String {
        let dir = self.dir();
        let mut readable: String = dir.trim_end_matches('/').replace('/', "_");
        if readable.len() > 180 {
            readable.truncate(180);
        }
        format!("{readable}-{:08x}", fnv64(dir.as_bytes()) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_components_are_capped_at_120_bytes_with_a_hash() {
        let s = sanitize(&format!("ns/ééé{}", "x".repeat(200)));
        assert_eq!(s.len(), 120);
        assert_eq!(s, format!("ns____{}-77824b00b8e0ca83", "x".repeat(97)));
    }

    fn pod() -> Location {
        Location::Pod {
            hostname: "node-1".into(),
            namespace: "openshift-etcd".into(),
            pod: "etcd-node-1".into(),
            container: "etcd".into(),
            discovery_time: "20261130T134500Z".into(),
            image: "quay.io/openshift/etcd@sha256:abc".into(),
            binary: "etcd".into(),
        }
    }

    #[test]
    fn keys_follow_the_seed_layout() {
        assert_eq!(
            pod().key("info.json"),
            "node-1/openshift-etcd/etcd-node-1/etcd/20261130T134500Z/quay.io_openshift_etcd_sha256_abc/etcd/info.json"
        );
        let h = Location::Host {
            hostname: "node-1".into(),
            discovery_time: "20261130T134500Z".into(),
            binary: "kubelet".into(),
        };
        assert_eq!(h.dir(), "node-1/_host_/20261130T134500Z/kubelet/");
    }

    #[test]
    fn hostile_names_stay_one_level() {
        let l = Location::Pod {
            hostname: "../..".into(),
            namespace: "a/b".into(),
            pod: "".into(),
            container: ".".into(),
            discovery_time: "x".into(),
            image: "/etc/passwd".into(),
            binary: "..".into(),
        };
        let k = l.key("info.json");
        assert_eq!(k.split('/').count(), 8, "{k}");
        assert!(
            k.split('/').all(|p| !p.is_empty() && p != ".." && p != "."),
            "{k}"
        );
        let (back, file) = Location::parse(&k).unwrap();
        assert_eq!(file, "info.json");
        assert_eq!(back.dir(), l.dir());
    }

    #[test]
    fn parse_round_trips_and_rejects_other_shapes() {
        let k = pod().key("covcounters.0123456789abcdef0123456789abcdef.42.2");
        let (l, f) = Location::parse(&k).unwrap();
        assert_eq!(l.dir(), pod().dir());
        assert_eq!(
            FileKind::of(f),
            FileKind::Counters {
                hash: "0123456789abcdef0123456789abcdef".into(),
                pid: 42,
                slot: 2
            }
        );
        let (h, _) = Location::parse("n/_host_/t/kubelet/info.json").unwrap();
        assert!(matches!(h, Location::Host { .. }));
        for bad in ["a/b/c", "n/_host_/t/b/c/d/e/f", "n//x/y/t/i/b/f", ""] {
            assert!(Location::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(FileKind::of("covmeta.zz"), FileKind::Other);
        assert_eq!(
            FileKind::of("covcounters.0123456789abcdef0123456789abcdef.x.1"),
            FileKind::Other
        );
    }

    #[test]
    fn discovery_times() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let d = discovery_time(t);
        assert_eq!(d, "20270115T080000Z");
        assert_eq!(discovery_time_rfc3339(&d).unwrap(), "2027-01-15T08:00:00Z");
        assert_eq!(
            discovery_time_rfc3339("1800000000").unwrap(),
            "2027-01-15T08:00:00Z"
        );
        assert!(discovery_time_rfc3339("garbage").is_none());
    }

    #[test]
    fn entry_names_are_distinct() {
        let mut other = pod();
        if let Location::Pod { container, .. } = &mut other {
            *container = "etcd_x".into();
        }
        assert_ne!(pod().entry_name(), other.entry_name());
        assert!(!pod().entry_name().contains('/'));
    }
}
