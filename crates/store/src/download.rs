//! `covfleet download`: fetch a prefix in the seed layout into a collection
//! directory, `DIR/coverage/<entry>/`, one entry per location directory.
//!
//! - Listing runs per host in parallel; gets run `max_concurrency` at a time.
//! - Each entry gets `covmeta.<hash>`, the newest `covcounters.<hash>.<pid>.<n>`
//!   of each process (by object time: the two slots of one process hold
//!   successive cumulative snapshots, so only the newest is kept and the
//!   pair can never be added up), `info.json`, and a `metadata.json` built
//!   from the key's components (the seed collector's keys: `pod_name`,
//!   `namespace`, `container{name,image}`, `hostname`, `binary_name`,
//!   `host_process`, `collected_at`, plus `discovery_time` and `s3_key`);
//!   when the prefix holds a `metadata.json` (covfleet's agent writes one
//!   with the process identity), it is kept and only missing keys are added.
//! - Files keep their object's modification time.
//! - Files are written to a temporary name and renamed (not synced: a
//!   completed entry is re-checked against the sizes and times on disk);
//!   `metadata.json` and
//!   the completion marker (`.download.json`, the listing it completed)
//!   come last. An interrupted run (even SIGKILL) leaves whole files only,
//!   and the next run fetches what is missing or changed.
//! - Keys outside the layout, unknown file names and objects larger than
//!   [`DownloadOptions::max_object_bytes`] are skipped and counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use futures::StreamExt;
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::layout::{FileKind, Location, discovery_time_rfc3339};
use crate::sink::{Listed, Sink};

/// The per-entry completion marker.
pub const MARKER: &str = ".download.json";

/// Filters on the key's components (globs; `None` = everything).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub host: Option<GlobMatcher>,
    /// Matches `_host_` for host processes.
    pub namespace: Option<GlobMatcher>,
    /// Host processes have no pod: a pod filter excludes them.
    pub pod: Option<GlobMatcher>,
}

impl Filters {
    /// Compiles glob patterns.
    pub fn new(
        host: Option<&str>,
        namespace: Option<&str>,
        pod: Option<&str>,
    ) -> Result<Filters, globset::Error> {
        let m = |g: Option<&str>| -> Result<Option<GlobMatcher>, globset::Error> {
            g.map(|g| Glob::new(g).map(|g| g.compile_matcher()))
                .transpose()
        };
        Ok(Filters {
            host: m(host)?,
            namespace: m(namespace)?,
            pod: m(pod)?,
        })
    }

    fn accepts(&self, l: &Location) -> bool {
        let ok = |m: &Option<GlobMatcher>, v: &str| m.as_ref().is_none_or(|m| m.is_match(v));
        ok(&self.host, l.hostname())
            && ok(&self.namespace, l.namespace())
            && (self.pod.is_none() || (!l.pod().is_empty() && ok(&self.pod, l.pod())))
    }
}

/// Progress, reported after each entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub entries_done: u64,
    pub entries_total: u64,
    pub objects: u64,
    pub bytes: u64,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to download.
#[derive(Clone)]
pub struct DownloadOptions {
    /// Concurrent requests (at least 1).
    pub max_concurrency: usize,
    /// Skip entries that already hold a completion marker, without
    /// comparing them to the listing.
    pub skip_existing: bool,
    pub filters: Filters,
    /// Larger objects are skipped (a bucket is untrusted input).
    pub max_object_bytes: u64,
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("max_concurrency", &self.max_concurrency)
            .field("skip_existing", &self.skip_existing)
            .field("filters", &self.filters)
            .field("max_object_bytes", &self.max_object_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            max_concurrency: 10,
            skip_existing: false,
            filters: Filters::default(),
            max_object_bytes: 512 << 20,
            progress: None,
        }
    }
}

/// What a download did.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries in the listing after filters.
    pub entries: u64,
    /// Entries already complete and unchanged (or skipped by `skip_existing`).
    pub entries_unchanged: u64,
    /// Objects fetched.
    pub objects: u64,
    /// Bytes fetched.
    pub bytes: u64,
    /// Older counter slots not kept (a newer snapshot of the same process exists).
    pub superseded: u64,
    /// Keys outside the layout or with unknown file names.
    pub ignored_keys: u64,
    /// Objects over the size bound.
    pub too_large: u64,
    /// Entries that failed, with the error.
    pub failed: Vec<(String, Error)>,
}

/// One object as the marker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ObjState {
    size: u64,
    mtime_ns: u128,
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[derive(Debug)]
struct Entry {
    location: Location,
    /// File name → listed object.
    files: BTreeMap<String, Listed>,
}

