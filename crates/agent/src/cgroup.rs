//! PID → container: the container ID (and pod UID when the path has it)
//! from `/proc/PID/cgroup`.
//!
//! Handles cgroup v2 (`0::/path`) and v1 (`N:controllers:/path`), the
//! systemd driver (`…/kubepods-burstable-pod<uid>.slice/crio-<id>.scope`,
//! `cri-containerd-<id>.scope`, `docker-<id>.scope`) and the cgroupfs driver
//! (`/kubepods/burstable/pod<uid>/<id>`, `/docker/<id>`). CRI-O's `conmon`
//! scopes (`crio-conmon-<id>.scope`) are the runtime's monitor, not a
//! container.

/// The container runtime a cgroup path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    CriO,
    Containerd,
    Docker,
    /// Podman (`libpod-<id>.scope`).
    Podman,
    /// A bare ID (cgroupfs driver under `kubepods`): any runtime.
    Unknown,
}

impl Runtime {
    /// The prefix Kubernetes uses in `containerStatuses[].containerID`.
    pub fn scheme(self) -> Option<&'static str> {
        match self {
            Runtime::CriO => Some("cri-o"),
            Runtime::Containerd => Some("containerd"),
            Runtime::Docker => Some("docker"),
            Runtime::Podman | Runtime::Unknown => None,
        }
    }
}

/// A container as seen from its cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub runtime: Runtime,
    /// The full hexadecimal container ID.
    pub id: String,
    /// The pod UID (dashes restored) when the path names the pod.
    pub pod_uid: Option<String>,
}

fn is_container_id(s: &str) -> bool {
    (12..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `pod<uid>` (cgroupfs) or `kubepods-…-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid_of(segment: &str) -> Option<String> {
    let s = segment.strip_suffix(".slice").unwrap_or(segment);
    let idx = s.rfind("pod")?;
    if idx > 0 && !s[..idx].ends_with('-') {
        return None;
    }
    let uid = s[idx + 3..].replace('_', "-");
    let ok = uid.len() >= 32
        && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && uid.bytes().filter(u8::is_ascii_hexdigit).count() == 32;
    ok.then_some(uid)
}

/// The container named by one cgroup path, if any.
pub fn container_of_path(path: &str) -> Option<ContainerRef> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segments.iter().enumerate().rev() {
        let bare = seg.strip_suffix(".scope").unwrap_or(seg);
        let found = if bare.starts_with("crio-conmon-") {
            None
        } else if let Some(id) = bare.strip_prefix("crio-") {
            Some((Runtime::CriO, id))
        } else if let Some(id) = bare.strip_prefix("cri-containerd-") {
            Some((Runtime::Containerd, id))
        } else if let Some(id) = bare.strip_prefix("docker-") {
            Some((Runtime::Docker, id))
        } else if let Some(id) = bare.strip_prefix("libpod-") {
            Some((Runtime::Podman, id))
        } else if is_container_id(bare) && bare.len() == 64 {
            let parent = segments[..i].join("/");
            let rt = if parent.contains("docker") {
                Runtime::Docker
            } else if parent.contains("crio") {
                Runtime::CriO
            } else if parent.contains("containerd") {
                Runtime::Containerd
            } else {
                Runtime::Unknown
            };
            Some((rt, bare))
        } else {
            None
        };
        if let Some((runtime, id)) = found
            && is_container_id(id)
        {
            let pod_uid = segments[..i].iter().rev().find_map(|s| pod_uid_of(s));
            return Some(ContainerRef {
                runtime,
                id: id.to_ascii_lowercase(),
                pod_uid,
            });
        }
    }
    None
}

/// The container of a process, from the text of `/proc/PID/cgroup`: the
/// unified (v2) line first, then v1 lines (the `name=systemd` hierarchy
/// before the others).
pub fn container_of(cgroup_text: &str) -> Option<ContainerRef> {
    let mut lines: Vec<(u8, &str)> = cgroup_text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_hier, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            let rank = match ctrl {
                "" => 0,
                "name=systemd" => 1,
                _ => 2,
            };
            Some((rank, path))
        })
        .collect();
    lines.sort_by_key(|(r, _)| *r);
    lines.into_iter().find_map(|(_, p)| container_of_path(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778a";
    const UID: &str = "0b9f5f2e-6c1d-4d8a-9e3b-2a1c4d5e6f70";

    #[test]
    fn crio_systemd_v2() {
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-{ID}.scope\n",
            UID.replace('-', "_")
        );
        let c = container_of(&text).unwrap();
        assert_eq!(c.runtime, Runtime::CriO);
        assert_eq!(c.id, ID);
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn containerd_systemd_and_conmon() {
        let c = container_of_path(&format!(
            "/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        ))
        .unwrap();
        assert_eq!(c.runtime, Runtime::Containerd);
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        assert_eq!(
            container_of_path(&format!("/kubepods.slice/crio-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn cgroupfs_v1_and_docker() {
        let text = format!(
            "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n\
             11:memory:/kubepods/besteffort/pod{UID}/{ID}\n\
             1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n"
        );
        let c = container_of(&text).unwrap();
        assert_eq!(c.runtime, Runtime::Unknown);
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        let docker = container_of(&format!(
            "4:memory:/docker/{ID}\n0::/system.slice/docker-{ID}.scope\n"
        ))
        .unwrap();
        assert_eq!(docker.runtime, Runtime::Docker);
        assert_eq!(docker.pod_uid, None);
        assert_eq!(
            container_of(&format!("3:cpu:/docker/{ID}\n"))
                .unwrap()
                .runtime,
            Runtime::Docker
        );
    }

    #[test]
    fn host_processes_have_none() {
        for text in [
            "0::/\n",
            "0::/system.slice/kubelet.service\n1:name=systemd:/user.slice/user-0.slice/session-3.scope\n",
            "4:memory:/process_api/44fb0d25cd238ca6d48bc0858d037597\n0::/\n",
            "garbage",
            "",
            "0::/kubepods.slice/crio-zzzz.scope\n",
        ] {
            assert_eq!(container_of(text), None, "{text:?}");
        }
    }
}
