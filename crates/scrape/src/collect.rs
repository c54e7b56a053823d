//! The collection engine: discover targets, check their identity, fetch
//! snapshots with bounded concurrency, write entry directories, and report.
//!
//! One-shot collection probes and fetches every target once. `--watch`
//! keeps polling each process on the adaptive [`schedule`](crate::schedule)
//! (the first fetch with meta-data, later ones counters-only with the cached
//! hash), picks up new targets as they appear, notices processes that exit
//! or are replaced (PID reuse, restarts), and on shutdown scrapes everything
//! once more before returning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use crate::error::{Error, TransportErrorKind};
use crate::kube::{PodInfo, Selection, Via};
use crate::local::Candidate;
use crate::marks::{Mark, MarkRequest, Marks};
use crate::output::{ContainerMeta, EntryWriter, Placement, Source, is_continuation};
use crate::protocol::{self, ClientOptions, Endpoint, Identity, Probe};
use crate::transport::Direct;

/// Least number of snapshots written at once (see `Collector::writes_in_flight`).
const WRITES_IN_FLIGHT: usize = 64;

/// How often `--watch` probes again a target that was skipped or failed.
pub const RECHECK: Duration = Duration::from_secs(30);

/// Where to look for coverage servers.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--url` (repeatable).
    pub urls: Vec<String>,
    /// `--local`: sockets of this host (its network namespace).
    pub local: bool,
    /// `--kube`: pods, and how to reach them.
    pub kube: Option<(Selection, Via)>,
}

/// What the engine does, fully resolved from flags, environment and defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sources: Sources,
    /// `-o DIR`: entries go to `DIR/coverage/<entry>/`.
    pub output: PathBuf,
    pub ports: RangeInclusive<u16>,
    pub client: ClientOptions,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub phase: Option<String>,
    /// The `/proc` to read for `--local` (tests point it elsewhere).
    pub proc_root: PathBuf,
    /// `--watch`: smallest pause between rediscoveries (1 s without
    /// Kubernetes, where discovery only reads /proc; 5 s with it).
    pub rediscover_every: Duration,
    /// Most entries one target may open in a run (`--max-entries-per-target`):
    /// a server that claims a new meta hash or a reset on every poll would
    /// otherwise create a new entry, with its own meta copy, every poll.
    pub max_entries_per_target: u32,
    /// `--watch`: how often a summary line is reported (also when nothing
    /// changed), besides one line per change of state.
    pub summary_every: Duration,
    /// `--url` targets to record as a pod's container, keyed by the URL as
    /// in [`Sources::urls`] (`covfleet demo`: local replicas named like the
    /// pods of a Deployment). Their entries are named and labelled as
    /// [`Source::Demo`]. Empty for `covfleet collect`.
    pub url_pods: BTreeMap<String, UrlPod>,
}

/// A `--url` target recorded as the container of a pod (see
/// [`Settings::url_pods`]).
#[derive(Debug, Clone, Default)]
pub struct UrlPod {
    pub namespace: String,
    pub pod: String,
    pub container: ContainerMeta,
}

/// Default of [`Settings::max_entries_per_target`].
pub const DEFAULT_MAX_ENTRIES_PER_TARGET: u32 = 8;

impl Settings {
    pub fn new(sources: Sources, output: PathBuf) -> Settings {
        Settings {
            output,
            ports: protocol::default_ports(),
            client: ClientOptions::default(),
            concurrency: 16,
            phase: None,
            proc_root: PathBuf::from("/proc"),
            rediscover_every: Duration::from_secs(if sources.kube.is_some() { 5 } else { 1 }),
            max_entries_per_target: DEFAULT_MAX_ENTRIES_PER_TARGET,
            summary_every: Duration::from_secs(60),
            url_pods: BTreeMap::new(),
            sources,
        }
    }
}

/// A target that was skipped or failed, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TargetReport {
    pub target: String,
    pub reason: String,
}

/// A directory written.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    pub target: String,
    pub dir: PathBuf,
    pub binary: String,
    pub pid: u32,
    pub snapshots: u64,
    /// The process stopped answering during `--watch` (its data is kept).
    pub ended: bool,
}

/// What a run did. `found` counts the targets that answered at all.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub found: usize,
    pub collected: usize,
    pub reset: usize,
    pub skipped: Vec<TargetReport>,
    pub failed: Vec<TargetReport>,
    pub entries: Vec<EntryReport>,
    /// Phase marks taken in this run (`--phase-start`/`--phase-end`, signals).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
}

/// Progress notifications (for a progress bar).
#[derive(Debug, Clone)]
pub enum Event {
    /// Targets to probe in this round.
    Discovered(usize),
    /// One target finished (collected, skipped, failed or absent).
    Done { target: String },
    /// One `--watch` round of fetches finished.
    Round { fetched: usize },
    /// `--watch`: a process was collected for the first time.
    Found { target: String, entry: PathBuf },
    /// `--watch`: a collected process stopped answering (its data is kept).
    Lost { target: String, reason: String },
    /// `--watch`: a target failed (or failed again after recovering).
    Failed { target: String, reason: String },
    /// `--watch`: a phase mark was taken (every live process snapshot).
    Marked { mark: Mark },
    /// `--watch`: a phase mark could not be taken.
    MarkFailed { reason: String },
    /// `--watch`: the periodic summary.
    Status {
        live: usize,
        collected: usize,
        failed: usize,
    },
}

/// Receives [`Event`]s.
pub type Progress = Arc<dyn Fn(Event) + Send + Sync>;

/// What discovery knows about a target besides its endpoint: where it was
/// found, used to name its entry (a [`Placement`]) and to check that the
/// server that answers is the process discovery saw.
#[derive(Debug, Clone)]
enum Context {
    /// A `--url` target: the URL's host and port.
    Url {
        host: String,
        port: Option<u16>,
        /// The URL's path when not `/` (a server behind a path prefix).
        route: Option<String>,
    },
    /// A `--local` process: the listening socket's owner on this host.
    Local {
        candidate: Candidate,
        hostname: String,
    },
    /// A port of a `--kube` pod.
    Kube { pod: Arc<PodInfo>, port: u16 },
}

/// A discovered target, before probing.
#[derive(Debug, Clone)]
struct Found {
    key: String,
    endpoint: Endpoint,
    context: Context,
    /// Port scanning: "nothing listens" is not worth reporting.
    quiet_if_absent: bool,
}

