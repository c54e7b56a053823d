//! Findings about a pod, read through the Kubernetes API: the pod's spec
//! and status (phase, containers, restarts and how the last run ended,
//! `GOCOVERDIR` in the container's env and whether a volume holds it) and
//! its coverage servers, probed through the API server's pod `proxy`
//! subresource (which server answers on which port, for which binary and
//! PID, attributed to which container).
//!
//! Nothing here runs on the node: what only the node can tell (the
//! directory as the process sees it, its uid) is `doctor --pid` there.

use std::ops::RangeInclusive;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use kube::{Api, Client};
use scrape::kube::{PodInfo, Via};
use scrape::protocol::{self, ClientOptions, Endpoint, Probe};

use crate::{FIX_SIGTERM, Finding, Report, Severity, server};

/// What to examine.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    /// Only this container (`--container`).
    pub container: Option<String>,
    /// The coverage port range (for hostNetwork pods, all of it is probed).
    pub ports: RangeInclusive<u16>,
}

/// A coverage server found in the pod (its binary and PID are in the
/// `server-answers` finding).
#[derive(Debug, Clone)]
struct Found {
    /// The container it belongs to, when one matches.
    container: Option<String>,
}

/// Reads the pod and probes its servers. An error only when the API
/// cannot be asked at all (a missing pod is a finding).
pub async fn diagnose(
    client: &Client,
    target: &Target,
    opts: &ClientOptions,
) -> Result<Report, crate::Error> {
    let mut report = Report::new(format!("pod {}/{}", target.namespace, target.pod));
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let pod = match api.get_opt(&target.pod).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            report.push(
                Finding::new(
                    "pod-not-found",
                    Severity::Problem,
                    format!(
                        "no pod {} in namespace {}",
                        target.pod, target.namespace
                    ),
                )
                .fix(format!(
                    "check the name and the namespace (-n): `kubectl get pods -n {}`; a pod replaced by its controller has a new name",
                    target.namespace
                )),
            );
            return Ok(report);
        }
        Err(e) => {
            return Err(crate::Error::Kube {
                pod: format!("{}/{}", target.namespace, target.pod),
                reason: scrape::transport::chain(&e),
            });
        }
    };
    let info = scrape::kube::pod_info(&pod);
    let spec_containers: Vec<&Container> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().collect())
        .unwrap_or_default();
    let statuses: Vec<ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let names: Vec<&str> = spec_containers.iter().map(|c| c.name.as_str()).collect();
    let chosen: Vec<&Container> = match &target.container {
        Some(want) => {
            let c: Vec<&Container> = spec_containers
                .iter()
                .copied()
                .filter(|c| &c.name == want)
                .collect();
            if c.is_empty() {
                report.push(
                    Finding::new(
                        "container-not-found",
                        Severity::Problem,
                        format!(
                            "the pod has no container {want:?} (it has: {})",
                            names.join(", ")
                        ),
                    )
                    .fix("give one of the pod's containers with --container"),
                );
                return Ok(report);
            }
            c
        }
        None => spec_containers.clone(),
    };
    report.push(Finding::new(
        "containers",
        Severity::Info,
        format!(
            "containers: {}{}",
            names.join(", "),
            if info.host_network {
                " (hostNetwork: they share the node's network and its ports)"
            } else {
                ""
            }
        ),
    ));
    pod_phase(&mut report, &pod, &info);

    // Coverage servers, through the API server's pod proxy (`None`: the
    // API server does not let these credentials use it).
    let mut found = Some(Vec::new());
    if info.phase == "Running" {
        found = probe_servers(client, &info, target, opts, &mut report).await;
    }

    for c in chosen {
        let st = statuses.iter().find(|s| s.name == c.name);
        container_state(&mut report, &c.name, st);
        let mine: Vec<&Found> = found
            .iter()
            .flatten()
            .filter(|f| f.container.as_deref() == Some(c.name.as_str()))
            .collect();
        if info.phase == "Running" && found.is_some() && mine.is_empty() {
            report.push(
                Finding::new(
                    "no-coverage-server",
                    Severity::Problem,
                    format!(
                        "container {}: no coverage server of it answers through the pod proxy",
                        c.name
                    ),
                )
                .fix(format!(
                    "build its binary with `covfleet instrument` (or the go-shim) and -cover -covermode=atomic and check it with `covfleet doctor BINARY`; the server listens on 53700 and up (COVERAGE_PORT), not on 127.0.0.1 only (COVERAGE_BIND), and its binary's name should match the container's command or name ({})",
                    c.name
                )),
            );
        }
        gocoverdir(&mut report, c, !mine.is_empty() || found.is_none());
    }
    Ok(report)
}

