//! Which workload a pod belongs to.
//!
//! From `ownerReferences` when the collected metadata carries them, else from
//! the pod name, using the alphabet Kubernetes draws generated suffixes from
//! (`k8s.io/apimachinery/pkg/util/rand`: consonants and digits without
//! vowels or look-alikes, so generated suffixes never spell words).

/// Kubernetes' alphabet for generated name suffixes and pod-template hashes.
pub const K8S_SUFFIX_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// An inferred owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

/// One entry of a pod's `metadata.ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct K8sOwnerReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub controller: Option<bool>,
}

fn is_suffix_char(c: char) -> bool {
    K8S_SUFFIX_ALPHABET.contains(c)
}

fn all_suffix(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.chars().all(is_suffix_char)
}

/// Splits `name-last` at the last dash (both parts non-empty).
fn split_last(s: &str) -> Option<(&str, &str)> {
    let (a, b) = s.rsplit_once('-')?;
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// A ReplicaSet named `<deployment>-<pod-template-hash>` → the Deployment.
fn deployment_of_replicaset(rs: &str) -> Option<&str> {
    let (name, hash) = split_last(rs)?;
    all_suffix(hash, 5, 10).then_some(name)
}

/// A Job named `<cronjob>-<scheduled minutes>` → the CronJob.
fn cronjob_of_job(job: &str) -> Option<&str> {
    let (name, t) = split_last(job)?;
    (t.len() >= 8 && t.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// Resolves ownerReferences to the top-level workload.
pub fn from_owner_references(refs: &[K8sOwnerReference]) -> Option<OwnerRef> {
    let r = refs
        .iter()
        .find(|r| r.controller == Some(true) && !r.kind.is_empty())
        .or_else(|| {
            refs.iter()
                .find(|r| !r.kind.is_empty() && !r.name.is_empty())
        })?;
    let (kind, name) = match r.kind.as_str() {
        "ReplicaSet" => match deployment_of_replicaset(&r.name) {
            Some(d) => ("Deployment", d),
            None => ("ReplicaSet", r.name.as_str()),
        },
        "Job" => match cronjob_of_job(&r.name) {
            Some(c) => ("CronJob", c),
            None => ("Job", r.name.as_str()),
        },
        "Node" => ("StaticPod", ""),
        k => (k, r.name.as_str()),
    };
    Some(OwnerRef {
        kind: kind.into(),
        name: name.into(),
    })
}

/// Infers the owner from a pod name (and the node it ran on, for static pods).
///
/// - `<name>-<hash 5..10>-<5>` → Deployment `<name>`
/// - `<name>-<8+ digits>-<5>` → CronJob `<name>`
/// - `<name>-<5>` → DaemonSet `<name>` (Jobs look the same; `installer-`,
///   `pruner-` and `revision-pruner-` pods are Jobs)
/// - `<name>-<N>` → StatefulSet `<name>`
/// - `<name>-<node name>` → StaticPod `<name>` (mirror pods of static manifests)
/// - anything else → Pod `<pod name>`
pub fn from_pod_name(pod: &str, node: &str) -> OwnerRef {
    let mk = |k: &str, n: &str| OwnerRef {
        kind: k.into(),
        name: n.into(),
    };
    if pod.is_empty() {
        return mk("Pod", "");
    }
    // Static (mirror) pods: `<name>-<node>`; OpenShift's installer/pruner
    // pods: `<name>-<revision>-<node>`.
    if !node.is_empty()
        && let Some(prefix) = pod.strip_suffix(node).and_then(|p| p.strip_suffix('-'))
        && !prefix.is_empty()
    {
        if let Some((base, rev)) = split_last(prefix)
            && rev.bytes().all(|b| b.is_ascii_digit())
            && is_job_like(base)
        {
            return mk("Job", base);
        }
        return mk("StaticPod", prefix);
    }
    if let Some((rest, tail)) = split_last(pod) {
        if all_suffix(tail, 5, 5) {
            if let Some((name, mid)) = split_last(rest) {
                if mid.len() >= 8 && mid.bytes().all(|b| b.is_ascii_digit()) {
                    return mk("CronJob", name);
                }
                if all_suffix(mid, 5, 10) {
                    return mk("Deployment", name);
                }
            }
            if is_job_like(rest) {
                return mk("Job", rest);
            }
            return mk("DaemonSet", rest);
        }
        if tail.bytes().all(|b| b.is_ascii_digit()) {
            if let Some((base, _)) = split_last(rest)
                && is_job_like(base)
            {
                return mk("Job", base);
            }
            if is_job_like(rest) {
                return mk("Job", rest);
            }
            return mk("StatefulSet", rest);
        }
    }
    mk("Pod", pod)
}

fn is_job_like(name: &str) -> bool {
    ["installer", "pruner", "revision-pruner"].contains(&name)
        || name.ends_with("-installer")
        || name.ends_with("-pruner")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(k: &str, n: &str) -> OwnerRef {
        OwnerRef {
            kind: k.into(),
            name: n.into(),
        }
    }

    #[test]
    fn pod_names() {
        assert_eq!(
            from_pod_name("api-server-7d9f8b6c54-x2kqz", ""),
            o("Deployment", "api-server")
        );
        assert_eq!(
            from_pod_name("node-exporter-7xk2p", ""),
            o("DaemonSet", "node-exporter")
        );
        assert_eq!(from_pod_name("etcd-0", ""), o("StatefulSet", "etcd"));
        assert_eq!(
            from_pod_name("prometheus-k8s-1", ""),
            o("StatefulSet", "prometheus-k8s")
        );
        assert_eq!(
            from_pod_name("collect-profiles-29123456-4x9bz", ""),
            o("CronJob", "collect-profiles")
        );
        assert_eq!(
            from_pod_name("etcd-master-0", "master-0"),
            o("StaticPod", "etcd")
        );
        assert_eq!(
            from_pod_name("installer-7-master-0", "master-0"),
            o("Job", "installer")
        );
        assert_eq!(
            from_pod_name("revision-pruner-12-master-1", "master-1"),
            o("Job", "revision-pruner")
        );
        assert_eq!(from_pod_name("installer-x7k2p", ""), o("Job", "installer"));
        // Vowels are never generated: these are names, not suffixes.
        assert_eq!(from_pod_name("my-app-hello", ""), o("Pod", "my-app-hello"));
        assert_eq!(from_pod_name("standalone", ""), o("Pod", "standalone"));
        // A 5-char tail with a vowel is not a suffix.
        assert_eq!(from_pod_name("web-abcde", ""), o("Pod", "web-abcde"));
    }

    #[test]
    fn owner_references() {
        let r = |k: &str, n: &str, c: Option<bool>| K8sOwnerReference {
            kind: k.into(),
            name: n.into(),
            controller: c,
        };
        assert_eq!(
            from_owner_references(&[r("ReplicaSet", "console-6b8f9d7c4", Some(true))]),
            Some(o("Deployment", "console"))
        );
        assert_eq!(
            from_owner_references(&[r("DaemonSet", "dns-default", Some(true))]),
            Some(o("DaemonSet", "dns-default"))
        );
        assert_eq!(
            from_owner_references(&[r("Job", "collect-profiles-29123456", None)]),
            Some(o("CronJob", "collect-profiles"))
        );
        assert_eq!(
            from_owner_references(&[
                r("Job", "migrate", None),
                r("StatefulSet", "db", Some(true))
            ]),
            Some(o("StatefulSet", "db"))
        );
        assert_eq!(from_owner_references(&[]), None);
    }
}