/// Groups a listing into entries, keeping the newest counters per process.
fn plan(
    listing: Vec<Listed>,
    opts: &DownloadOptions,
    report: &mut Report,
) -> BTreeMap<String, Entry> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for obj in listing {
        let Some((loc, file)) = Location::parse(&obj.key) else {
            report.ignored_keys += 1;
            continue;
        };
        let kind = FileKind::of(file);
        if kind == FileKind::Other {
            report.ignored_keys += 1;
            continue;
        }
        if !opts.filters.accepts(&loc) {
            continue;
        }
        if obj.size > opts.max_object_bytes {
            tracing::warn!(key = %obj.key, size = obj.size, "object over the size bound, skipped");
            report.too_large += 1;
            continue;
        }
        let file = file.to_string();
        let e = entries.entry(loc.entry_name()).or_insert_with(|| Entry {
            location: loc,
            files: BTreeMap::new(),
        });
        e.files.insert(file, obj);
    }
    for e in entries.values_mut() {
        let mut newest: BTreeMap<(String, u32), (SystemTime, u32)> = BTreeMap::new();
        for (name, obj) in &e.files {
            if let FileKind::Counters { hash, pid, slot } = FileKind::of(name) {
                let k = (hash, pid);
                let cand = (obj.last_modified, slot);
                match newest.get(&k) {
                    Some(best) if *best >= cand => {}
                    _ => {
                        newest.insert(k, cand);
                    }
                }
            }
        }
        let before = e.files.len();
        e.files.retain(|name, _| match FileKind::of(name) {
            FileKind::Counters { hash, pid, slot } => {
                newest.get(&(hash, pid)).is_some_and(|(_, s)| *s == slot)
            }
            _ => true,
        });
        report.superseded += (before - e.files.len()) as u64;
    }
    entries
}

/// Lists everything under the sink's prefix, one listing per host in
/// parallel.
pub async fn list_all(sink: &Sink, concurrency: usize) -> Result<Vec<Listed>, Error> {
    let hosts = sink.list_dirs("").await?;
    let lists = futures::stream::iter(hosts)
        .map(|h| async move { sink.list(&h).await })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::new();
    for l in lists {
        out.extend(l?);
    }
    Ok(out)
}

/// Downloads the sink's prefix into `collection/coverage/`. Listing
/// errors (wrong credentials, no such bucket) are an `Err`; per-entry
/// failures are in [`Report::failed`].
pub async fn download(
    sink: &Sink,
    collection: &Path,
    opts: &DownloadOptions,
) -> Result<Report, Error> {
    let root = collection.join("coverage");
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let mut report = Report::default();
    let listing = list_all(sink, opts.max_concurrency).await?;
    let entries = plan(listing, opts, &mut report);
    report.entries = entries.len() as u64;
    let total = report.entries;
    let done = AtomicU64::new(0);
    let shared = Shared {
        // At most `max_concurrency` requests in flight, across entries.
        requests: tokio::sync::Semaphore::new(opts.max_concurrency.max(1)),
        objects: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let results: Vec<(String, Result<bool, Error>)> = futures::stream::iter(entries)
        .map(|(name, entry)| {
            let root = &root;
            let (done, shared) = (&done, &shared);
            async move {
                let r = fetch_entry(sink, root, &name, &entry, opts, shared).await;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(p) = &opts.progress {
                    p(Progress {
                        entries_done: d,
                        entries_total: total,
                        objects: shared.objects.load(Ordering::Relaxed),
                        bytes: shared.bytes.load(Ordering::Relaxed),
                    });
                }
                (name, r)
            }
        })
        .buffer_unordered(opts.max_concurrency.max(1))
        .collect()
        .await;
    for (name, r) in results {
        match r {
            Ok(false) => report.entries_unchanged += 1,
            Ok(true) => {}
            Err(e) => report.failed.push((name, e)),
        }
    }
    report.failed.sort_by(|a, b| a.0.cmp(&b.0));
    report.objects = shared.objects.into_inner();
    report.bytes = shared.bytes.into_inner();
    Ok(report)
}

fn marker_of(entry: &Entry) -> BTreeMap<String, ObjState> {
    entry
        .files
        .iter()
        .map(|(n, o)| {
            (
                n.clone(),
                ObjState {
                    size: o.size,
                    mtime_ns: nanos(o.last_modified),
                },
            )
        })
        .collect()
}

fn local_state(path: &Path) -> Option<ObjState> {
    let md = std::fs::metadata(path).ok()?;
    Some(ObjState {
        size: md.len(),
        mtime_ns: nanos(md.modified().ok()?),
    })
}

/// Writes `data` to `dir/name` whole, with modification time `mtime`.
fn write_file(dir: &Path, name: &str, data: &[u8], mtime: SystemTime) -> Result<(), Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".part.{name}"));
    let r = (|| {
        let f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &f, data)?;
        f.set_modified(mtime)?;
        drop(f);
        std::fs::rename(&tmp, &path)
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(&path, e)
    })
}

/// [`write_file`] on the blocking pool, so a runtime with one thread keeps
/// its requests in flight while a file is synced.
async fn write_file_off_thread(
    dir: &Path,
    name: &str,
    data: bytes::Bytes,
    mtime: SystemTime,
) -> Result<(), Error> {
    let (d, n) = (dir.to_path_buf(), name.to_string());
    match tokio::task::spawn_blocking(move || write_file(&d, &n, &data, mtime)).await {
        Ok(r) => r,
        Err(e) => Err(Error::io(
            dir.join(name),
            std::io::Error::other(e.to_string()),
        )),
    }
}

