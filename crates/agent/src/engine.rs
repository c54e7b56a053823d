//! The agent's loop: scan `/proc` on a tick, probe new candidates (identity
//! by `HEAD`, attribution by cgroup and pod), poll every confirmed server on
//! the adaptive schedule (full fetch first, counters only after), store
//! snapshots in the sink, and scrape a pod's processes at once when the pod
//! starts terminating.
//!
//! Storing goes through the store's [`Uploader`]: the seed layout, meta
//! and `info.json` once, counters in alternating slots, and a bounded
//! on-disk spool that keeps the newest snapshot of each process while the
//! sink is down (also across agent restarts).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use scrape::error::{Error as ScrapeError, TransportErrorKind};
use scrape::output::{ContainerMeta, Metadata};
use scrape::protocol::{self, ClientOptions, Endpoint, Identity, Probe};
use scrape::schedule::Schedule;
use scrape::transport::Direct;

use crate::cgroup;
use crate::discovery::{Candidate, ProcKey, Scanner};
use crate::metrics::Metrics;
use crate::pods::{Attribution, PodIndex};
use store::Location;
use store::upload::{Outcome, Snapshot, Uploader};

/// Everything the loop needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The host's `/proc` (read-only is enough).
    pub proc_root: PathBuf,
    /// The default coverage port range.
    pub ports: RangeInclusive<u16>,
    /// Pause between scans of `/proc`.
    pub scan_every: Duration,
    pub schedule: Schedule,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Limit for one request to a coverage server.
    pub timeout: Duration,
    /// Limit for storing one file.
    pub sink_timeout: Duration,
    /// Largest answer accepted from one server (bounds memory per target).
    pub max_target_bytes: usize,
    /// Most targets followed at once (bounds memory in total).
    pub max_targets: usize,
    /// This node's name in the layout.
    pub hostname: String,
    /// Name the layout after the node name the pod metadata loop learns
    /// (a SelfSubjectReview, see [`PodIndex::node`]) once it is known, as
    /// `collect --kube` names a pod's node; `hostname` until then.
    pub hostname_from_node: bool,
    /// How long a candidate that was refused (not a coverage server,
    /// identity mismatch, not built with -cover) is left alone.
    pub recheck: Duration,
    /// `crictl` for attribution when the API does not know a container.
    pub crictl: Option<PathBuf>,
    /// Whether pod metadata is expected (wait for the first pod list
    /// before attributing containers, up to `kube_grace`).
    pub kube_grace: Duration,
    /// With pod metadata: how long a process in a container the pod index
    /// does not know yet waits for it (the kubelet writes the container ID
    /// into the pod's status only after the container started; the pod
    /// watch brings it a moment later) before it is stored as a host
    /// process.
    pub unknown_container_grace: Duration,
    /// Bearer token for coverage servers that want one.
    pub token: Option<String>,
    /// Directories of exit-time data to ship (`--watch-dir`).
    pub watch: Option<crate::exits::WatchConfig>,
}

impl Config {
    pub fn new(hostname: String) -> Config {
        Config {
            proc_root: PathBuf::from("/proc"),
            ports: protocol::default_ports(),
            scan_every: Duration::from_secs(5),
            schedule: Schedule::default(),
            concurrency: 16,
            timeout: Duration::from_secs(5),
            sink_timeout: Duration::from_secs(30),
            max_target_bytes: 64 << 20,
            max_targets: 1024,
            hostname,
            hostname_from_node: false,
            recheck: Duration::from_secs(60),
            crictl: None,
            kube_grace: Duration::ZERO,
            unknown_container_grace: Duration::from_secs(30),
            token: None,
            watch: None,
        }
    }
}

type TargetKey = (ProcKey, u16);

/// A probe or a poll in flight.
type Work<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Done> + 'a>>;

/// What a probe or a poll came back with.
enum Done {
    Probed(TargetKey, Result<Box<Target>, Option<Refused>>),
    Polled(Box<Target>, Option<ScrapeError>),
}