enum ProbeOutcome {
    Absent,
    Skipped(TargetReport),
    Failed(TargetReport),
    /// A coverage server, and its process state; `Some` when the probe was
    /// the first fetch (see [`Collector::probe`]), with that fetch's result.
    Coverage(Box<ProcState>, Option<Option<Error>>),
}

/// A process a probe found: to fetch, or already fetched by the probe.
struct Probed {
    key: String,
    state: ProcState,
    /// `Some(error or none)` when the probe's answer was the first snapshot.
    fetched: Option<Option<Error>>,
}

/// One process being collected.
#[derive(Debug)]
struct ProcState {
    endpoint: Endpoint,
    placement: Placement,
    identity: Identity,
    hash: Option<covdata::Hash>,
    writer: Option<EntryWriter>,
    instance: u32,
    info_written: bool,
    first_seen: Instant,
    next_due: Instant,
    snapshots: u64,
    last_error: Option<String>,
    ended: bool,
    /// Units per function per package of the verified meta-data, to check
    /// every counter file against (counters-only fetches carry no meta).
    shape: Option<Arc<MetaShape>>,
    /// Entries this target opened in this run.
    entries_opened: u32,
}

/// Counters per function per package of a verified meta-data file.
#[derive(Debug)]
struct MetaShape {
    hash: covdata::Hash,
    units: Vec<Vec<usize>>,
}

impl MetaShape {
    fn of(meta: &covdata::MetaFile) -> MetaShape {
        MetaShape {
            hash: meta.hash,
            units: meta
                .packages
                .iter()
                .map(|p| p.funcs.iter().map(|f| f.units.len()).collect())
                .collect(),
        }
    }

    /// Whether a counter file fits this meta-data.
    fn check(&self, c: &covdata::CounterFile) -> Result<(), String> {
        if c.meta_hash != self.hash {
            return Err("counters belong to another meta-data hash".into());
        }
        for f in &c.funcs {
            let units = self
                .units
                .get(f.pkg as usize)
                .and_then(|p| p.get(f.func as usize))
                .ok_or_else(|| {
                    format!(
                        "counters for package {} function {} that the meta-data does not have",
                        f.pkg, f.func
                    )
                })?;
            if *units != f.counters.len() {
                return Err(format!(
                    "package {} function {}: {} counters for {units} units",
                    f.pkg,
                    f.func,
                    f.counters.len()
                ));
            }
        }
        Ok(())
    }
}

/// Targets found by one discovery pass, plus discovery-level problems.
struct Discovery {
    found: Vec<Found>,
    skipped: Vec<TargetReport>,
    failed: Vec<TargetReport>,
}

/// The engine.
pub struct Collector {
    settings: Settings,
    kube: Option<(::kube::Client, Selection, Via)>,
    progress: Option<Progress>,
    /// Phase marks the collection holds (`marks.json`), recorded with every
    /// snapshot written.
    marks_seen: AtomicU32,
    /// The marks (sequence numbers) being taken: snapshots written while
    /// this is set are also kept as those marks' boundary snapshots.
    marks_taking: Mutex<Vec<u32>>,
    hostname: String,
    /// Opens entries and writes snapshots, on blocking threads.
    store: Store,
}

/// Where entries go, and the entry names this run opened (two targets never
/// share an entry). Cloned into the blocking tasks that write.
#[derive(Debug, Clone)]
struct Store {
    root: PathBuf,
    claimed: Arc<Mutex<HashSet<String>>>,
    max_entries_per_target: u32,
}

/// What writing a snapshot needs of a process's state, moved to a blocking
/// thread and back (see [`Store::write`]).
struct WriteJob {
    label: String,
    placement: Placement,
    identity: Identity,
    writer: Option<EntryWriter>,
    instance: u32,
    info_written: bool,
    entries_opened: u32,
    shape: Option<Arc<MetaShape>>,
    /// (marks the collection holds, marks being taken): see
    /// [`EntryWriter::set_marks`].
    marks: (u32, Vec<u32>),
}

impl WriteJob {
    fn take(st: &mut ProcState) -> WriteJob {
        WriteJob {
            label: st.endpoint.label.clone(),
            placement: st.placement.clone(),
            identity: st.identity.clone(),
            writer: st.writer.take(),
            instance: st.instance,
            info_written: st.info_written,
            entries_opened: st.entries_opened,
            shape: st.shape.take(),
            marks: (0, Vec::new()),
        }
    }

    fn put_back(self, st: &mut ProcState) {
        st.writer = self.writer;
        st.instance = self.instance;
        st.info_written = self.info_written;
        st.entries_opened = self.entries_opened;
        st.shape = self.shape;
    }
}

/// The outcome of [`Store::write`].
enum Written {
    Done,
    /// The entry lacks the meta-data file and the snapshot carries none:
    /// fetch it with meta-data and write again.
    NeedMeta,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn url_context(url: &str) -> Context {
    let uri: http::Uri = url.parse().unwrap_or_default();
    let path = uri.path().trim_end_matches('/');
    Context::Url {
        host: uri
            .host()
            .unwrap_or("unknown")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: uri.port_u16(),
        route: (!path.is_empty()).then(|| path.to_string()),
    }
}

/// Whether a URL host is this machine's loopback.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Collector {
    /// Checks the settings and connects to Kubernetes if asked.
    pub async fn new(settings: Settings, progress: Option<Progress>) -> Result<Collector, Error> {
        let kube = match &settings.sources.kube {
            Some((sel, via)) => {
                Some((crate::kube::client_for(sel, *via).await?, sel.clone(), *via))
            }
            None => None,
        };
        let marks = match Marks::read(&settings.output) {
            Ok(m) => m.count(),
            // Reported by whoever takes a mark; plain collection goes on.
            Err(_) => 0,
        };
        Ok(Collector {
            kube,
            progress,
            marks_seen: AtomicU32::new(marks),
            marks_taking: Mutex::new(Vec::new()),
            hostname: crate::local::hostname(),
            store: Store {
                root: settings.output.join("coverage"),
                claimed: Arc::new(Mutex::new(HashSet::new())),
                max_entries_per_target: settings.max_entries_per_target.max(1),
            },
            settings,
        })
    }

    fn emit(&self, e: Event) {
        if let Some(p) = &self.progress {
            p(e);
        }
    }

