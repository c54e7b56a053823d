//! Exit-time coverage of short-lived programs: directories the agent is
//! told to watch (`--watch-dir`), which workloads use as `GOCOVERDIR`.
//!
//! A Go program built with `-cover` and run with `GOCOVERDIR` writes
//! `covmeta.<hash>` when it starts (only when no file of that name and size
//! is there yet) and `covcounters.<hash>.<pid>.<nanotime>` when it exits.
//! Both are written under a temporary name (`tmp.…`) and renamed into
//! place (`internal/coverage/cfile/emit.go`), so a file under its final
//! name is complete: the agent only ever reads final names and never
//! touches `tmp.*` files.
//!
//! Each round, the agent takes the counter files it finds, groups them by
//! attribution and program (the counter file's `argv[0]`), and stores each
//! group in the seed layout, one directory per group ("batch") with
//! `covmeta.<hash>`, `covcounters.<hash>.<pid>.1` per process, `info.json`
//! and `metadata.json` — the same layout and attribution as scraped
//! processes, so `download` and `compile` read them like any other entry.
//! Each process of a batch has its own PID (a repeated PID waits for the
//! next batch) and the batch's `metadata.json` tags its processes with the
//! batch, so `compile` adds every run up and never mistakes two runs for
//! snapshots of one process.
//!
//! **Attribution**: by the writing process's cgroup where the agent saw
//! it, else by the directory's path. With `--watch-attribution cgroup`
//! (the default) and CAP_SYS_ADMIN, [`crate::writers`] watches the
//! directories with fanotify and reads the cgroup of each process that
//! opens a counter file while it waits in `open` (a program that lives
//! 20 ms has exited, and may be reaped, by the time its counter file
//! appears under its final name; the PID in the file's name is the one in
//! its own PID namespace). The writer is remembered by the file's device
//! and inode, which the rename keeps. When the round takes a counter file
//! whose writer was seen, that wins: a container (its pod, namespace,
//! container, image, UID and owners from the pod index, else `crictl`) or
//! a host process (`_host_`), wherever in `DIR` the file is. A container
//! the pod index does not know yet is waited for (up to
//! [`WatchConfig::unknown_container_grace`]), then the path decides.
//! Otherwise — fanotify unavailable (no capability: logged once at start),
//! `--watch-attribution path`, the writer gone before the agent could read
//! its cgroup (possible only without permission events), or a file written
//! before the agent started — the path decides:
//! `DIR/<namespace>/<pod>/<container>/` is that pod's container (image, UID
//! and owners from the API server when the agent knows the pod), anything
//! else under `DIR` is a host process (`_host_`). A pod gets its own
//! directory with a `hostPath` volume and `subPathExpr:
//! $(POD_NAMESPACE)/$(POD_NAME)/<container>`; since, by path, a workload
//! that can write elsewhere in `DIR` can claim another pod's name, mount
//! only the pod's own subdirectory (with cgroup attribution a container
//! cannot claim another's name). Each batch's `metadata.json` says which
//! decided (`process.attributed_by`: `cgroup` or `path`, with
//! `process.container_id` for a container seen by cgroup), and so does the
//! log line of the stored batch.
//!
//! **Crash safety**: before a batch's first write, a journal (the batch's
//! location and files) goes to the agent's state directory; a counter file
//! is removed from `DIR` only after every object of its batch is stored,
//! and the journal goes last. An agent restarted after a crash, or a sink
//! that was down, replays the journal into the *same* location: no data is
//! lost and nothing is counted twice. `covmeta.*` files stay (Go writes
//! one per build and reuses it; the agent needs it for counter files still
//! to come).
//!
//! Everything in `DIR` is untrusted: symbolic links are never followed
//! (neither directories nor files), files are read up to a size bound,
//! meta-data must hash to its name, counter files must decode, and every
//! name lands in the layout sanitized.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use store::layout::{HOST_NAMESPACE, counters_name, meta_name};
use store::{Location, Sink};