/// The pod's phase, and why it is not running.
fn pod_phase(report: &mut Report, pod: &Pod, info: &PodInfo) {
    if pod.metadata.deletion_timestamp.is_some() {
        report.push(
            Finding::new(
                "pod-terminating",
                Severity::Warning,
                "the pod is being deleted: its containers got SIGTERM",
            )
            .fix(FIX_SIGTERM),
        );
    }
    if info.phase == "Running" {
        report.push(Finding::new(
            "pod-running",
            Severity::Ok,
            format!(
                "the pod is Running on node {} (pod IP {})",
                if info.node.is_empty() {
                    "?"
                } else {
                    &info.node
                },
                info.pod_ip.as_deref().unwrap_or("none")
            ),
        ));
        return;
    }
    let phase = if info.phase.is_empty() {
        "in no phase"
    } else {
        &info.phase
    };
    let fix = match info.phase.as_str() {
        "Pending" if info.node.is_empty() => {
            "the pod is not scheduled yet: `kubectl describe pod` shows why (resources, node selectors, taints)"
        }
        "Pending" => {
            "its containers have not started: `kubectl describe pod` shows the events (image pulls, volumes)"
        }
        "Succeeded" | "Failed" => {
            "the pod has ended: live coverage is gone; only what it wrote to GOCOVERDIR on a volume, or what `covfleet collect --watch` / the agent stored while it ran, remains"
        }
        _ => "`kubectl describe pod` shows what the kubelet reports",
    };
    report.push(
        Finding::new(
            "pod-not-running",
            Severity::Problem,
            format!("the pod is {phase}, so nothing in it can be scraped"),
        )
        .fix(fix),
    );
}

/// State, restarts and how the last run of a container ended.
fn container_state(report: &mut Report, name: &str, st: Option<&ContainerStatus>) {
    let Some(st) = st else {
        report.push(Finding::new(
            "container-not-started",
            Severity::Warning,
            format!("container {name}: no status yet (not started)"),
        ));
        return;
    };
    let state = st.state.as_ref();
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or("waiting");
        report.push(
            Finding::new(
                "container-waiting",
                Severity::Problem,
                format!(
                    "container {name}: {reason}{}",
                    w.message
                        .as_deref()
                        .map(|m| format!(" ({})", protocol::printable(m.as_bytes())))
                        .unwrap_or_default()
                ),
            )
            .fix("`kubectl describe pod` and `kubectl logs --previous` show why it does not run"),
        );
    } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        report.push(Finding::new(
            "container-terminated",
            Severity::Warning,
            format!(
                "container {name}: terminated (exit code {}{})",
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            ),
        ));
    } else if state.and_then(|s| s.running.as_ref()).is_some() {
        report.push(Finding::new(
            "container-running",
            Severity::Ok,
            format!("container {name}: running, image {}", st.image),
        ));
    }
    if st.restart_count > 0 {
        report.push(
            Finding::new(
                "container-restarts",
                Severity::Warning,
                format!(
                    "container {name}: restarted {} times; each restart is a new process whose counters start at zero",
                    st.restart_count
                ),
            )
            .fix("collect continuously (`covfleet collect --watch` or the agent) so every process is kept, or set COVERAGE_FLUSH_INTERVAL with GOCOVERDIR on a volume"),
        );
    }
    let last = st
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| state.and_then(|s| s.terminated.as_ref()));
    if let Some(t) = last {
        let how = match (t.exit_code, t.signal) {
            (_, Some(sig)) => Some(format!("killed by signal {sig}")),
            (2, _) => Some(
                "exit code 2: how the Go runtime ends PID 1 of a container after a SIGTERM it does not handle — main never returned, so Go wrote no counters to GOCOVERDIR".to_string(),
            ),
            (143, _) => Some(
                "exit code 143 (128+SIGTERM): killed by SIGTERM without handling it — Go wrote no counters to GOCOVERDIR".to_string(),
            ),
            (137, _) => Some(
                "exit code 137 (128+SIGKILL): killed (out of memory, or the grace period ran out) — nothing is written on that path".to_string(),
            ),
            _ => None,
        };
        if let Some(how) = how {
            report.push(
                Finding::new(
                    "exit-path",
                    Severity::Problem,
                    format!("container {name}: its last run ended with {how}"),
                )
                .fix(FIX_SIGTERM),
            );
        }
    }
}