    async fn discover(&self) -> Discovery {
        let mut d = Discovery {
            found: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
        };
        for url in &self.settings.sources.urls {
            match Direct::new(url, self.settings.client.timeout) {
                Ok(t) => d.found.push(Found {
                    key: format!("url:{url}"),
                    endpoint: Endpoint::new(Arc::new(t)),
                    context: url_context(url),
                    quiet_if_absent: false,
                }),
                Err(e) => d.failed.push(TargetReport {
                    target: crate::transport::redact_url(url),
                    reason: e.to_string(),
                }),
            }
        }
        if self.settings.sources.local {
            let root = self.settings.proc_root.clone();
            let ports = self.settings.ports.clone();
            let res =
                tokio::task::spawn_blocking(move || crate::local::discover(&root, &ports)).await;
            match res {
                Ok(Ok(cands)) => {
                    for c in cands {
                        let addr = c.listener.connect_addr();
                        let url = format!("http://{addr}");
                        let Ok(t) = Direct::new(&url, self.settings.client.timeout) else {
                            continue;
                        };
                        let mut ep = Endpoint::new(Arc::new(t));
                        ep.label = match c.owners.first() {
                            Some(o) => format!(
                                "{url} (pid {}{})",
                                o.pid,
                                o.exe
                                    .as_ref()
                                    .map(|e| format!(" {}", e.display()))
                                    .unwrap_or_default()
                            ),
                            None => format!("{url} (owner unknown)"),
                        };
                        d.found.push(Found {
                            key: format!("local:{}:{}", c.listener.port, c.listener.inode),
                            endpoint: ep,
                            context: Context::Local {
                                candidate: c,
                                hostname: self.hostname.clone(),
                            },
                            quiet_if_absent: false,
                        });
                    }
                }
                Ok(Err(e)) => d.failed.push(TargetReport {
                    target: "--local".into(),
                    reason: e.to_string(),
                }),
                Err(e) => d.failed.push(TargetReport {
                    target: "--local".into(),
                    reason: e.to_string(),
                }),
            }
        }
        if let Some((client, sel, via)) = &self.kube {
            match crate::kube::list_pods(client, sel).await {
                Ok(pods) => {
                    for pod in pods {
                        let pod = Arc::new(pod);
                        let label = format!("{}/{}", pod.namespace, pod.name);
                        if pod.phase != "Running" {
                            d.skipped.push(TargetReport {
                                target: label,
                                reason: format!(
                                    "pod is {}, not Running",
                                    if pod.phase.is_empty() {
                                        "in no phase"
                                    } else {
                                        &pod.phase
                                    }
                                ),
                            });
                            continue;
                        }
                        for port in crate::kube::ports_to_probe(&pod, &self.settings.ports) {
                            let t = crate::kube::transport(client, *via, &pod, port);
                            d.found.push(Found {
                                key: format!(
                                    "kube:{}/{}/{}:{port}",
                                    pod.namespace, pod.name, pod.uid
                                ),
                                endpoint: Endpoint::new(t),
                                context: Context::Kube {
                                    pod: pod.clone(),
                                    port,
                                },
                                quiet_if_absent: true,
                            });
                        }
                    }
                }
                Err(e) => d.failed.push(TargetReport {
                    target: "--kube".into(),
                    reason: e.to_string(),
                }),
            }
        }
        d
    }

    /// Who answers at `f`, as a process state ready to fetch.
    ///
    /// With `first_fetch`, a port of a pod with its own network is probed by
    /// fetching its first snapshot (`GET /coverage`, whose answer carries
    /// the identity headers too) and writing it: one request per server
    /// instead of `GET /health` then `GET /coverage`, which halves the
    /// requests the API server relays. A hostNetwork pod's ports are probed
    /// with `/health` first: most servers there belong to other pods.
    ///
    /// Returns the outcome and, when the probe fetched it, the first
    /// snapshot (not written yet: [`Collector::probe_all`] writes it in its
    /// own stage).
    async fn probe(
        &self,
        f: &Found,
        first_fetch: bool,
    ) -> (ProbeOutcome, Option<Result<protocol::Snapshot, Error>>) {
        let mut first = None;
        let outcome = self.identify(f, first_fetch, &mut first).await;
        match outcome {
            ProbeOutcome::Coverage(..) => (outcome, first),
            other => (other, None),
        }
    }

    /// [`Collector::probe`]; `first` receives the snapshot fetched, if any.
    async fn identify(
        &self,
        f: &Found,
        first_fetch: bool,
        first: &mut Option<Result<protocol::Snapshot, Error>>,
    ) -> ProbeOutcome {
        let label = f.endpoint.label.clone();
        let mut opts = self.settings.client.clone();
        if f.quiet_if_absent {
            opts.retries = 0;
        }
        let absent_or_failed = |e: Error| match &e {
            Error::Transport { source, .. }
                if f.quiet_if_absent && source.kind == TransportErrorKind::Connect =>
            {
                ProbeOutcome::Absent
            }
            _ => ProbeOutcome::Failed(TargetReport {
                target: label.clone(),
                reason: e.to_string(),
            }),
        };
        if first_fetch && matches!(&f.context, Context::Kube { pod, .. } if !pod.host_network) {
            match protocol::fetch(&f.endpoint, &opts, true).await {
                Ok(snap) => *first = Some(Ok(snap)),
                // Nothing answered, or not in time: asking again would not help.
                Err(e @ (Error::Transport { .. } | Error::Timeout { .. })) => {
                    return absent_or_failed(e);
                }
                // An answer that is no snapshot: who sent it decides.
                Err(e) => *first = Some(Err(e)),
            }
        }
        let known = match first {
            Some(Ok(snap)) => snap.identity.clone(),
            _ => None,
        };
        // Without the identity from the snapshot (a failed fetch, a server
        // that sends no identity headers with snapshots): ask for it.
        let id = match known {
            Some(id) => id,
            None => match protocol::probe(&f.endpoint, &opts).await {
                Ok(Probe::Coverage(id)) => id,
                Ok(Probe::NotCoverage { reason, .. }) => {
                    return ProbeOutcome::Skipped(TargetReport {
                        target: label,
                        reason,
                    });
                }
                Err(e) => return absent_or_failed(e),
            },
        };
        let placement = match self.place(f, &id) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        ProbeOutcome::Coverage(Box::new(self.new_state(f, placement, id)), None)
    }