use crate::metrics::Metrics;
use crate::pods::{self, PodIndex};
use crate::writers::{FileKey, Watcher, Writer, Writers};

/// Deepest directory level read below a watched directory
/// (`<namespace>/<pod>/<container>`).
const MAX_DEPTH: usize = 3;
/// Most counter files taken in one round (the rest wait for the next).
const MAX_FILES_PER_ROUND: usize = 2000;
/// Most processes in one batch.
const MAX_BATCH: usize = 500;
/// Most locations remembered to keep batches apart.
const RECENT_LOCATIONS: usize = 4096;

/// How exit-time files are attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attribution {
    /// By the writing process's cgroup (fanotify, see [`crate::writers`])
    /// where it was seen, else by the directory's path.
    #[default]
    Cgroup,
    /// By the directory's path only.
    Path,
}

/// Settings of the watcher.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The watched directories.
    pub dirs: Vec<PathBuf>,
    /// Where journals of batches in flight are kept (across restarts).
    pub state_dir: PathBuf,
    /// This node's name in the layout.
    pub hostname: String,
    /// Use the node name the pod index learns instead, once it is known
    /// (see `Config::hostname_from_node`).
    pub hostname_from_node: bool,
    /// Largest file read from a watched directory.
    pub max_file_bytes: u64,
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Cgroup (where the writer was seen) or path attribution.
    pub attribution: Attribution,
    /// The host's `/proc`, where a writer's cgroup is read.
    pub proc_root: PathBuf,
    /// How long a file whose writer's container the pod index does not
    /// know yet waits for it before the path convention is used (zero
    /// without pod metadata).
    pub unknown_container_grace: Duration,
    /// `crictl`, for containers the API server does not know.
    pub crictl: Option<PathBuf>,
}

/// A counter file found in a watched directory.
#[derive(Debug, Clone)]
struct Found {
    path: PathBuf,
    /// Directory components below the watched directory.
    rel: Vec<String>,
    hash: String,
    pid: u32,
    binary: String,
    /// Device and inode.
    key: FileKey,
}

/// One counter file of a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JournalFile {
    path: PathBuf,
    hash: String,
    pid: u32,
    /// Device and inode (to forget the writer once stored).
    #[serde(default)]
    key: Option<FileKey>,
}

/// A batch in flight: what a replay needs to store it in the same place.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    location: Location,
    /// Meta-data files by hash.
    metas: BTreeMap<String, PathBuf>,
    counters: Vec<JournalFile>,
    info: String,
    metadata: String,
    /// `cgroup` or `path`: how the batch was attributed.
    #[serde(default)]
    attributed_by: String,
}

/// Why a file in a watched directory was not taken.
#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{}: larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// Reads a regular file without following a symbolic link, up to `limit`.
fn read_plain(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    read_plain_keyed(path, limit).map(|(d, _)| d)
}

/// [`read_plain`], with the file's device and inode.
fn read_plain_keyed(path: &Path, limit: u64) -> Result<(Vec<u8>, FileKey), FileError> {
    use std::os::unix::fs::MetadataExt;
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io)?;
    let md = f.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if md.len() > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    f.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok((buf, (md.dev(), md.ino())))
}

/// `covcounters.<32 hex>.<pid>.<n>` → (hash, pid).
pub(crate) fn counter_file_name(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("covcounters.")?;
    let mut it = rest.split('.');
    let h = it.next()?;
    let pid = it.next()?.parse().ok()?;
    it.next()?.parse::<u64>().ok()?;
    (it.next().is_none() && h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (h.to_ascii_lowercase(), pid))
}

/// Counter files under `root`, at most `MAX_DEPTH` directories down,
/// never through a symbolic link.
fn list_counter_files(root: &Path, limit: usize) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if out.len() >= limit {
                return out;
            }
            // file_type() does not follow symbolic links.
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if ft.is_dir() && rel.len() < MAX_DEPTH {
                let mut r = rel.clone();
                r.push(name);
                stack.push((e.path(), r));
            } else if ft.is_file() && counter_file_name(&name).is_some() {
                out.push((e.path(), rel.clone()));
            }
        }
    }
    out
}