/// What the entries of one download share: the request bound and counters.
struct Shared {
    requests: tokio::sync::Semaphore,
    objects: AtomicU64,
    bytes: AtomicU64,
}

/// Returns whether anything was fetched or rewritten.
async fn fetch_entry(
    sink: &Sink,
    root: &Path,
    name: &str,
    entry: &Entry,
    opts: &DownloadOptions,
    shared: &Shared,
) -> Result<bool, Error> {
    let Shared {
        requests,
        objects,
        bytes,
    } = shared;
    let dir: PathBuf = root.join(name);
    let marker_path = dir.join(MARKER);
    let wanted = marker_of(entry);
    if let Ok(old) = std::fs::read(&marker_path) {
        if opts.skip_existing {
            return Ok(false);
        }
        // The marker matches the listing and every file on disk still has
        // its object's size and time (a file damaged since is fetched again).
        let intact = || {
            wanted.iter().all(|(n, st)| {
                n == "metadata.json" || local_state(&dir.join(n)).as_ref() == Some(st)
            })
        };
        if serde_json::from_slice::<BTreeMap<String, ObjState>>(&old).is_ok_and(|m| m == wanted)
            && intact()
        {
            return Ok(false);
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    // Leftovers of an interrupted run, and counter slots no longer newest.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let stale_counters = matches!(FileKind::of(&n), FileKind::Counters { .. })
                && !entry.files.contains_key(&n);
            if n.starts_with(".part.") || stale_counters {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let newest = entry
        .files
        .values()
        .map(|o| o.last_modified)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let stored_md = entry.files.get("metadata.json");
    let fetches = entry
        .files
        .iter()
        .filter(|(file, _)| file.as_str() != "metadata.json")
        .filter(|(file, _)| local_state(&dir.join(file.as_str())).as_ref() != wanted.get(*file))
        .map(|(file, obj)| {
            let dir = &dir;
            async move {
                let data = {
                    let _permit = requests.acquire().await;
                    sink.get(&obj.key).await?
                }
                .ok_or_else(|| Error::io(dir.join(file), std::io::ErrorKind::NotFound.into()))?;
                write_file_off_thread(dir, file, data.clone(), obj.last_modified).await?;
                objects.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok::<(), Error>(())
            }
        });
    for r in futures::future::join_all(fetches).await {
        r?;
    }
    let mut md = metadata(&entry.location, newest, entry);
    if let Some(obj) = stored_md {
        // covfleet's agent uploads its own metadata.json (process identity,
        // owner references): keep it as is, filling in what it lacks.
        let data = {
            let _permit = requests.acquire().await;
            sink.get(&obj.key).await?.unwrap_or_default()
        };
        objects.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        match serde_json::from_slice::<serde_json::Value>(&data) {
            Ok(serde_json::Value::Object(mut theirs)) => {
                if let serde_json::Value::Object(ours) = md {
                    for (k, v) in ours {
                        theirs.entry(k).or_insert(v);
                    }
                }
                md = serde_json::Value::Object(theirs);
            }
            _ => {
                tracing::warn!(key = %obj.key, "metadata.json is not a JSON object, rebuilt from the key")
            }
        }
    }
    let json = serde_json::to_vec_pretty(&md).map_err(|e| Error::io(&dir, e.into()))?;
    write_file(&dir, "metadata.json", &json, newest)?;
    let marker = serde_json::to_vec(&wanted).map_err(|e| Error::io(&dir, e.into()))?;
    write_file(&dir, MARKER, &marker, SystemTime::now())?;
    Ok(true)
}

/// `metadata.json` from the key's components.
fn metadata(l: &Location, newest: SystemTime, entry: &Entry) -> serde_json::Value {
    let collected_at = if newest > SystemTime::UNIX_EPOCH {
        humantime::format_rfc3339_seconds(newest).to_string()
    } else {
        discovery_time_rfc3339(l.discovery_time()).unwrap_or_default()
    };
    let latest = entry
        .files
        .iter()
        .filter(|(n, _)| matches!(FileKind::of(n), FileKind::Counters { .. }))
        .max_by_key(|(_, o)| o.last_modified)
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let (container, image) = match l {
        Location::Pod {
            container, image, ..
        } => (container.as_str(), image.as_str()),
        Location::Host { .. } => ("", ""),
    };
    serde_json::json!({
        "pod_name": l.pod(),
        "namespace": l.namespace(),
        "container": {"name": container, "image": image},
        "collected_at": collected_at,
        "binary_name": l.binary(),
        "hostname": l.hostname(),
        "host_process": matches!(l, Location::Host { .. }),
        "source": "s3",
        "discovery_time": l.discovery_time(),
        "discovery_time_rfc3339": discovery_time_rfc3339(l.discovery_time()),
        "s3_key": entry
            .files
            .values()
            .next()
            .and_then(|o| o.key.rsplit_once('/'))
            .map(|(d, _)| format!("{d}/"))
            .unwrap_or_else(|| l.dir()),
        "latest_counters": latest,
    })
}