/// What the loop keeps between rounds.
#[derive(Default)]
struct LoopState {
    targets: HashMap<TargetKey, Target>,
    refused: HashMap<TargetKey, (Instant, Refused)>,
    /// Candidates being probed.
    probing: HashSet<TargetKey>,
}

/// Why a candidate is left alone for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Not a coverage server, or one whose identity does not match.
    Rejected,
    /// A coverage server in a binary built without `-cover`.
    NotCovered,
    /// No transport answered within the timeout (a listener that accepts
    /// and never answers): probed again after a shorter while.
    Unresponsive,
}

/// One coverage server being followed.
#[derive(Debug, Clone)]
struct Target {
    key: TargetKey,
    endpoint: Endpoint,
    identity: Identity,
    loc: Location,
    discovered: SystemTime,
    place: Option<PodPlace>,
    md: Metadata,
    pod_uid: Option<String>,
    hash: Option<covdata::Hash>,
    /// Slot (1 or 2) of the newest stored counter file, 0 before the first.
    slot: u32,
    first_seen: Instant,
    next_due: Instant,
    failures: u32,
    /// A poll is in flight.
    busy: bool,
}

/// A pod's container, as placed in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodPlace {
    namespace: String,
    pod: String,
    container: String,
    image: String,
}

fn location(hostname: &str, place: Option<&PodPlace>, t: SystemTime, binary: &str) -> Location {
    let discovery_time = store::layout::discovery_time(t);
    match place {
        Some(p) => Location::Pod {
            hostname: hostname.into(),
            namespace: p.namespace.clone(),
            pod: p.pod.clone(),
            container: p.container.clone(),
            discovery_time,
            image: if p.image.is_empty() {
                "unknown".into()
            } else {
                p.image.clone()
            },
            binary: binary.into(),
        },
        None => Location::Host {
            hostname: hostname.into(),
            discovery_time,
            binary: binary.into(),
        },
    }
}

/// The agent.
#[derive(Debug)]
pub struct Agent {
    cfg: Config,
    uploader: Arc<Uploader>,
    pods: Arc<RwLock<PodIndex>>,
    metrics: Arc<Metrics>,
    started: Instant,
    /// Container IDs seen in a cgroup but not (yet) in the pod index, and
    /// since when.
    unknown_containers: std::sync::Mutex<HashMap<String, Instant>>,
    /// One answer at most `max_target_bytes`; all answers in memory at once
    /// at most that times the concurrency (one budget for the whole agent).
    limits: scrape::budget::Limits,
}

fn reason_of(e: &ScrapeError) -> &'static str {
    match e {
        ScrapeError::Transport { source, .. } => match source.kind {
            TransportErrorKind::Connect => "connect",
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Other => "transport",
            TransportErrorKind::TooLarge => "too-large",
            TransportErrorKind::OverBudget => "over-budget",
        },
        ScrapeError::Timeout { .. } => "timeout",
        ScrapeError::TooLarge { .. } => "too-large",
        ScrapeError::Status { .. } => "status",
        ScrapeError::Malformed { .. } => "malformed",
        ScrapeError::Identity { .. } => "identity",
        _ => "other",
    }
}

impl Agent {
    /// An agent storing through `uploader`, attributing with `pods` (which
    /// the caller keeps in sync, e.g. with [`crate::pods::watch_pods`]).
    pub fn new(
        cfg: Config,
        uploader: Arc<Uploader>,
        pods: Arc<RwLock<PodIndex>>,
        metrics: Arc<Metrics>,
    ) -> Agent {
        let max = cfg.max_target_bytes as u64;
        let limits = scrape::budget::Limits {
            max_snapshot: max,
            budget: scrape::budget::MemoryBudget::new(
                max.saturating_mul(cfg.concurrency.max(1) as u64),
            ),
        };
        Agent {
            cfg,
            uploader,
            pods,
            metrics,
            started: Instant::now(),
            unknown_containers: Default::default(),
            limits,
        }
    }

    fn opts(&self) -> ClientOptions {
        ClientOptions {
            timeout: self.cfg.timeout,
            retries: 0,
            backoff: Duration::from_millis(100),
            token: self.cfg.token.clone(),
            limits: self.limits.clone(),
        }
    }