/// Reads and checks one counter file: its program name.
fn inspect(path: &Path, rel: Vec<String>, limit: u64) -> Result<Found, FileError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((hash, pid)) = counter_file_name(&name) else {
        return Err(FileError::Invalid {
            path: path.to_path_buf(),
            reason: "not a counter file name".into(),
        });
    };
    let (data, key) = read_plain_keyed(path, limit)?;
    let cf = covdata::counters::CounterFile::decode(&data).map_err(|e| FileError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let binary = cf
        .os_args
        .first()
        .and_then(|a| a.rsplit('/').next())
        .filter(|b| !b.is_empty())
        .unwrap_or("unknown")
        .to_string();
    Ok(Found {
        path: path.to_path_buf(),
        rel,
        hash,
        pid,
        binary,
        key,
    })
}

/// Reads a meta-data file and checks it hashes to `hash`.
fn read_meta(path: &Path, hash: &str, limit: u64) -> Result<Vec<u8>, FileError> {
    let data = read_plain(path, limit)?;
    let (m, _) = covdata::hash::verify_meta(&data).map_err(|e| FileError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if covdata::hex(&m.hash) != hash {
        return Err(FileError::Invalid {
            path: path.to_path_buf(),
            reason: format!("its content is meta-data {}", covdata::hex(&m.hash)),
        });
    }
    Ok(data)
}

/// Where a directory's programs belong.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Place {
    Host,
    Pod {
        namespace: String,
        pod: String,
        container: String,
    },
}

/// How a batch's place was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Via {
    /// The writing process's cgroup.
    Cgroup,
    /// The directory's path convention.
    Path,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Cgroup => "cgroup",
            Via::Path => "path",
        }
    }
}

/// Who a counter file belongs to: the place, how it was decided, and the
/// container when the writer's cgroup named one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Who {
    place: Place,
    via: Via,
    container_id: Option<String>,
}

fn place_of(rel: &[String]) -> Place {
    match rel {
        [ns, pod, container] if ns != HOST_NAMESPACE => Place::Pod {
            namespace: ns.clone(),
            pod: pod.clone(),
            container: container.clone(),
        },
        _ => Place::Host,
    }
}

/// The watcher: one [`ExitWatch::round`] per agent scan.
#[derive(Debug)]
pub struct ExitWatch {
    cfg: WatchConfig,
    pods: Arc<RwLock<PodIndex>>,
    metrics: Arc<Metrics>,
    recent: VecDeque<String>,
    recent_set: HashSet<String>,
    /// Files that failed to read, with the warning already logged.
    warned: HashSet<PathBuf>,
    /// Who writes the files: fanotify's findings, unless attribution is
    /// by path (or fanotify is unavailable).
    writers: Option<Arc<Writers>>,
    /// Keeps fanotify running.
    _watcher: Option<Watcher>,
}

impl ExitWatch {
    /// A watcher; creates the state directory.
    pub fn new(
        cfg: WatchConfig,
        pods: Arc<RwLock<PodIndex>>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<ExitWatch> {
        std::fs::create_dir_all(&cfg.state_dir)?;
        let watcher = match cfg.attribution {
            Attribution::Path => None,
            Attribution::Cgroup => match Watcher::start(cfg.dirs.clone(), cfg.proc_root.clone()) {
                Ok(w) => {
                    tracing::info!(mode = ?w.mode(), "exit-time files: their writers are seen with fanotify");
                    Some(w)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "exit-time files: fanotify unavailable; attributed by the directory's path only");
                    None
                }
            },
        };
        Ok(ExitWatch {
            cfg,
            pods,
            metrics,
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            warned: HashSet::new(),
            writers: watcher.as_ref().map(|w| w.writers().clone()),
            _watcher: watcher,
        })
    }

    /// Whether the writers of exit-time files are seen (fanotify runs).
    pub fn sees_writers(&self) -> bool {
        self.writers.is_some()
    }