/// `GOCOVERDIR` as the container's spec sets it, and the volume behind it.
fn gocoverdir(report: &mut Report, c: &Container, server_answers: bool) {
    let env = c.env.as_deref().unwrap_or_default();
    let var = |k: &str| env.iter().find(|e| e.name == k);
    if let Some(e) = var("COVERAGE_FLUSH_INTERVAL").and_then(|e| e.value.as_deref()) {
        report.push(Finding::new(
            "flush-interval",
            Severity::Ok,
            format!(
                "container {}: COVERAGE_FLUSH_INTERVAL={}: the injected server rewrites GOCOVERDIR periodically and on SIGTERM",
                c.name,
                protocol::printable(e.as_bytes())
            ),
        ));
    }
    let Some(e) = var("GOCOVERDIR") else {
        let (sev, fix) = if server_answers {
            (Severity::Info, None)
        } else {
            (
                Severity::Problem,
                Some(
                    "set GOCOVERDIR to a directory on a volume (emptyDir, hostPath the agent watches) so data written at exit survives, or collect live through the coverage server",
                ),
            )
        };
        let mut f = Finding::new(
            "gocoverdir-unset",
            sev,
            format!(
                "container {}: GOCOVERDIR is not set in its spec{}",
                c.name,
                if server_answers {
                    " (live collection needs no directory)"
                } else {
                    ""
                }
            ),
        );
        if let Some(fix) = fix {
            f = f.fix(fix);
        }
        report.push(f);
        return;
    };
    let Some(dir) = e.value.as_deref() else {
        report.push(Finding::new(
            "gocoverdir-from-reference",
            Severity::Info,
            format!(
                "container {}: GOCOVERDIR comes from a reference (valueFrom); `covfleet doctor --pid` on the node shows its value",
                c.name
            ),
        ));
        return;
    };
    let dir_p = protocol::printable(dir.as_bytes());
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let holder = mounts
        .iter()
        .filter(|m| {
            let mp = m.mount_path.trim_end_matches('/');
            dir == mp || dir.starts_with(&format!("{mp}/")) || mp.is_empty()
        })
        .max_by_key(|m| m.mount_path.len());
    match holder {
        Some(m) if m.read_only == Some(true) => report.push(
            Finding::new(
                "gocoverdir-read-only",
                Severity::Problem,
                format!(
                    "container {}: GOCOVERDIR={dir_p} is on volume {} mounted read-only",
                    c.name, m.name
                ),
            )
            .fix("mount that volume read-write"),
        ),
        Some(m) => report.push(Finding::new(
            "gocoverdir-volume",
            Severity::Ok,
            format!(
                "container {}: GOCOVERDIR={dir_p} is on volume {} (mounted at {})",
                c.name, m.name, m.mount_path
            ),
        )),
        None => report.push(
            Finding::new(
                "gocoverdir-not-mounted",
                Severity::Warning,
                format!(
                    "container {}: GOCOVERDIR={dir_p} is on the container's own filesystem: what Go writes there is lost with the container (restarts, deletion) and needs the image to have that directory, writable by the container's user",
                    c.name
                ),
            )
            .fix("mount a volume there (emptyDir shared with a sidecar, or a hostPath the agent watches)"),
        ),
    }
}

/// Probes the pod's coverage ports through the pod proxy; `None` when the
/// API server refuses these credentials the proxy (a finding says so).
async fn probe_servers(
    client: &Client,
    info: &PodInfo,
    target: &Target,
    opts: &ClientOptions,
    report: &mut Report,
) -> Option<Vec<Found>> {
    let ports = scrape::kube::ports_to_probe(info, &target.ports);
    let probe_opts = ClientOptions {
        retries: 0,
        ..opts.clone()
    };
    let mut found = Vec::new();
    let mut silent = Vec::new();
    for port in ports {
        let ep = Endpoint::new(scrape::kube::transport(client, Via::Proxy, info, port));
        let at = format!("{}/{} port {port}", info.namespace, info.name);
        match protocol::probe(&ep, &probe_opts).await {
            Err(scrape::Error::Transport { source, .. })
                if source.kind == scrape::TransportErrorKind::Connect =>
            {
                silent.push(port);
                continue;
            }
            Ok(Probe::NotCoverage {
                status: status @ (401 | 403),
                ..
            }) => {
                report.push(
                    Finding::new(
                        "proxy-forbidden",
                        Severity::Problem,
                        format!(
                            "the API server refuses the pod proxy (HTTP {status}): these credentials may not `get` pods/proxy in namespace {}, so no coverage server could be checked (nor collected with `collect --kube`)",
                            info.namespace
                        ),
                    )
                    .fix("grant `get` (and `create`, for reset) on pods/proxy — deploy/collect-rbac.yaml, docs/collect.md — or run `covfleet doctor --pid PID` on the node"),
                );
                return None;
            }
            Ok(Probe::NotCoverage { .. }) if info.host_network => continue,
            Ok(Probe::Coverage(id)) => {
                let container =
                    scrape::kube::match_container(info, &id, port).map(|c| c.name.clone());
                if info.host_network && container.is_none() {
                    report.push(Finding::new(
                        "other-server",
                        Severity::Info,
                        format!(
                            "port {port} of the node: coverage server of {} (pid {}), not one of this pod's containers",
                            protocol::printable(id.binary.as_bytes()),
                            id.pid
                        ),
                    ));
                    continue;
                }
                let check = server::check_endpoint(&ep, &at, opts).await;
                let name = container.clone().unwrap_or_else(|| "?".into());
                for mut f in check.findings {
                    f.summary = format!("container {name}: {}", f.summary);
                    report.push(f);
                }
                found.push(Found { container });
            }
            _ => {
                // Something answers but not as expected: say what.
                let check = server::check_endpoint(&ep, &at, opts).await;
                report.findings.extend(check.findings);
            }
        }
    }
    if !silent.is_empty() && !info.host_network {
        report.push(Finding::new(
            "ports-silent",
            Severity::Info,
            format!(
                "nothing listens on port{} {} of the pod (probed through the API server's pod proxy)",
                if silent.len() == 1 { "" } else { "s" },
                silent
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Some(found)
}