    /// Whether pod metadata is on its way: the first pod list has not
    /// come yet and [`Config::kube_grace`] has not run out.
    fn pods_pending(&self, synced: bool) -> bool {
        !synced && self.started.elapsed() < self.cfg.kube_grace
    }

    /// This node's name in the layout (see [`Config::hostname_from_node`]).
    fn hostname(&self) -> String {
        crate::pods::layout_hostname(&self.pods, &self.cfg.hostname, self.cfg.hostname_from_node)
    }

    /// The pod and container of a process, when it is in one.
    fn attribute(&self, c: &Candidate) -> Result<Option<(Attribution, String)>, ()> {
        let path = self
            .cfg
            .proc_root
            .join(c.key.pid.to_string())
            .join("cgroup");
        let Some(cref) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| cgroup::container_of(&t))
        else {
            return Ok(None);
        };
        let (found, synced) = match self.pods.read() {
            Ok(idx) => (idx.lookup(&cref), idx.synced),
            Err(_) => (None, false),
        };
        if let Some(a) = found {
            self.lock_unknown().remove(&cref.id);
            return Ok(Some((a, cref.id)));
        }
        if let Some(crictl) = &self.cfg.crictl
            && let Some(a) = crate::pods::crictl_inspect(crictl, &cref.id)
        {
            return Ok(Some((a, cref.id)));
        }
        if self.pods_pending(synced) {
            // Pod metadata is on its way: look again at the next scan.
            return Err(());
        }
        if synced && self.waits_for_pod(&cref.id) {
            // A container the node's pods do not name yet: its pod's status
            // is about to (look again at the next scan).
            return Err(());
        }
        Ok(None)
    }

    fn lock_unknown(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.unknown_containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a container unknown to the pod index is still within
    /// [`Config::unknown_container_grace`] of its first sighting.
    fn waits_for_pod(&self, id: &str) -> bool {
        let grace = self.cfg.unknown_container_grace;
        let mut unknown = self.lock_unknown();
        if unknown.len() >= 4096 {
            unknown.retain(|_, t| t.elapsed() < grace.saturating_mul(4));
        }
        let first = *unknown.entry(id.to_string()).or_insert_with(Instant::now);
        first.elapsed() < grace
    }

    /// Transports to try for a candidate, preferred first.
    fn endpoints(&self, c: &Candidate, attr: Option<&Attribution>) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let addr = c.listener.connect_addr();
        let direct = |url: String| {
            Direct::new(&url, self.cfg.timeout)
                .ok()
                .map(|d| Endpoint::new(Arc::new(d.with_max_body(self.cfg.max_target_bytes as u64))))
        };
        if c.host_netns {
            out.extend(direct(format!("http://{addr}")));
            return out;
        }
        let loopback_only = c.listener.addr.is_loopback();
        if !loopback_only
            && let Some(a) = attr
            && !a.pod.host_network
            && let Some(ip) = a
                .pod
                .pod_ip
                .as_deref()
                .and_then(|s| s.parse::<std::net::IpAddr>().ok())
        {
            let sa = std::net::SocketAddr::new(ip, c.listener.port);
            out.extend(direct(format!("http://{sa}")));
        }
        if let Ok(t) = scrape::netns::InNetns::open(
            &c.netns_path(&self.cfg.proc_root),
            format!("pid {}", c.key.pid),
            addr,
            self.cfg.timeout,
        ) {
            out.push(Endpoint::new(Arc::new(
                t.with_max_body(self.cfg.max_target_bytes as u64),
            )));
        }
        out
    }

    /// Probes one candidate: a target, a refusal, or nothing (try later).
    async fn probe(&self, c: Candidate) -> Result<Target, Option<Refused>> {
        let attr = match self.attribute(&c) {
            Ok(a) => a,
            Err(()) => return Err(None),
        };
        let opts = self.opts();
        let mut id_ep = None;
        let mut timed_out = false;
        for ep in self.endpoints(&c, attr.as_ref().map(|(a, _)| a)) {
            match protocol::probe(&ep, &opts).await {
                Ok(Probe::Coverage(id)) => {
                    id_ep = Some((id, ep));
                    break;
                }
                Ok(Probe::NotCoverage { reason, .. }) => {
                    tracing::debug!(target = %ep.label, %reason, "not a coverage server");
                    return Err(Some(Refused::Rejected));
                }
                Err(e) => {
                    tracing::debug!(target = %ep.label, error = %e, "probe failed");
                    timed_out |= reason_of(&e) == "timeout";
                    self.metrics.failure(reason_of(&e));
                    continue;
                }
            }
        }
        let Some((id, endpoint)) = id_ep else {
            return Err(timed_out.then_some(Refused::Unresponsive));
        };
        let want = c.server_pid();
        if id.pid != want {
            tracing::info!(
                target = %endpoint.label,
                server_pid = id.pid,
                expected = want,
                host_pid = c.key.pid,
                "identity mismatch: the server is not the process holding the socket"
            );
            return Err(Some(Refused::Rejected));
        }
        let binary = if id.binary.is_empty() {
            c.process.comm.clone()
        } else {
            id.binary.clone()
        };
        let mut process = BTreeMap::new();
        process.insert("host_pid".to_string(), c.key.pid.to_string());
        process.insert("start_ticks".to_string(), c.key.start_ticks.to_string());
        let (place, pod_uid, owners) = match &attr {
            Some((a, cid)) => {
                process.insert("pod_uid".into(), a.pod.uid.clone());
                process.insert(
                    "restart_count".into(),
                    a.container.restart_count.to_string(),
                );
                process.insert("container_id".into(), cid.clone());
                (
                    Some(PodPlace {
                        namespace: a.pod.namespace.clone(),
                        pod: a.pod.name.clone(),
                        container: a.container.name.clone(),
                        image: a.container.image.clone(),
                    }),
                    Some(a.pod.uid.clone()),
                    a.pod.owner_references.clone(),
                )
            }
            None => (None, None, Vec::new()),
        };
        let discovered = SystemTime::now();
        let hostname = self.hostname();
        let loc = location(&hostname, place.as_ref(), discovered, &binary);
        let md = Metadata {
            pod_name: place.as_ref().map(|p| p.pod.clone()).unwrap_or_default(),
            namespace: place
                .as_ref()
                .map_or_else(|| "_host_".to_string(), |p| p.namespace.clone()),
            container: ContainerMeta {
                name: place
                    .as_ref()
                    .map(|p| p.container.clone())
                    .unwrap_or_default(),
                image: place.as_ref().map(|p| p.image.clone()).unwrap_or_default(),
            },
            binary_name: binary,
            hostname,
            host_process: place.is_none(),
            source: "agent".into(),
            target: endpoint.label.clone(),
            pid: id.pid,
            port: Some(c.listener.port),
            process,
            owner_references: owners,
            ..Default::default()
        };
        let now = Instant::now();
        Ok(Target {
            key: (c.key, c.listener.port),
            endpoint,
            identity: id,
            loc,
            discovered,
            place,
            md,
            pod_uid,
            hash: None,
            slot: 0,
            first_seen: now,
            next_due: now,
            failures: 0,
            busy: false,
        })
    }

    /// One fetch, stored (or spooled) at once.
    async fn fetch(&self, t: &mut Target) -> Result<(), ScrapeError> {
        let opts = self.opts();
        let mut snap = protocol::fetch(&t.endpoint, &opts, t.hash.is_none()).await?;
        if let Some(id) = &snap.identity
            && id.pid != t.identity.pid
        {
            return Err(ScrapeError::Identity {
                target: t.endpoint.label.clone(),
                reason: format!("server now says pid {}, was pid {}", id.pid, t.identity.pid),
            });
        }
        if snap.meta.is_none() && Some(snap.hash) != t.hash {
            snap = protocol::fetch(&t.endpoint, &opts, true).await?;
        }
        let n = snap.counters.len() + snap.meta.as_ref().map_or(0, Vec::len);
        self.metrics.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.scrapes.fetch_add(1, Ordering::Relaxed);
        let hex = covdata::hex(&snap.hash);
        if t.hash.is_some_and(|h| h != snap.hash) {
            // Another build behind the same process key: start over.
            t.slot = 0;
        }
        t.hash = Some(snap.hash);
        let slot = if t.slot == 1 { 2 } else { 1 };
        let mut md = t.md.clone();
        md.snapshots += 1;
        md.meta_hash = hex.clone();
        md.latest_counters = store::layout::counters_name(&hex, t.identity.pid, slot);
        md.collected_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let info = (t.slot == 0).then(|| {
            let mut info: BTreeMap<String, serde_json::Value> = t
                .identity
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            info.insert("binary_name".into(), t.md.binary_name.clone().into());
            info.insert("host".into(), t.md.hostname.clone().into());
            info.insert("pid".into(), t.identity.pid.into());
            if let Some(p) = t.md.port {
                info.insert("port".into(), p.into());
            }
            Bytes::from(serde_json::to_vec_pretty(&info).unwrap_or_default())
        });
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            self.cfg.sink_timeout,
            self.uploader.store(Snapshot {
                location: t.loc.clone(),
                pid: t.identity.pid,
                hash: hex,
                meta: snap.meta.map(Bytes::from),
                counters: Bytes::from(snap.counters),
                info,
                metadata: Some(Bytes::from(
                    serde_json::to_vec_pretty(&md).unwrap_or_default(),
                )),
            }),
        )
        .await;
        match outcome {
            Ok(Ok(Outcome::Stored { slot })) => {
                self.metrics.upload_latency(started.elapsed());
                self.metrics.uploads.fetch_add(1, Ordering::Relaxed);
                t.slot = slot;
                t.md = md;
            }
            Ok(Ok(Outcome::Spooled { reason } | Outcome::Dropped { reason })) => {
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target = %t.endpoint.label, %reason, "sink failed; snapshot spooled");
            }
            Ok(Err(e)) => {
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target = %t.endpoint.label, error = %e, "cannot store or spool");
            }
            Err(_) => {
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target = %t.endpoint.label, "storing timed out");
            }
        }
        Ok(())
    }

    /// Fetch and store one target.
    async fn poll(&self, mut t: Target) -> (Target, Option<ScrapeError>) {
        let err = match self.fetch(&mut t).await {
            Ok(()) => {
                t.failures = 0;
                None
            }
            Err(e) => {
                t.failures += 1;
                self.metrics.failure(reason_of(&e));
                Some(e)
            }
        };
        let now = Instant::now();
        t.next_due = now + self.cfg.schedule.interval(now.duration_since(t.first_seen));
        (t, err)
    }

    fn forget(&self, t: &Target) {
        if let Some(h) = t.hash {
            self.uploader
                .forget(&t.loc, &covdata::hex(&h), t.identity.pid);
        }
    }

    /// Runs until `shutdown` resolves, then scrapes and stores everything
    /// once more. `terminating` carries UIDs of pods going away.
    ///
    /// Probes and polls run side by side (at most `concurrency` at once),
    /// each bounded by the per-target timeout, and the loop never waits for
    /// one of them: a server that accepts and never answers costs one
    /// request slot until its timeout, never a round of the others.
    pub async fn run(
        &self,
        mut terminating: tokio::sync::mpsc::UnboundedReceiver<String>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut scanner = Some(Scanner::new(&self.cfg.proc_root, self.cfg.ports.clone()));
        let mut st = LoopState::default();
        let mut next_scan = Instant::now();
        let mut next_drain = Instant::now();
        let mut exits = self.cfg.watch.clone().and_then(|w| {
            let state = w.state_dir.clone();
            crate::exits::ExitWatch::new(w, self.pods.clone(), self.metrics.clone())
                .map_err(|e| {
                    tracing::error!(dir = %state.display(), error = %e, "cannot watch exit-time data");
                })
                .ok()
        });
        let sem = tokio::sync::Semaphore::new(self.cfg.concurrency.max(1));
        let sem = &sem;
        let mut work: FuturesUnordered<Work<'_>> = FuturesUnordered::new();
        tokio::pin!(shutdown);
        loop {
            let now = Instant::now();
            if now >= next_scan {
                let Some(mut sc) = scanner.take() else { break };
                let (sc, cands) = match tokio::task::spawn_blocking(move || {
                    let (c, stats) = sc.scan();
                    (sc, c, stats)
                })
                .await
                {
                    Ok((sc, c, stats)) => {
                        tracing::trace!(?stats, "scanned");
                        self.metrics.last_scan_ok.store(true, Ordering::Relaxed);
                        (sc, c)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the scan panicked");
                        break;
                    }
                };
                scanner = Some(sc);
                self.metrics.scans.fetch_add(1, Ordering::Relaxed);
                let present: HashSet<TargetKey> =
                    cands.iter().map(|c| (c.key, c.listener.port)).collect();
                let gone: Vec<TargetKey> = st
                    .targets
                    .keys()
                    .filter(|k| !present.contains(k))
                    .copied()
                    .collect();
                for k in gone {
                    if let Some(t) = st.targets.remove(&k) {
                        tracing::debug!(target = %t.endpoint.label, binary = %t.identity.binary, "process gone");
                        self.forget(&t);
                    }
                }
                // A listener that never answered is probed again after a
                // while (it stays counted as unresponsive meanwhile).
                let unresponsive = self
                    .cfg
                    .recheck
                    .min((self.cfg.scan_every * 6).max(self.cfg.timeout * 2));
                st.refused.retain(|k, (t, why)| {
                    present.contains(k)
                        && (*why == Refused::Unresponsive || t.elapsed() < self.cfg.recheck)
                });
                let room = self
                    .cfg
                    .max_targets
                    .saturating_sub(st.targets.len() + st.probing.len());
                let fresh: Vec<Candidate> = cands
                    .into_iter()
                    .filter(|c| {
                        let k = (c.key, c.listener.port);
                        let refused = st.refused.get(&k).is_some_and(|(t, why)| {
                            *why != Refused::Unresponsive || t.elapsed() < unresponsive
                        });
                        !st.targets.contains_key(&k) && !refused && !st.probing.contains(&k)
                    })
                    .take(room)
                    .collect();
                for c in fresh {
                    let k = (c.key, c.listener.port);
                    st.probing.insert(k);
                    work.push(Box::pin(async move {
                        let _permit = sem.acquire().await;
                        Done::Probed(k, self.probe(c).await.map(Box::new))
                    }));
                }
                // Exit-time files wait for pod metadata (and the node's
                // name) like the processes do; they stay where they are.
                let synced = self.pods.read().is_ok_and(|i| i.synced);
                if let Some(x) = &mut exits
                    && !self.pods_pending(synced)
                {
                    let taken = st.targets.values().map(|t| t.loc.dir()).collect();
                    x.round(self.uploader.sink(), &taken).await;
                }
                next_scan = Instant::now() + self.cfg.scan_every;
            }
            let now = Instant::now();
            for t in st.targets.values_mut() {
                if !t.busy && t.next_due <= now {
                    t.busy = true;
                    let t = t.clone();
                    work.push(Box::pin(async move {
                        let _permit = sem.acquire().await;
                        let (t, e) = self.poll(t).await;
                        Done::Polled(Box::new(t), e)
                    }));
                }
            }
            if now >= next_drain {
                // What an earlier run (or an outage) left in the spool.
                if self.uploader.stats().spool_entries > 0 {
                    let _ = self.uploader.drain().await;
                }
                next_drain = Instant::now() + self.cfg.scan_every.max(Duration::from_secs(1));
            }
            self.publish(&st.targets, &st.refused);
            let wake = st
                .targets
                .values()
                .filter(|t| !t.busy)
                .map(|t| t.next_due)
                .chain([next_scan, next_drain])
                .min()
                .unwrap_or(next_scan)
                .max(Instant::now() + Duration::from_millis(20));
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
                Some(done) = work.next(), if !work.is_empty() => {
                    self.settle(done, &mut st);
                    while let Some(Some(done)) = work.next().now_or_never() {
                        self.settle(done, &mut st);
                    }
                }
                Some(uid) = terminating.recv() => {
                    let now = Instant::now();
                    for t in st.targets.values_mut() {
                        if t.pod_uid.as_deref() == Some(uid.as_str()) {
                            tracing::debug!(target = %t.endpoint.label, "pod terminating: scraping now");
                            t.next_due = now;
                        }
                    }
                }
            }
        }
        // What is in flight ends within its timeout; then a last scrape of
        // everything, and a last try at the spool.
        while let Some(done) = work.next().await {
            self.settle(done, &mut st);
        }
        drop(work);
        let batch: Vec<Target> = st.targets.drain().map(|(_, t)| t).collect();
        let results: Vec<(Target, Option<ScrapeError>)> = futures::stream::iter(batch)
            .map(|t| self.poll(t))
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        for (t, e) in results {
            self.settle(Done::Polled(Box::new(t), e), &mut st);
        }
        if let Some(x) = &mut exits {
            x.round(self.uploader.sink(), &Default::default()).await;
        }
        let _ = self.uploader.drain().await;
        self.publish(&st.targets, &st.refused);
    }

    /// Takes in the result of a probe or a poll.
    fn settle(&self, done: Done, st: &mut LoopState) {
        match done {
            Done::Probed(k, r) => {
                st.probing.remove(&k);
                match r {
                    Ok(t) => {
                        let mut t = *t;
                        // Two processes of one binary found in the same
                        // second must not share a directory.
                        while st.targets.values().any(|o| o.loc == t.loc) {
                            t.discovered += Duration::from_secs(1);
                            t.loc = location(
                                &t.md.hostname,
                                t.place.as_ref(),
                                t.discovered,
                                &t.md.binary_name,
                            );
                        }
                        tracing::info!(
                            target = %t.endpoint.label,
                            binary = %t.identity.binary,
                            dir = %t.loc.dir(),
                            "following a coverage server"
                        );
                        st.refused.remove(&k);
                        st.targets.insert(k, t);
                    }
                    Err(Some(why)) => {
                        st.refused.insert(k, (Instant::now(), why));
                    }
                    Err(None) => {
                        st.refused.remove(&k);
                    }
                }
            }
            Done::Polled(t, err) => {
                let mut t = *t;
                if !st.targets.contains_key(&t.key) {
                    // The process went away while it was being scraped.
                    self.forget(&t);
                    return;
                }
                if let Some(e) = &err
                    && (protocol::is_not_covered(e) || matches!(e, ScrapeError::Identity { .. }))
                {
                    let why = if protocol::is_not_covered(e) {
                        Refused::NotCovered
                    } else {
                        Refused::Rejected
                    };
                    tracing::info!(target = %t.endpoint.label, error = %e, "no longer following");
                    st.targets.remove(&t.key);
                    st.refused.insert(t.key, (Instant::now(), why));
                    self.forget(&t);
                    return;
                }
                if let Some(e) = &err
                    && t.failures == 3
                {
                    tracing::warn!(target = %t.endpoint.label, error = %e, "scrapes failing");
                }
                t.busy = false;
                st.targets.insert(t.key, t);
            }
        }
    }

    fn publish(
        &self,
        targets: &HashMap<TargetKey, Target>,
        refused: &HashMap<TargetKey, (Instant, Refused)>,
    ) {
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for t in targets.values() {
            let s = if t.failures > 0 { "failing" } else { "active" };
            *by_state.entry(s.into()).or_default() += 1;
        }
        for (_, why) in refused.values() {
            let s = match why {
                Refused::Rejected => "rejected",
                Refused::NotCovered => "not_covered",
                Refused::Unresponsive => "unresponsive",
            };
            *by_state.entry(s.into()).or_default() += 1;
        }
        self.metrics.set_targets(by_state);
        let st = self.uploader.stats();
        self.metrics
            .spool_depth
            .store(st.spool_entries, Ordering::Relaxed);
        self.metrics
            .spool_bytes
            .store(st.spool_bytes, Ordering::Relaxed);
    }
}