    /// Who a counter file belongs to: its writer's cgroup when fanotify
    /// saw it (the container's pod from the pod index, else `crictl`),
    /// else the path convention. None: the writer's container is not known
    /// yet (within [`WatchConfig::unknown_container_grace`]); the file
    /// waits for a later round.
    fn who(
        &self,
        f: &Found,
        resolved: &mut HashMap<String, Option<pods::Attribution>>,
    ) -> Option<Who> {
        let by_path = Who {
            place: place_of(&f.rel),
            via: Via::Path,
            container_id: None,
        };
        let name = f.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(seen) = self.writers.as_ref().and_then(|w| w.get(f.key, name)) else {
            return Some(by_path);
        };
        let c = match seen.writer {
            Writer::Host => {
                return Some(Who {
                    place: Place::Host,
                    via: Via::Cgroup,
                    container_id: None,
                });
            }
            Writer::Container(c) => c,
        };
        let known = resolved.entry(c.id.clone()).or_insert_with(|| {
            self.pods
                .read()
                .ok()
                .and_then(|idx| idx.lookup(&c))
                .or_else(|| {
                    self.cfg
                        .crictl
                        .as_ref()
                        .and_then(|p| pods::crictl_inspect(p, &c.id))
                })
        });
        match known {
            Some(a) => Some(Who {
                place: Place::Pod {
                    namespace: a.pod.namespace.clone(),
                    pod: a.pod.name.clone(),
                    container: a.container.name.clone(),
                },
                via: Via::Cgroup,
                container_id: Some(c.id),
            }),
            None if seen.at.elapsed() < self.cfg.unknown_container_grace => None,
            None => {
                tracing::debug!(container = %c.id, file = %f.path.display(), "the writer's container is unknown; path attribution");
                Some(by_path)
            }
        }
    }

    /// Removes a stored batch's files and journal; forgets their writers.
    fn done(&self, journal: &Path, j: &Journal, stored: &[PathBuf]) {
        finish(journal, stored);
        if let Some(w) = &self.writers {
            let stored: HashSet<&PathBuf> = stored.iter().collect();
            for c in &j.counters {
                if let Some(k) = c.key
                    && stored.contains(&c.path)
                {
                    w.forget(k);
                }
            }
        }
    }

    fn remember(&mut self, dir: String) {
        if self.recent_set.insert(dir.clone()) {
            self.recent.push_back(dir);
        }
        while self.recent.len() > RECENT_LOCATIONS {
            if let Some(d) = self.recent.pop_front() {
                self.recent_set.remove(&d);
            }
        }
    }