    /// Where the data of the process `id` found at `f` goes; a skip when
    /// it is not the process discovery saw there.
    fn place(&self, f: &Found, id: &Identity) -> Result<Placement, ProbeOutcome> {
        let label = f.endpoint.label.clone();
        let mut p = Placement {
            binary: id.binary.clone(),
            pid: id.pid,
            phase: self.settings.phase.clone(),
            target: label.clone(),
            ..Default::default()
        };
        match &f.context {
            Context::Url { host, port, route } => {
                p.source = Source::Url;
                // Loopback is this host: name it as --local does, so one
                // process is one host whichever way it was reached.
                p.hostname = if is_loopback(host) {
                    self.hostname.clone()
                } else {
                    host.clone()
                };
                p.port = *port;
                p.route = route.clone();
                let url = f.key.strip_prefix("url:").unwrap_or_default();
                if let Some(as_pod) = self.settings.url_pods.get(url) {
                    p.source = Source::Demo;
                    p.namespace = as_pod.namespace.clone();
                    p.pod = as_pod.pod.clone();
                    p.container = as_pod.container.clone();
                }
            }
            Context::Local {
                candidate,
                hostname,
            } => {
                p.source = Source::Local;
                p.namespace = "_host_".into();
                p.hostname = hostname.clone();
                p.host_process = true;
                p.port = Some(candidate.listener.port);
                if !candidate.owners.is_empty() {
                    let Some(owner) = candidate.owners.iter().find(|o| o.answers_to(id.pid)) else {
                        let pids: Vec<String> =
                            candidate.owners.iter().map(|o| o.pid.to_string()).collect();
                        return Err(ProbeOutcome::Skipped(TargetReport {
                            target: label,
                            reason: format!(
                                "identity mismatch: port {} is held by pid {} but the server says pid {}",
                                candidate.listener.port,
                                pids.join(","),
                                id.pid
                            ),
                        }));
                    };
                    p.process_tag = Some(format!("s{}", owner.start_ticks));
                    p.process.insert("host_pid".into(), owner.pid.to_string());
                    p.process
                        .insert("start_ticks".into(), owner.start_ticks.to_string());
                    if let Some(exe) = &owner.exe {
                        p.process.insert("exe".into(), exe.display().to_string());
                    }
                    if p.binary.is_empty() {
                        p.binary = owner.comm.clone();
                    }
                }
            }
            Context::Kube { pod, port } => {
                p.source = Source::Kube;
                p.owner_references = pod.owner_references.clone();
                p.namespace = pod.namespace.clone();
                p.pod = pod.name.clone();
                p.hostname = pod.node.clone();
                p.port = Some(*port);
                let Some(c) = crate::kube::match_container(pod, id, *port) else {
                    if pod.host_network {
                        return Err(ProbeOutcome::Skipped(TargetReport {
                            target: label,
                            reason: format!(
                                "server of {} (pid {}) on this hostNetwork pod's node matches none of its containers",
                                id.binary, id.pid
                            ),
                        }));
                    }
                    p.container = ContainerMeta {
                        name: "unknown".into(),
                        image: String::new(),
                    };
                    return Ok(p);
                };
                p.container = ContainerMeta {
                    name: c.name.clone(),
                    image: c.image.clone(),
                };
                p.process_tag = Some(format!("r{}", c.restart_count));
                p.process.insert("pod_uid".into(), pod.uid.clone());
                p.process
                    .insert("restart_count".into(), c.restart_count.to_string());
                p.process
                    .insert("host_network".into(), pod.host_network.to_string());
            }
        }
        if p.binary.is_empty() {
            p.binary = "unknown".into();
        }
        Ok(p)
    }

    /// Writes one fetched snapshot (or reports its fetch's error); updates
    /// when the process is due next and its last error.
    async fn settle(
        &self,
        st: ProcState,
        opts: &ClientOptions,
        snap: Result<protocol::Snapshot, Error>,
    ) -> (ProcState, Option<Error>) {
        let (mut st, res) = self.store_one(st, opts, snap).await;
        let now = Instant::now();
        st.next_due = now + crate::schedule::interval(now.duration_since(st.first_seen));
        match res {
            Ok(()) => {
                st.last_error = None;
                (st, None)
            }
            Err(e) => {
                st.last_error = Some(e.to_string());
                (st, Some(e))
            }
        }
    }

    /// Checks and writes one fetched snapshot on a blocking thread
    /// ([`Store::write`]), so a file being synced to disk never holds up
    /// the runtime's requests; fetches the meta-data when the entry lacks
    /// them.
    async fn store_one(
        &self,
        mut st: ProcState,
        opts: &ClientOptions,
        snap: Result<protocol::Snapshot, Error>,
    ) -> (ProcState, Result<(), Error>) {
        let mut snap = match snap {
            Ok(snap) => snap,
            Err(e) => return (st, Err(e)),
        };
        let mut refetched = false;
        loop {
            let (hash, res) = match self.write(&mut st, snap).await {
                Ok(w) => w,
                Err(e) => return (st, Err(e)),
            };
            match res {
                Written::Done => {
                    st.hash = Some(hash);
                    st.snapshots += 1;
                    return (st, Ok(()));
                }
                Written::NeedMeta if !refetched => {
                    refetched = true;
                    snap = match protocol::fetch(&st.endpoint, opts, true).await {
                        Ok(full) if full.hash == hash => full,
                        Ok(_) => {
                            let target = st.endpoint.label.clone();
                            let reason = "the meta-data hash changed between two answers".into();
                            return (st, Err(Error::Malformed { target, reason }));
                        }
                        Err(e) => return (st, Err(e)),
                    };
                }
                Written::NeedMeta => {
                    let target = st.endpoint.label.clone();
                    let reason = "meta-data missing after fetching it".into();
                    return (st, Err(Error::Malformed { target, reason }));
                }
            }
        }
    }

    /// `GET /coverage` for a known process: with meta-data unless its entry
    /// holds them for the hash last seen, and again with meta-data when the
    /// hash changed.
    async fn fetch_snapshot(
        &self,
        st: &ProcState,
        opts: &ClientOptions,
    ) -> Result<protocol::Snapshot, Error> {
        let have_meta = match (&st.hash, &st.writer) {
            (Some(h), Some(w)) => w.has_meta(h),
            _ => false,
        };
        let mut snap = protocol::fetch(&st.endpoint, opts, !have_meta).await?;
        if let Some(id) = &snap.identity
            && id.pid != st.identity.pid
        {
            return Err(Error::Identity {
                target: st.endpoint.label.clone(),
                reason: format!(
                    "server now says pid {} ({}), was pid {}",
                    id.pid, id.binary, st.identity.pid
                ),
            });
        }
        if snap.meta.is_none() && st.hash != Some(snap.hash) {
            // The hash changed (or was never seen): fetch the meta-data too.
            snap = protocol::fetch(&st.endpoint, opts, true).await?;
        }
        Ok(snap)
    }

