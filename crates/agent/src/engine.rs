//! The agent's loop: scan `/proc` on a tick, probe new candidates (identity
//! by `HEAD`, attribution by cgroup and pod), poll every confirmed server on
//! the adaptive schedule (full fetch first, counters only after), store
//! snapshots in the sink, and scrape a pod's processes at once when the pod
//! starts terminating.
//!
//! A snapshot that could not be stored stays pending in memory (one per
//! target: counters are cumulative, so only the newest matters) and is
//! retried until the sink takes it, also after its process exited.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use scrape::error::{Error as ScrapeError, TransportErrorKind};
use scrape::output::{ContainerMeta, Metadata};
use scrape::protocol::{self, ClientOptions, Endpoint, Identity, Probe};
use scrape::schedule::Schedule;
use scrape::transport::Direct;

use crate::cgroup;
use crate::discovery::{Candidate, ProcKey, Scanner};
use crate::metrics::Metrics;
use crate::pods::{Attribution, PodIndex};
use crate::sink::{Location, PodPlace, Sink};

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
    /// How long a candidate that was refused (not a coverage server,
    /// identity mismatch, not built with -cover) is left alone.
    pub recheck: Duration,
    /// `crictl` for attribution when the API does not know a container.
    pub crictl: Option<PathBuf>,
    /// Whether pod metadata is expected (wait for the first pod list
    /// before attributing containers, up to `kube_grace`).
    pub kube_grace: Duration,
    /// Bearer token for coverage servers that want one.
    pub token: Option<String>,
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
            recheck: Duration::from_secs(60),
            crictl: None,
            kube_grace: Duration::ZERO,
            token: None,
        }
    }
}

type TargetKey = (ProcKey, u16);

/// Why a candidate is left alone for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Not a coverage server, or one whose identity does not match.
    Rejected,
    /// A coverage server in a binary built without `-cover`.
    NotCovered,
}

#[derive(Debug, Default)]
struct Pending {
    meta: Option<(covdata::Hash, Bytes)>,
    counters: Option<(covdata::Hash, Bytes)>,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.1.len())
            + self.counters.as_ref().map_or(0, |c| c.1.len())
    }
}

/// One coverage server being followed.
#[derive(Debug)]
struct Target {
    key: TargetKey,
    endpoint: Endpoint,
    identity: Identity,
    loc: Location,
    md: Metadata,
    pod_uid: Option<String>,
    hash: Option<covdata::Hash>,
    meta_stored: Option<covdata::Hash>,
    info_stored: bool,
    /// Slot (1 or 2) of the newest stored counter file, 0 before the first.
    slot: u8,
    first_seen: Instant,
    next_due: Instant,
    pending: Pending,
    failures: u32,
}

/// The agent.
#[derive(Debug)]
pub struct Agent {
    cfg: Config,
    sink: Arc<dyn Sink>,
    pods: Arc<RwLock<PodIndex>>,
    metrics: Arc<Metrics>,
    started: Instant,
}

fn reason_of(e: &ScrapeError) -> &'static str {
    match e {
        ScrapeError::Transport { source, .. } => match source.kind {
            TransportErrorKind::Connect => "connect",
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Other => "transport",
        },
        ScrapeError::Timeout { .. } => "timeout",
        ScrapeError::Status { .. } => "status",
        ScrapeError::Malformed { .. } => "malformed",
        ScrapeError::Identity { .. } => "identity",
        _ => "other",
    }
}

impl Agent {
    /// An agent storing into `sink`, attributing with `pods` (which the
    /// caller keeps in sync, e.g. with [`crate::pods::watch_pods`]).
    pub fn new(
        cfg: Config,
        sink: Arc<dyn Sink>,
        pods: Arc<RwLock<PodIndex>>,
        metrics: Arc<Metrics>,
    ) -> Agent {
        Agent {
            cfg,
            sink,
            pods,
            metrics,
            started: Instant::now(),
        }
    }