    fn journals(&self) -> Vec<(PathBuf, Journal)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.cfg.state_dir) else {
            return out;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Journal>(&b).ok())
            {
                Some(j) => out.push((p, j)),
                None => {
                    tracing::warn!(journal = %p.display(), "unreadable journal removed");
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Files in batches that are not finished yet.
    fn pending(&self) -> HashSet<PathBuf> {
        self.journals()
            .into_iter()
            .flat_map(|(_, j)| j.counters.into_iter().map(|c| c.path))
            .collect()
    }

    /// Counter files waiting in journals (for metrics).
    pub fn pending_files(&self) -> usize {
        self.pending().len()
    }

    /// One round: finish earlier batches, then store what the watched
    /// directories hold now. `taken` holds the directories of the
    /// processes the agent scrapes (a batch never shares one).
    pub async fn round(&mut self, sink: &Sink, taken: &HashSet<String>) {
        for (path, j) in self.journals() {
            self.remember(j.location.dir());
            let Some(stored) = self.store(sink, &j).await else {
                // The sink is down: the rest can wait too.
                return;
            };
            self.done(&path, &j, &stored);
        }
        let pending = self.pending();
        let dirs = self.cfg.dirs.clone();
        let limit = self.cfg.max_file_bytes;
        let listed = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for d in dirs {
                for (p, rel) in list_counter_files(&d, MAX_FILES_PER_ROUND) {
                    if pending.contains(&p) {
                        continue;
                    }
                    match inspect(&p, rel, limit) {
                        Ok(f) => found.push(f),
                        Err(e) => errors.push((p, e)),
                    }
                }
            }
            (found, errors)
        })
        .await;
        let Ok((found, errors)) = listed else { return };
        for (p, e) in errors {
            self.metrics.failure("exit-file");
            if self.warned.insert(p) {
                tracing::warn!(error = %e, "exit-time coverage file left alone");
            }
        }
        let mut resolved = HashMap::new();
        let mut groups: BTreeMap<(Who, String), Vec<Found>> = BTreeMap::new();
        for f in found {
            if let Some(who) = self.who(&f, &mut resolved) {
                groups.entry((who, f.binary.clone())).or_default().push(f);
            }
        }
        for ((who, binary), files) in groups {
            // One process per (hash, PID) in a batch; repeats wait.
            let mut seen = HashSet::new();
            let mut batch: Vec<Found> = files
                .into_iter()
                .filter(|f| seen.insert((f.hash.clone(), f.pid)))
                .collect();
            batch.truncate(MAX_BATCH);
            let known = who
                .container_id
                .as_ref()
                .and_then(|id| resolved.get(id).cloned().flatten());
            let Some(j) = self.journal_for(&who, known, &binary, batch, taken) else {
                continue;
            };
            let id = format!(
                "{}-{:08x}.json",
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
                rand_u32()
            );
            let path = self.cfg.state_dir.join(id);
            if let Err(e) = write_journal(&path, &j) {
                tracing::warn!(journal = %path.display(), error = %e, "cannot write the journal; batch left for later");
                continue;
            }
            let Some(stored) = self.store(sink, &j).await else {
                return;
            };
            self.done(&path, &j, &stored);
        }
    }

    /// The journal of a new batch (None when its meta-data is missing).
    fn journal_for(
        &mut self,
        who: &Who,
        known: Option<pods::Attribution>,
        binary: &str,
        batch: Vec<Found>,
        taken: &HashSet<String>,
    ) -> Option<Journal> {
        let mut metas = BTreeMap::new();
        let mut counters = Vec::new();
        // Each meta-data file is checked once per batch (it must hash to
        // its name); counter files without a good one stay where they are.
        let mut checked: BTreeMap<PathBuf, bool> = BTreeMap::new();
        for f in batch {
            let meta = f
                .path
                .parent()
                .map(|d| d.join(meta_name(&f.hash)))
                .unwrap_or_default();
            let good = *checked.entry(meta.clone()).or_insert_with(|| {
                match read_meta(&meta, &f.hash, self.cfg.max_file_bytes) {
                    Ok(_) => true,
                    Err(e) => {
                        if self.warned.insert(meta.clone()) {
                            tracing::warn!(error = %e, "no usable covmeta file; its counter files are left alone");
                        }
                        false
                    }
                }
            });
            if good {
                metas.insert(f.hash.clone(), meta);
                counters.push(JournalFile {
                    path: f.path,
                    hash: f.hash,
                    pid: f.pid,
                    key: Some(f.key),
                });
            } else {
                self.metrics.failure("exit-no-meta");
            }
        }
        if counters.is_empty() {
            return None;
        }
        let (pod_meta, owners) = match &who.place {
            Place::Pod {
                namespace,
                pod,
                container,
            } => {
                let known = known.or_else(|| {
                    self.pods
                        .read()
                        .ok()
                        .and_then(|idx| idx.by_name(namespace, pod, container))
                });
                let image = known
                    .as_ref()
                    .map(|a| a.container.image.clone())
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| "unknown".into());
                let uid = known.as_ref().map(|a| a.pod.uid.clone());
                let restarts = known.as_ref().map(|a| a.container.restart_count);
                (
                    Some((
                        namespace.clone(),
                        pod.clone(),
                        container.clone(),
                        image,
                        uid,
                        restarts,
                    )),
                    known.map(|a| a.pod.owner_references.clone()),
                )
            }
            Place::Host => (None, None),
        };
        let hostname =
            pods::layout_hostname(&self.pods, &self.cfg.hostname, self.cfg.hostname_from_node);
        let mut t = SystemTime::now();
        let location = loop {
            let discovery_time = store::layout::discovery_time(t);
            let loc = match &pod_meta {
                Some((ns, pod, c, image, _, _)) => Location::Pod {
                    hostname: hostname.clone(),
                    namespace: ns.clone(),
                    pod: pod.clone(),
                    container: c.clone(),
                    discovery_time,
                    image: image.clone(),
                    binary: binary.to_string(),
                },
                None => Location::Host {
                    hostname: hostname.clone(),
                    discovery_time,
                    binary: binary.to_string(),
                },
            };
            let dir = loc.dir();
            if !self.recent_set.contains(&dir) && !taken.contains(&dir) {
                break loc;
            }
            t += Duration::from_secs(1);
        };
        self.remember(location.dir());
        let mut process = BTreeMap::new();
        process.insert("gocoverdir_batch".to_string(), location.dir());
        process.insert("attributed_by".into(), who.via.as_str().into());
        if let Some(id) = &who.container_id {
            process.insert("container_id".into(), id.clone());
        }
        if let Some((_, _, _, _, uid, restarts)) = &pod_meta {
            if let Some(u) = uid {
                process.insert("pod_uid".into(), u.clone());
            }
            if let Some(r) = restarts {
                process.insert("restart_count".into(), r.to_string());
            }
        }
        let first = &counters[0];
        let md = scrape::output::Metadata {
            pod_name: pod_meta.as_ref().map(|p| p.1.clone()).unwrap_or_default(),
            namespace: pod_meta
                .as_ref()
                .map_or_else(|| HOST_NAMESPACE.to_string(), |p| p.0.clone()),
            container: scrape::output::ContainerMeta {
                name: pod_meta.as_ref().map(|p| p.2.clone()).unwrap_or_default(),
                image: pod_meta
                    .as_ref()
                    .map(|p| p.3.clone())
                    .filter(|i| i != "unknown")
                    .unwrap_or_default(),
            },
            collected_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            binary_name: binary.to_string(),
            hostname: hostname.clone(),
            host_process: pod_meta.is_none(),
            source: "gocoverdir".into(),
            target: first
                .path
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            pid: first.pid,
            meta_hash: first.hash.clone(),
            latest_counters: counters_name(&first.hash, first.pid, 1),
            snapshots: counters.len() as u64,
            process,
            owner_references: owners.unwrap_or_default(),
            ..Default::default()
        };
        let info = serde_json::json!({
            "binary_name": binary,
            "host": hostname,
            "source": "gocoverdir",
            "processes": counters.len(),
        });
        Some(Journal {
            location,
            metas,
            counters,
            info: serde_json::to_string_pretty(&info).unwrap_or_default(),
            metadata: serde_json::to_string_pretty(&md).unwrap_or_default(),
            attributed_by: who.via.as_str().into(),
        })
    }

    /// Stores every object of a batch. `None` when the sink failed (the
    /// journal stays for the next round), else the counter files stored.
    async fn store(&self, sink: &Sink, j: &Journal) -> Option<Vec<PathBuf>> {
        let limit = self.cfg.max_file_bytes;
        let loc = &j.location;
        let mut usable = HashSet::new();
        for (hash, path) in &j.metas {
            let data = match read_meta(path, hash, limit) {
                Ok(d) => d,
                Err(e) => {
                    // Gone or replaced: the counter files that need it stay.
                    tracing::warn!(error = %e, "meta-data of a batch unreadable; its counter files stay");
                    self.metrics.failure("exit-meta");
                    continue;
                }
            };
            if let Err(e) = sink
                .put(&loc.key(&meta_name(hash)), Bytes::from(data))
                .await
            {
                tracing::debug!(error = %e, "sink failed; batch kept for later");
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            usable.insert(hash.as_str());
        }
        let usable = &usable;
        let results: Vec<Result<Option<PathBuf>, ()>> = futures::stream::iter(j.counters.iter())
            .map(|c| async move {
                if !usable.contains(c.hash.as_str()) {
                    return Ok(None);
                }
                let data = match read_plain(&c.path, limit) {
                    Ok(d) => d,
                    // Removed by an earlier attempt after it was stored.
                    Err(FileError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        return Ok(None);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "counter file of a batch unreadable; left alone");
                        return Ok(None);
                    }
                };
                let started = std::time::Instant::now();
                match sink
                    .put(&loc.key(&counters_name(&c.hash, c.pid, 1)), Bytes::from(data))
                    .await
                {
                    Ok(()) => {
                        self.metrics.upload_latency(started.elapsed());
                        self.metrics.uploads.fetch_add(1, Ordering::Relaxed);
                        Ok(Some(c.path.clone()))
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "sink failed; batch kept for later");
                        self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                        Err(())
                    }
                }
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let mut stored = Vec::new();
        for r in results {
            match r {
                Ok(Some(p)) => stored.push(p),
                Ok(None) => {}
                Err(()) => return None,
            }
        }
        if stored.is_empty() {
            // Nothing of this batch could be read: no directory for it.
            return Some(stored);
        }
        for (name, body) in [("info.json", &j.info), ("metadata.json", &j.metadata)] {
            if let Err(e) = sink.put(&loc.key(name), Bytes::from(body.clone())).await {
                tracing::debug!(error = %e, "sink failed; batch kept for later");
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        self.metrics
            .exit_files
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        tracing::info!(
            dir = %loc.dir(),
            processes = stored.len(),
            attributed_by = %j.attributed_by,
            "exit-time coverage stored"
        );
        Some(stored)
    }
}

/// Removes a batch's stored counter files, then its journal.
fn finish(journal: &Path, stored: &[PathBuf]) {
    for p in stored {
        // unlink never follows a symbolic link.
        if let Err(e) = std::fs::remove_file(p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %p.display(), error = %e, "cannot remove a stored counter file");
        }
    }
    let _ = std::fs::remove_file(journal);
}

fn write_journal(path: &Path, j: &Journal) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(j).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names() {
        let h = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            counter_file_name(&format!("covcounters.{h}.42.1764520000123456789")),
            Some((h.to_ascii_lowercase(), 42))
        );
        assert_eq!(
            counter_file_name(&format!("tmp.covcounters.{h}.42.17")),
            None
        );
        assert_eq!(counter_file_name(&format!("covcounters.{h}.x.17")), None);
        assert_eq!(counter_file_name("covcounters.abc.1.2"), None);
    }

    #[test]
    fn places() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(place_of(&s(&[])), Place::Host);
        assert_eq!(place_of(&s(&["a", "b"])), Place::Host);
        assert_eq!(place_of(&s(&["_host_", "b", "c"])), Place::Host);
        assert_eq!(
            place_of(&s(&["ns", "pod", "c"])),
            Place::Pod {
                namespace: "ns".into(),
                pod: "pod".into(),
                container: "c".into()
            }
        );
    }

    /// The writer's cgroup, when seen, beats the path: a host writer in a
    /// pod's directory is `_host_`, a container's writer is its pod's
    /// wherever it writes; a container the pod index does not know waits
    /// for the grace period, then the path decides; an entry under another
    /// name (a reused inode) or no entry at all leaves it to the path.
    #[test]
    fn the_writers_cgroup_beats_the_path() {
        use crate::cgroup::{ContainerRef, Runtime};
        use crate::writers::Seen;
        use scrape::kube::{ContainerInfo, PodInfo};
        let id = "ab".repeat(32);
        let mut idx = PodIndex::default();
        idx.upsert(PodInfo {
            namespace: "shop".into(),
            name: "tool-1".into(),
            uid: "u-1".into(),
            containers: vec![ContainerInfo {
                name: "tool".into(),
                container_id: format!("cri-o://{id}"),
                ..Default::default()
            }],
            ..Default::default()
        });
        let d = tempfile::tempdir().unwrap();
        let cfg = WatchConfig {
            dirs: vec![d.path().to_path_buf()],
            state_dir: d.path().join("state"),
            hostname: "n".into(),
            hostname_from_node: false,
            max_file_bytes: 1 << 20,
            concurrency: 1,
            attribution: Attribution::Path,
            proc_root: "/proc".into(),
            unknown_container_grace: Duration::from_secs(30),
            crictl: None,
        };
        let mut x = ExitWatch::new(
            cfg,
            Arc::new(RwLock::new(idx)),
            Arc::new(Metrics::default()),
        )
        .unwrap();
        assert!(!x.sees_writers(), "path attribution starts no fanotify");
        let writers = Arc::new(Writers::new(16));
        x.writers = Some(writers.clone());
        let name = "covcounters.0123456789abcdef0123456789abcdef.7.1";
        let found = |rel: &[&str], ino: u64| Found {
            path: d.path().join(rel.join("/")).join(name),
            rel: rel.iter().map(|s| s.to_string()).collect(),
            hash: "0123456789abcdef0123456789abcdef".into(),
            pid: 7,
            binary: "tool".into(),
            key: (1, ino),
        };
        let seen = |writer: Writer, ago: Duration| Seen {
            writer,
            pid: 70,
            at: std::time::Instant::now() - ago,
        };
        let container = |id: &str| {
            Writer::Container(ContainerRef {
                runtime: Runtime::CriO,
                id: id.into(),
                pod_uid: None,
            })
        };
        let who = |f: &Found| x.who(f, &mut HashMap::new());
        let pod_path = ["other", "victim-0", "app"];
        // Nothing seen: the path.
        let w = who(&found(&pod_path, 1)).unwrap();
        assert_eq!(
            (w.via, &w.place),
            (Via::Path, &place_of(&found(&pod_path, 1).rel))
        );
        // A host writer in a pod's directory.
        writers.remember((1, 2), name.into(), seen(Writer::Host, Duration::ZERO));
        let w = who(&found(&pod_path, 2)).unwrap();
        assert_eq!((w.via, w.place), (Via::Cgroup, Place::Host));
        // A container's writer in another pod's directory, and at the top.
        writers.remember((1, 3), name.into(), seen(container(&id), Duration::ZERO));
        writers.remember((1, 4), name.into(), seen(container(&id), Duration::ZERO));
        for w in [who(&found(&pod_path, 3)), who(&found(&[], 4))] {
            let w = w.unwrap();
            assert_eq!(w.via, Via::Cgroup);
            assert_eq!(w.container_id.as_deref(), Some(id.as_str()));
            assert_eq!(
                w.place,
                Place::Pod {
                    namespace: "shop".into(),
                    pod: "tool-1".into(),
                    container: "tool".into()
                }
            );
        }
        // An unknown container: wait, then the path.
        let other = "cd".repeat(32);
        writers.remember((1, 5), name.into(), seen(container(&other), Duration::ZERO));
        assert!(who(&found(&pod_path, 5)).is_none());
        writers.remember(
            (1, 6),
            name.into(),
            seen(container(&other), Duration::from_secs(31)),
        );
        assert_eq!(who(&found(&pod_path, 6)).unwrap().via, Via::Path);
        // The same inode under another name: not this file's writer.
        writers.remember(
            (1, 7),
            "covcounters.0123456789abcdef0123456789abcdef.8.1".into(),
            seen(Writer::Host, Duration::ZERO),
        );
        assert_eq!(who(&found(&pod_path, 7)).unwrap().via, Via::Path);
    }

    #[test]
    fn symlinks_are_not_read() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("secret");
        std::fs::write(&target, b"x").unwrap();
        let link = d
            .path()
            .join("covcounters.0123456789abcdef0123456789abcdef.1.2");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read_plain(&link, 10).is_err());
        assert!(list_counter_files(d.path(), 10).is_empty());
        std::fs::write(d.path().join("big"), vec![0u8; 20]).unwrap();
        assert!(matches!(
            read_plain(&d.path().join("big"), 10),
            Err(FileError::TooLarge { .. })
        ));
    }
}