    /// Runs [`Store::write`] on a blocking thread; returns the snapshot's hash.
    async fn write(
        &self,
        st: &mut ProcState,
        snap: protocol::Snapshot,
    ) -> Result<(covdata::Hash, Written), Error> {
        let hash = snap.hash;
        let mut job = WriteJob::take(st);
        job.marks = self.marks_now();
        let store = self.store.clone();
        let root = store.root.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let res = store.write(&mut job, &snap);
            // The memory budget share goes back once the bytes are on disk.
            drop(snap);
            (job, res)
        })
        .await;
        match joined {
            Ok((job, res)) => {
                job.put_back(st);
                res.map(|w| (hash, w))
            }
            // The task panicked or the runtime is shutting down: the open
            // entry is lost to this run (a later fetch opens a new one).
            Err(e) => Err(Error::io(&root, std::io::Error::other(e.to_string()))),
        }
    }

    fn new_state(&self, f: &Found, placement: Placement, identity: Identity) -> ProcState {
        let now = Instant::now();
        ProcState {
            endpoint: f.endpoint.clone(),
            placement,
            identity,
            hash: None,
            writer: None,
            instance: 1,
            info_written: false,
            first_seen: now,
            next_due: now,
            snapshots: 0,
            last_error: None,
            ended: false,
            shape: None,
            entries_opened: 0,
        }
    }

    /// Probes `found` concurrently; returns new process states and reports.
    /// With `first_fetch`, probes that can fetch the first snapshot do
    /// (see [`Collector::probe`]).
    async fn probe_all(
        &self,
        found: Vec<Found>,
        summary: &mut RunReport,
        first_fetch: bool,
    ) -> Vec<Probed> {
        self.emit(Event::Discovered(found.len()));
        let results: Vec<(Found, ProbeOutcome)> = futures::stream::iter(found)
            .map(|f| async move {
                let o = self.probe(&f, first_fetch).await;
                (f, o)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .map(|(f, o)| async move {
                let o = match o {
                    (ProbeOutcome::Coverage(st, _), Some(first)) => {
                        let (st, err) = self.settle(*st, &self.settings.client, first).await;
                        ProbeOutcome::Coverage(Box::new(st), Some(err))
                    }
                    (o, _) => o,
                };
                (f, o)
            })
            .buffer_unordered(self.writes_in_flight())
            .collect()
            .await;
        let mut out = Vec::new();
        // Every hostNetwork pod of a node sees every server on that node:
        // report a server no pod claims once per node, not once per pod.
        let mut unclaimed: BTreeMap<String, TargetReport> = BTreeMap::new();
        // Pods where nothing answered at all are reported once, per pod.
        let mut pods_probed: BTreeMap<String, (Arc<PodInfo>, Vec<u16>)> = BTreeMap::new();
        let mut pods_answered: std::collections::HashSet<String> = Default::default();
        for (f, outcome) in results {
            let pod_key = match &f.context {
                Context::Kube { pod, port } => {
                    let k = format!("pod:{}/{}/{}", pod.namespace, pod.name, pod.uid);
                    pods_probed
                        .entry(k.clone())
                        .or_insert_with(|| (pod.clone(), Vec::new()))
                        .1
                        .push(*port);
                    let answered = match &outcome {
                        ProbeOutcome::Absent => false,
                        ProbeOutcome::Coverage(..) => true,
                        // On a shared host network, other processes' answers do not count.
                        _ => !pod.host_network,
                    };
                    if answered {
                        pods_answered.insert(k.clone());
                    }
                    Some(k)
                }
                _ => None,
            };
            if !matches!(outcome, ProbeOutcome::Absent | ProbeOutcome::Coverage(..)) {
                summary
                    .last_probe_failed
                    .insert(f.key.clone(), Instant::now());
            }
            let host_key = match &f.context {
                Context::Kube { pod, port } if pod.host_network => {
                    Some((format!("node:{}:{port}", pod.node), pod.clone(), *port))
                }
                _ => None,
            };
            match (outcome, host_key) {
                (ProbeOutcome::Absent, _) => {}
                (ProbeOutcome::Skipped(r) | ProbeOutcome::Failed(r), Some((hk, pod, port)))
                    if !summary.claimed_host_ports.contains(&hk) =>
                {
                    let reason = r.reason.replace(&format!("{}: ", r.target), "");
                    unclaimed.entry(hk).or_insert(TargetReport {
                        target: format!(
                            "node {} port {port} (seen from hostNetwork pod {}/{})",
                            pod.node, pod.namespace, pod.name
                        ),
                        reason,
                    });
                }
                (ProbeOutcome::Skipped(_) | ProbeOutcome::Failed(_), Some(_)) => {}
                (ProbeOutcome::Skipped(r), None) => {
                    summary.skipped.insert(f.key.clone(), r);
                }
                (ProbeOutcome::Failed(r), None) => {
                    if !summary.collected_keys.contains(&f.key) {
                        summary.failed.insert(f.key.clone(), r);
                    }
                }
                (ProbeOutcome::Coverage(st, fetched), hk) => {
                    if let Some(pk) = &pod_key {
                        summary.skipped.remove(pk);
                        summary.pods_collected.insert(pk.clone());
                    }
                    summary.last_probe_failed.remove(&f.key);
                    if let Some((hk, _, _)) = hk {
                        summary.skipped.remove(&hk);
                        summary.claimed_host_ports.insert(hk);
                    }
                    summary.skipped.remove(&f.key);
                    summary.failed.remove(&f.key);
                    out.push(Probed {
                        key: f.key.clone(),
                        state: *st,
                        fetched,
                    });
                }
            }
            self.emit(Event::Done {
                target: f.endpoint.label.clone(),
            });
        }
        for (hk, r) in unclaimed {
            if !summary.claimed_host_ports.contains(&hk) {
                summary.skipped.insert(hk, r);
            }
        }
        for (pk, (pod, mut ports)) in pods_probed {
            if pods_answered.contains(&pk) || summary.pods_collected.contains(&pk) {
                continue;
            }
            ports.sort_unstable();
            let (first, last) = (
                ports.first().copied().unwrap_or(0),
                ports.last().copied().unwrap_or(0),
            );
            let span = if first == last {
                format!("port {first}")
            } else {
                format!("ports {first}-{last}")
            };
            let reason = if pod.host_network {
                format!(
                    "no coverage server on {span} of node {} belongs to its containers",
                    pod.node
                )
            } else {
                format!("no coverage server answered on {span}")
            };
            summary.skipped.insert(
                pk,
                TargetReport {
                    target: format!("{}/{}", pod.namespace, pod.name),
                    reason,
                },
            );
        }
        out
    }

    /// Fetches the given processes concurrently and folds the results in.
    async fn fetch_all(
        &self,
        states: Vec<(String, ProcState)>,
        opts: &ClientOptions,
    ) -> Vec<(String, ProcState, Option<Error>)> {
        futures::stream::iter(states)
            .map(|(k, st)| async move {
                let snap = self.fetch_snapshot(&st, opts).await;
                (k, st, snap)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .map(|(k, st, snap)| async move {
                let (st, err) = self.settle(st, opts, snap).await;
                (k, st, err)
            })
            .buffer_unordered(self.writes_in_flight())
            .collect()
            .await
    }

    /// Snapshots being checked and written at once, on blocking threads.
    /// Writing is a stage of its own after the requests (`--concurrency`):
    /// while files are synced to disk, the next requests go on, and many
    /// entries' syncs in flight share the file system's journal commits.
    /// Each snapshot waiting or being written holds its share of the
    /// memory budget.
    fn writes_in_flight(&self) -> usize {
        self.settings.concurrency.max(WRITES_IN_FLIGHT)
    }

    /// Probes and fetches every target once.
    pub async fn collect_once(&self) -> Summary {
        let mut report = RunReport::default();
        let d = self.discover().await;
        report.absorb_discovery(&d);
        let mut to_fetch = Vec::new();
        let mut results = Vec::new();
        for p in self.probe_all(d.found, &mut report, true).await {
            match p.fetched {
                Some(err) => results.push((p.key, p.state, err)),
                None => to_fetch.push((p.key, p.state)),
            }
        }
        results.extend(self.fetch_all(to_fetch, &self.settings.client).await);
        for (k, st, err) in results {
            if let Some(e) = err {
                let not_covered = protocol::not_covered_reason(&e);
                let r = TargetReport {
                    target: st.endpoint.label.clone(),
                    reason: not_covered.clone().unwrap_or_else(|| e.to_string()),
                };
                if not_covered.is_some() {
                    report.skipped.insert(k.clone(), r);
                } else {
                    report.failed.insert(k.clone(), r);
                }
                if st.snapshots == 0 {
                    continue;
                }
            }
            report.procs.push(st);
        }
        report.finish()
    }

    /// [`collect_once`](Self::collect_once), its snapshots also kept as the
    /// phase boundaries `reqs` (`--phase-start` / `--phase-end`), which are
    /// then appended to `marks.json`. Fails before collecting anything when
    /// a mark is not possible (see [`Marks::check`]).
    pub async fn collect_once_marked(&self, reqs: &[MarkRequest]) -> Result<Summary, Error> {
        let marks = self.begin_marks(reqs)?;
        let mut summary = self.collect_once().await;
        summary.marks = self.end_marks(marks, reqs, summary.collected)?;
        Ok(summary)
    }

    /// Registers phase marks about to be taken: checked against
    /// `marks.json` (a phase starts once, an end needs an open start), and
    /// counted so that snapshots written from now on record them and are
    /// kept as their boundary snapshots, until [`end_marks`](Self::end_marks).
    /// Returns the marks file to append them to.
    fn begin_marks(&self, reqs: &[MarkRequest]) -> Result<Marks, Error> {
        let marks = Marks::read(&self.settings.output)?;
        marks.check(reqs)?;
        let first = marks.count() + 1;
        let seqs: Vec<u32> = (first..first + reqs.len() as u32).collect();
        if let Some(&last) = seqs.last() {
            self.marks_seen.store(last, Ordering::SeqCst);
        }
        *self.marks_taking.lock().unwrap_or_else(|p| p.into_inner()) = seqs;
        Ok(marks)
    }

    /// (marks the collection holds, marks being taken now) for the next
    /// snapshot written (see [`EntryWriter::set_marks`]).
    fn marks_now(&self) -> (u32, Vec<u32>) {
        let taking = self
            .marks_taking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (self.marks_seen.load(Ordering::SeqCst), taking)
    }

    /// Records marks once their snapshots are written.
    fn end_marks(
        &self,
        mut marks: Marks,
        reqs: &[MarkRequest],
        processes: usize,
    ) -> Result<Vec<Mark>, Error> {
        self.marks_taking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let added = marks.push(reqs, &at, processes);
        marks.write(&self.settings.output)?;
        Ok(added)
    }

    /// Collects until `shutdown` resolves, then scrapes once more.
    pub async fn watch(&self, shutdown: impl Future<Output = ()>) -> Summary {
        self.watch_marked(shutdown, None).await
    }

    /// [`watch`](Self::watch), taking phase marks as they arrive on `marks`
    /// (e.g. from signals): each batch snapshots every live process at once
    /// and is then appended to `marks.json`. A batch that is not possible
    /// (see [`Marks::check`]) is reported as an [`Event::MarkFailed`].
    pub async fn watch_marked(
        &self,
        shutdown: impl Future<Output = ()>,
        mut marks: Option<tokio::sync::mpsc::UnboundedReceiver<Vec<MarkRequest>>>,
    ) -> Summary {
        let mut taken: Vec<Mark> = Vec::new();
        let mut report = RunReport::default();
        let mut live: HashMap<String, ProcState> = HashMap::new();
        let mut last_discovery: Option<Instant> = None;
        // Polls are not retried (the next poll is the retry), so one stuck
        // process delays a round by one timeout at most; the final scrape is.
        let poll_opts = ClientOptions {
            retries: 0,
            ..self.settings.client.clone()
        };
        tokio::pin!(shutdown);
        let mut announced: HashMap<String, String> = HashMap::new();
        let mut last_status = Instant::now();
        loop {
            let now = Instant::now();
            if last_discovery
                .is_none_or(|t| now.duration_since(t) >= self.settings.rediscover_every)
            {
                last_discovery = Some(now);
                let d = self.discover().await;
                report.absorb_discovery(&d);
                let fresh: Vec<Found> = d
                    .found
                    .into_iter()
                    .filter(|f| !live.contains_key(&f.key) && !report.stopped.contains(&f.key))
                    .filter(|f| {
                        report
                            .last_probe_failed
                            .get(&f.key)
                            .is_none_or(|t| now.duration_since(*t) >= RECHECK)
                    })
                    .collect();
                for p in self.probe_all(fresh, &mut report, true).await {
                    match p.fetched {
                        Some(err) => {
                            self.fold_watch_result(&mut report, &mut live, p.key, p.state, err)
                        }
                        None => {
                            live.insert(p.key, p.state);
                        }
                    }
                }
            }
            let now = Instant::now();
            let due: Vec<String> = live
                .iter()
                .filter(|(_, s)| s.next_due <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let batch: Vec<(String, ProcState)> =
                due.iter().filter_map(|k| live.remove_entry(k)).collect();
            let fetched = batch.len();
            for (k, st, err) in self.fetch_all(batch, &poll_opts).await {
                self.fold_watch_result(&mut report, &mut live, k, st, err);
            }
            if fetched > 0 {
                self.emit(Event::Round { fetched });
            }
            // One line per change of state, for logs.
            announced.retain(|k, _| report.failed.contains_key(k));
            for (k, r) in &report.failed {
                if announced.get(k) != Some(&r.reason) {
                    announced.insert(k.clone(), r.reason.clone());
                    self.emit(Event::Failed {
                        target: r.target.clone(),
                        reason: r.reason.clone(),
                    });
                }
            }
            if last_status.elapsed() >= self.settings.summary_every {
                last_status = Instant::now();
                self.emit(Event::Status {
                    live: live.len(),
                    collected: report.collected_keys.len(),
                    failed: report.failed.len(),
                });
            }
            let next_fetch = live.values().map(|s| s.next_due).min();
            let next_disc = last_discovery.map(|t| t + self.settings.rediscover_every);
            let next_status = Some(last_status + self.settings.summary_every);
            let wake = [next_fetch, next_disc, next_status]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let wake = wake.max(Instant::now() + Duration::from_millis(50));
            let next_mark = async {
                match marks.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
                req = next_mark => match req {
                    Some(reqs) => {
                        if let Some(added) = self.mark_live(&mut report, &mut live, &reqs).await {
                            taken.extend(added);
                        }
                    }
                    None => marks = None,
                },
            }
        }
        // Final scrape of everything still alive.
        let batch: Vec<(String, ProcState)> = live.drain().collect();
        for (k, st, err) in self.fetch_all(batch, &self.settings.client).await {
            let mut after = HashMap::new();
            self.fold_watch_result(&mut report, &mut after, k, st, err);
            // Still alive after the last scrape: report it as collected.
            report
                .procs
                .extend(after.into_values().filter(|s| s.snapshots > 0));
        }
        let mut summary = report.finish();
        summary.marks = taken;
        summary
    }

    /// `--watch`: snapshots every live process now as the marks `reqs`.
    async fn mark_live(
        &self,
        report: &mut RunReport,
        live: &mut HashMap<String, ProcState>,
        reqs: &[MarkRequest],
    ) -> Option<Vec<Mark>> {
        let fail = |e: Error| {
            self.emit(Event::MarkFailed {
                reason: e.to_string(),
            });
            None
        };
        let marks = match self.begin_marks(reqs) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        let batch: Vec<(String, ProcState)> = live.drain().collect();
        let mut kept = 0;
        for (k, st, err) in self.fetch_all(batch, &self.settings.client).await {
            if err.is_none() {
                kept += 1;
            }
            self.fold_watch_result(report, live, k, st, err);
        }
        match self.end_marks(marks, reqs, kept) {
            Ok(added) => {
                for m in &added {
                    self.emit(Event::Marked { mark: m.clone() });
                }
                Some(added)
            }
            Err(e) => fail(e),
        }
    }

    fn fold_watch_result(
        &self,
        report: &mut RunReport,
        live: &mut HashMap<String, ProcState>,
        key: String,
        mut st: ProcState,
        err: Option<Error>,
    ) {
        match err {
            None => {
                report.failed.remove(&key);
                report.collected_keys.insert(key.clone());
                if st.snapshots == 1
                    && let Some(w) = &st.writer
                {
                    self.emit(Event::Found {
                        target: st.endpoint.label.clone(),
                        entry: w.dir().to_path_buf(),
                    });
                }
                live.insert(key, st);
            }
            Some(e @ Error::Limit { .. }) => {
                st.ended = true;
                report.stopped.insert(key.clone());
                report.failed.insert(
                    key,
                    TargetReport {
                        target: st.endpoint.label.clone(),
                        reason: e.to_string(),
                    },
                );
                report.procs.push(st);
            }
            Some(e) => {
                let gone = matches!(&e, Error::Transport { source, .. } if source.kind == TransportErrorKind::Connect)
                    || matches!(e, Error::Identity { .. });
                if gone || protocol::is_not_covered(&e) {
                    // The process exited or was replaced: keep what we have;
                    // rediscovery will pick up a successor.
                    st.ended = true;
                    if st.snapshots > 0 {
                        self.emit(Event::Lost {
                            target: st.endpoint.label.clone(),
                            reason: e.to_string(),
                        });
                    }
                    if st.snapshots == 0 {
                        let r = TargetReport {
                            target: st.endpoint.label.clone(),
                            reason: protocol::not_covered_reason(&e)
                                .unwrap_or_else(|| e.to_string()),
                        };
                        if protocol::is_not_covered(&e) {
                            report.skipped.insert(key, r);
                        } else {
                            report.failed.insert(key, r);
                        }
                    } else {
                        report.procs.push(st);
                    }
                } else {
                    // Transient (timeout, bad answer): try again on schedule.
                    if st.snapshots == 0 {
                        report.failed.insert(
                            key.clone(),
                            TargetReport {
                                target: st.endpoint.label.clone(),
                                reason: e.to_string(),
                            },
                        );
                    }
                    live.insert(key, st);
                }
            }
        }
    }

    /// `POST /coverage/reset` on every coverage server found.
    pub async fn reset(&self) -> Summary {
        let mut report = RunReport::default();
        let d = self.discover().await;
        report.absorb_discovery(&d);
        let states = self.probe_all(d.found, &mut report, false).await;
        let results: Vec<(String, ProcState, Result<(), Error>)> = futures::stream::iter(states)
            .map(
                |Probed {
                     key: k, state: st, ..
                 }| async move {
                    let r = protocol::reset(&st.endpoint, &self.settings.client).await;
                    (k, st, r)
                },
            )
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for (k, st, r) in results {
            match r {
                Ok(()) => report.reset += 1,
                Err(e) => {
                    report.failed.insert(
                        k,
                        TargetReport {
                            target: st.endpoint.label.clone(),
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
        report.finish()
    }
}

impl Store {
    /// Checks a snapshot against what is known of its process and writes it
    /// into the process's entry (opening one, or the next one when the
    /// counters went down). Blocking: runs off the runtime.
    ///
    /// Every file is written whole to a temporary name, synced and renamed
    /// into place ([`EntryWriter`]): a crash at any point leaves each file
    /// either as it was or complete, never torn.
    fn write(&self, job: &mut WriteJob, snap: &protocol::Snapshot) -> Result<Written, Error> {
        // Decode what is stored: meta-data must hash to its hash (it is
        // stored, shared and cached by it), counters must fit it.
        let bad = |reason: String| Error::Malformed {
            target: job.label.clone(),
            reason,
        };
        if let Some(meta) = &snap.meta {
            let (file, _) = covdata::hash::verify_meta(meta).map_err(|e| bad(e.to_string()))?;
            job.shape = Some(Arc::new(MetaShape::of(&file)));
        }
        let counters = covdata::CounterFile::decode(&snap.counters)
            .map_err(|e| bad(format!("counters_data does not decode: {e}")))?;
        match &job.shape {
            Some(shape) if shape.hash == snap.hash => shape
                .check(&counters)
                .map_err(|r| bad(format!("counters_data: {r}")))?,
            // Every first fetch, and every fetch after a hash change, carries
            // the meta-data: this cannot happen with a consistent server.
            _ => {
                return Err(bad(
                    "counters without verified meta-data for their hash".into()
                ));
            }
        }
        let mut instance = job.instance.max(1);
        let mut writer = match job.writer.take() {
            Some(w) => w,
            None => self.open_entry(job, &mut instance)?,
        };
        // Counters of one process only grow: a drop means another process
        // behind the same name (PID reuse, restart) or a reset.
        while let Some((_, old)) = writer.latest_counters() {
            if is_continuation(&old, &snap.counters) {
                break;
            }
            instance += 1;
            job.info_written = false;
            writer = self.open_entry(job, &mut instance)?;
        }
        job.instance = instance;
        if snap.meta.is_none() && !writer.has_meta(&snap.hash) {
            job.writer = Some(writer);
            return Ok(Written::NeedMeta);
        }
        let info = (!job.info_written).then(|| snap.identity.as_ref().unwrap_or(&job.identity));
        writer.set_marks(job.marks.0, &job.marks.1);
        let written = writer.write_all(
            &job.placement,
            &job.identity,
            &snap.hash,
            snap.meta.as_deref(),
            &snap.counters,
            info,
        );
        job.writer = Some(writer);
        written?;
        job.info_written = true;
        Ok(Written::Done)
    }

    /// Opens the entry `instance` (or the next one no other target of this
    /// run holds), counting it against the target's entry cap.
    fn open_entry(&self, job: &mut WriteJob, instance: &mut u32) -> Result<EntryWriter, Error> {
        let cap = self.max_entries_per_target;
        if job.entries_opened >= cap {
            return Err(Error::Limit {
                target: job.label.clone(),
                reason: format!(
                    "needed a new entry {} times in this run (a new process, meta hash or counter reset each time); \
                     stopped at --max-entries-per-target {cap}",
                    job.entries_opened + 1
                ),
            });
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        let mut name = job.placement.entry_name(*instance);
        while claimed.contains(&name) {
            *instance += 1;
            name = job.placement.entry_name(*instance);
        }
        let writer = EntryWriter::open(&self.root, &name)?;
        claimed.insert(name);
        job.entries_opened += 1;
        Ok(writer)
    }
}

#[derive(Default)]
struct RunReport {
    /// Pods (`pod:NS/NAME/UID`) with at least one server collected.
    pods_collected: std::collections::HashSet<String>,
    /// Targets whose last probe was skipped or failed, and when (`--watch`
    /// re-probes them only every [`RECHECK`], so a hanging listener cannot
    /// stall every round).
    last_probe_failed: HashMap<String, Instant>,
    /// `node:NODE:PORT` of host-network servers some pod's container claimed.
    claimed_host_ports: std::collections::HashSet<String>,
    skipped: BTreeMap<String, TargetReport>,
    failed: BTreeMap<String, TargetReport>,
    procs: Vec<ProcState>,
    reset: usize,
    /// Targets collected at least once in this run: their later failures
    /// (the process exited, the port closed) are not failures of the run.
    collected_keys: HashSet<String>,
    /// Targets stopped for going past a limit: not probed again.
    stopped: HashSet<String>,
}

impl RunReport {
    fn absorb_discovery(&mut self, d: &Discovery) {
        for r in &d.skipped {
            self.skipped
                .insert(format!("discovery:{}", r.target), r.clone());
        }
        for r in &d.failed {
            self.failed
                .insert(format!("discovery:{}", r.target), r.clone());
        }
    }

    fn finish(self) -> Summary {
        let mut entries: Vec<EntryReport> = self
            .procs
            .iter()
            .filter(|p| p.snapshots > 0)
            .filter_map(|p| {
                p.writer.as_ref().map(|w| EntryReport {
                    target: p.endpoint.label.clone(),
                    dir: w.dir().to_path_buf(),
                    binary: p.identity.binary.clone(),
                    pid: p.identity.pid,
                    snapshots: p.snapshots,
                    ended: p.ended,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.dir.cmp(&b.dir));
        let skipped: Vec<TargetReport> = self.skipped.into_values().collect();
        let failed: Vec<TargetReport> = self.failed.into_values().collect();
        let collected = entries.len();
        Summary {
            found: collected + self.reset + skipped.len() + failed.len(),
            collected,
            reset: self.reset,
            skipped,
            failed,
            entries,
            marks: Vec::new(),
        }
    }
}