    fn opts(&self) -> ClientOptions {
        ClientOptions {
            timeout: self.cfg.timeout,
            retries: 0,
            backoff: Duration::from_millis(100),
            token: self.cfg.token.clone(),
        }
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
            return Ok(Some((a, cref.id)));
        }
        if let Some(crictl) = &self.cfg.crictl
            && let Some(a) = crate::pods::crictl_inspect(crictl, &cref.id)
        {
            return Ok(Some((a, cref.id)));
        }
        if !synced && self.started.elapsed() < self.cfg.kube_grace {
            // Pod metadata is on its way: look again at the next scan.
            return Err(());
        }
        Ok(None)
    }

    /// Transports to try for a candidate, preferred first.
    fn endpoints(&self, c: &Candidate, attr: Option<&Attribution>) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let addr = c.listener.connect_addr();
        let direct = |url: String| {
            Direct::new(&url, self.cfg.timeout)
                .ok()
                .map(|d| Endpoint::new(Arc::new(d.with_max_body(self.cfg.max_target_bytes))))
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
                t.with_max_body(self.cfg.max_target_bytes),
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
                    self.metrics.failure(reason_of(&e));
                    continue;
                }
            }
        }
        let Some((id, endpoint)) = id_ep else {
            return Err(None);
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
        let loc = Location {
            hostname: self.cfg.hostname.clone(),
            pod: place.clone(),
            discovered: SystemTime::now(),
            binary: binary.clone(),
        };
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
            hostname: self.cfg.hostname.clone(),
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
            md,
            pod_uid,
            hash: None,
            meta_stored: None,
            info_stored: false,
            slot: 0,
            first_seen: now,
            next_due: now,
            pending: Pending::default(),
            failures: 0,
        })
    }

    /// One fetch into `t.pending`.
    async fn fetch(&self, t: &mut Target) -> Result<(), ScrapeError> {
        let opts = self.opts();
        let have_meta = t.hash.is_some()
            && (t.meta_stored == t.hash || t.pending.meta.as_ref().map(|m| m.0) == t.hash);
        let mut snap = protocol::fetch(&t.endpoint, &opts, !have_meta).await?;
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
        t.hash = Some(snap.hash);
        if let Some(m) = snap.meta
            && t.meta_stored != Some(snap.hash)
        {
            t.pending.meta = Some((snap.hash, Bytes::from(m)));
        }
        t.pending.counters = Some((snap.hash, Bytes::from(snap.counters)));
        Ok(())
    }

    async fn put(&self, loc: &Location, name: &str, data: Bytes) -> bool {
        let started = Instant::now();
        let r = tokio::time::timeout(self.cfg.sink_timeout, self.sink.put(loc, name, data)).await;
        match r {
            Ok(Ok(())) => {
                self.metrics.upload_latency(started.elapsed());
                self.metrics.uploads.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "storing failed; will retry");
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(_) => {
                tracing::debug!(sink = %self.sink.describe(), file = name, "storing timed out; will retry");
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Stores what is pending, in order: meta, counters (other slot),
    /// info.json (once), metadata.json.
    async fn flush(&self, t: &mut Target) -> bool {
        if let Some((h, meta)) = t.pending.meta.clone() {
            if !self
                .put(&t.loc, &format!("covmeta.{}", covdata::hex(&h)), meta)
                .await
            {
                return false;
            }
            t.meta_stored = Some(h);
            t.pending.meta = None;
        }
        let Some((h, counters)) = t.pending.counters.clone() else {
            return true;
        };
        if t.meta_stored != Some(h) {
            // Never store counters whose meta-data is not there.
            return false;
        }
        let slot = if t.slot == 1 { 2 } else { 1 };
        let name = format!("covcounters.{}.{}.{slot}", covdata::hex(&h), t.identity.pid);
        if !self.put(&t.loc, &name, counters).await {
            return false;
        }
        t.slot = slot;
        t.pending.counters = None;
        t.md.snapshots += 1;
        t.md.meta_hash = covdata::hex(&h);
        t.md.latest_counters = name;
        t.md.collected_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        if !t.info_stored {
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
            let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
            if self.put(&t.loc, "info.json", Bytes::from(json)).await {
                t.info_stored = true;
            }
        }
        let json = serde_json::to_vec_pretty(&t.md).unwrap_or_default();
        // The counters are stored; a stale metadata.json is rewritten next time.
        let _ = self.put(&t.loc, "metadata.json", Bytes::from(json)).await;
        true
    }

    /// Fetch (unless `store_only`) and store one target.
    async fn poll(&self, mut t: Target, store_only: bool) -> (Target, Option<ScrapeError>) {
        let err = if store_only {
            None
        } else {
            match self.fetch(&mut t).await {
                Ok(()) => {
                    t.failures = 0;
                    None
                }
                Err(e) => {
                    t.failures += 1;
                    self.metrics.failure(reason_of(&e));
                    Some(e)
                }
            }
        };
        if t.pending.counters.is_some() || t.pending.meta.is_some() {
            self.flush(&mut t).await;
        }
        let now = Instant::now();
        t.next_due = now + self.cfg.schedule.interval(now.duration_since(t.first_seen));
        (t, err)
    }

    /// Runs until `shutdown` resolves, then scrapes and stores everything
    /// once more. `terminating` carries UIDs of pods going away.
    pub async fn run(
        &self,
        mut terminating: tokio::sync::mpsc::UnboundedReceiver<String>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut scanner = Some(Scanner::new(&self.cfg.proc_root, self.cfg.ports.clone()));
        let mut targets: HashMap<TargetKey, Target> = HashMap::new();
        let mut orphans: Vec<Target> = Vec::new();
        let mut refused: HashMap<TargetKey, (Instant, Refused)> = HashMap::new();
        let mut next_scan = Instant::now();
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
                let present: std::collections::HashSet<TargetKey> =
                    cands.iter().map(|c| (c.key, c.listener.port)).collect();
                let gone: Vec<TargetKey> = targets
                    .keys()
                    .filter(|k| !present.contains(k))
                    .copied()
                    .collect();
                for k in gone {
                    if let Some(t) = targets.remove(&k) {
                        tracing::debug!(target = %t.endpoint.label, binary = %t.identity.binary, "process gone");
                        if t.pending.counters.is_some() {
                            orphans.push(t);
                        }
                    }
                }
                refused.retain(|k, (t, _)| present.contains(k) && t.elapsed() < self.cfg.recheck);
                let fresh: Vec<Candidate> = cands
                    .into_iter()
                    .filter(|c| {
                        let k = (c.key, c.listener.port);
                        !targets.contains_key(&k) && !refused.contains_key(&k)
                    })
                    .take(self.cfg.max_targets.saturating_sub(targets.len()))
                    .collect();
                let probed: Vec<(TargetKey, Result<Target, Option<Refused>>)> =
                    futures::stream::iter(fresh)
                        .map(|c| async move {
                            let k = (c.key, c.listener.port);
                            (k, self.probe(c).await)
                        })
                        .buffer_unordered(self.cfg.concurrency.max(1))
                        .collect()
                        .await;
                for (k, r) in probed {
                    match r {
                        Ok(mut t) => {
                            // Two processes found in the same millisecond
                            // must not share a directory.
                            while targets.values().any(|o| o.loc == t.loc) {
                                t.loc.discovered += Duration::from_millis(1);
                            }
                            tracing::info!(
                                target = %t.endpoint.label,
                                binary = %t.identity.binary,
                                dir = %t.loc.rel_dir(),
                                "following a coverage server"
                            );
                            targets.insert(k, t);
                        }
                        Err(Some(why)) => {
                            refused.insert(k, (Instant::now(), why));
                        }
                        Err(None) => {}
                    }
                }
                next_scan = Instant::now() + self.cfg.scan_every;
            }
            let now = Instant::now();
            let due: Vec<TargetKey> = targets
                .iter()
                .filter(|(_, t)| t.next_due <= now)
                .map(|(k, _)| *k)
                .collect();
            let mut batch: Vec<(Target, bool)> = due
                .iter()
                .filter_map(|k| targets.remove(k))
                .map(|t| (t, false))
                .collect();
            let (orph_due, orph_wait): (Vec<Target>, Vec<Target>) =
                orphans.drain(..).partition(|t| t.next_due <= now);
            orphans = orph_wait;
            batch.extend(orph_due.into_iter().map(|t| (t, true)));
            self.poll_batch(batch, &mut targets, &mut orphans, &mut refused)
                .await;
            self.publish(&targets, &orphans, &refused);
            let wake = targets
                .values()
                .chain(orphans.iter())
                .map(|t| t.next_due)
                .chain([next_scan])
                .min()
                .unwrap_or(next_scan)
                .max(Instant::now() + Duration::from_millis(20));
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
                Some(uid) = terminating.recv() => {
                    let now = Instant::now();
                    for t in targets.values_mut() {
                        if t.pod_uid.as_deref() == Some(uid.as_str()) {
                            tracing::debug!(target = %t.endpoint.label, "pod terminating: scraping now");
                            t.next_due = now;
                        }
                    }
                }
            }
        }
        // Last scrape of everything, and a last try to store what is pending.
        let mut batch: Vec<(Target, bool)> = targets.drain().map(|(_, t)| (t, false)).collect();
        batch.extend(orphans.drain(..).map(|t| (t, true)));
        self.poll_batch(batch, &mut targets, &mut orphans, &mut refused)
            .await;
        self.publish(&targets, &orphans, &refused);
    }

    async fn poll_batch(
        &self,
        batch: Vec<(Target, bool)>,
        targets: &mut HashMap<TargetKey, Target>,
        orphans: &mut Vec<Target>,
        refused: &mut HashMap<TargetKey, (Instant, Refused)>,
    ) {
        let results: Vec<(Target, bool, Option<ScrapeError>)> = futures::stream::iter(batch)
            .map(|(t, orphan)| async move {
                let (t, e) = self.poll(t, orphan).await;
                (t, orphan, e)
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        for (t, orphan, err) in results {
            if orphan {
                if t.pending.counters.is_some() {
                    orphans.push(t);
                }
                continue;
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
                refused.insert(t.key, (Instant::now(), why));
                if t.pending.counters.is_some() {
                    orphans.push(t);
                }
                continue;
            }
            if let Some(e) = &err
                && t.failures == 3
            {
                tracing::warn!(target = %t.endpoint.label, error = %e, "scrapes failing");
            }
            targets.insert(t.key, t);
        }
    }

    fn publish(
        &self,
        targets: &HashMap<TargetKey, Target>,
        orphans: &[Target],
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
            };
            *by_state.entry(s.into()).or_default() += 1;
        }
        self.metrics.set_targets(by_state);
        let pending = targets
            .values()
            .chain(orphans.iter())
            .filter(|t| t.pending.counters.is_some());
        let (n, bytes) = pending.fold((0u64, 0u64), |(n, b), t| {
            (n + 1, b + t.pending.bytes() as u64)
        });
        self.metrics.spool_depth.store(n, Ordering::Relaxed);
        self.metrics.spool_bytes.store(bytes, Ordering::Relaxed);
    }
}
