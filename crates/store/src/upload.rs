//! Storing snapshots in the seed layout, with a spool that loses nothing.
//!
//! An [`Uploader`] keeps, per process (location, meta hash, PID), what is
//! already stored: `covmeta.<hash>` and `info.json` are written once, each
//! counter snapshot goes to the slot (`.1` / `.2`) that does not hold the
//! last stored one — so an interrupted upload never spoils the previous
//! snapshot, and a process never has more than two counter objects.
//!
//! When the sink fails, the snapshot goes to the [`Spool`] (the latest one
//! per process; counters only grow, so the latest is all that matters).
//! The spool is drained oldest first when the sink works again (on the next
//! successful [`Uploader::store`], or by [`Uploader::drain`]), and survives
//! a restart: [`Uploader::new`] picks up what the spool directory holds.
//!
//! ```no_run
//! # async fn demo() -> Result<(), store::Error> {
//! use bytes::Bytes;
//! use store::{Location, Sink, SinkOptions};
//! use store::upload::{Snapshot, Spool, Uploader};
//!
//! let sink = Sink::open("s3://coverage/openshift-ci/coverage/c1", &SinkOptions::default())?;
//! let spool = Spool::open("/var/lib/covfleet/spool".as_ref(), 256 << 20)?;
//! let uploader = Uploader::new(sink, spool);
//! let location = Location::Host {
//!     hostname: "node-1".into(),
//!     discovery_time: store::layout::discovery_time(std::time::SystemTime::now()),
//!     binary: "kubelet".into(),
//! };
//! let outcome = uploader
//!     .store(Snapshot {
//!         location,
//!         pid: 4242,
//!         hash: "0123456789abcdef0123456789abcdef".into(),
//!         meta: Some(Bytes::from_static(b"covmeta bytes")),
//!         counters: Bytes::from_static(b"covcounters bytes"),
//!         info: Some(Bytes::from_static(b"{\"binary_name\":\"kubelet\"}")),
//!         metadata: None,
//!     })
//!     .await?;
//! println!("{outcome:?}, spool: {:?}", uploader.stats());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use covdata::names::fnv64;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::layout::{Location, counters_name, meta_name};
use crate::sink::Sink;

/// One snapshot of one process.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub location: Location,
    pub pid: u32,
    /// The meta-data hash, 32 lowercase hex digits.
    pub hash: String,
    /// `covmeta.<hash>`: needed until it is stored once for this process
    /// (pass it with the first snapshot; later ones may omit it).
    pub meta: Option<Bytes>,
    /// The counter file.
    pub counters: Bytes,
    /// `info.json`, written once when given.
    pub info: Option<Bytes>,
    /// `metadata.json` (the collection-dir schema: process identity, owner
    /// references…), rewritten after the counters of each snapshot that
    /// carries it. Optional: `download` builds one from the key otherwise.
    pub metadata: Option<Bytes>,
}

/// What [`Uploader::store`] did with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; the counters went to this slot (1 or 2).
    Stored { slot: u32 },
    /// The sink failed; the snapshot is in the spool (the message says why).
    Spooled { reason: String },
    /// The sink failed and the snapshot alone exceeds the spool's bound.
    Dropped { reason: String },
}

/// Counters for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Snapshots stored (directly or from the spool).
    pub stored: u64,
    /// Snapshots put into the spool.
    pub spooled: u64,
    /// Snapshots dropped from (or refused by) the spool to keep its bound.
    pub dropped: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// Processes waiting in the spool.
    pub spool_entries: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
}

/// What is stored for one process, and what still has to be.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProcState {
    meta_stored: bool,
    info_stored: bool,
    /// The slot holding the last stored counters.
    last_slot: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    location: Location,
    pid: u32,
    hash: String,
    state: ProcState,
    /// Order of spooling (older first when draining or dropping).
    seq: u64,
    has_meta: bool,
    has_info: bool,
    #[serde(default)]
    has_metadata: bool,
}

fn process_id(location: &Location, hash: &str, pid: u32) -> String {
    let key = location.key(&counters_name(hash, pid, 0));
    format!("{:016x}", fnv64(key.as_bytes()))
}

/// The latest snapshot of each process whose upload failed, on local disk,
/// bounded in bytes. One directory per process: `record.json`, `counters`,
/// and `meta` / `info` while those are not stored yet. Files are replaced
/// atomically (temporary file and rename).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limit: u64,
    seq: AtomicU64,
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(path, e))
}

impl Spool {
    /// Opens (creating) a spool directory holding at most `limit_bytes`.
    pub fn open(dir: &Path, limit_bytes: u64) -> Result<Spool, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let s = Spool {
            dir: dir.to_path_buf(),
            limit: limit_bytes,
            seq: AtomicU64::new(0),
        };
        let max = s.records().iter().map(|(_, r)| r.seq).max().unwrap_or(0);
        s.seq.store(max + 1, Ordering::Relaxed);
        Ok(s)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records, oldest first. Unreadable ones are removed.
    fn records(&self) -> Vec<(PathBuf, Record)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in rd.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            match std::fs::read(p.join("record.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            {
                Some(r) if p.join("counters").is_file() => out.push((p, r)),
                _ => {
                    tracing::warn!(dir = %p.display(), "incomplete spool entry removed");
                    let _ = std::fs::remove_dir_all(&p);
                }
            }
        }
        out.sort_by_key(|(_, r)| r.seq);
        out
    }

    fn dir_size(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.records().iter().map(|(p, _)| Spool::dir_size(p)).sum()
    }

    /// Processes held.
    pub fn len(&self) -> usize {
        self.records().len()
    }

    pub fn is_empty(&self) -> bool {
        std::fs::read_dir(&self.dir).map_or(true, |mut rd| {
            !rd.any(|e| e.is_ok_and(|e| e.path().is_dir()))
        })
    }

    fn remove(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.dir.join(id));
    }

    /// Puts `snap` in place of the process's previous one. Returns the
    /// number of snapshots and bytes dropped to stay within the bound, or
    /// `Err(size)` when `snap` alone is too large.
    fn put(
        &self,
        snap: &Snapshot,
        state: &ProcState,
        meta: Option<&Bytes>,
        info: Option<&Bytes>,
    ) -> Result<(u64, u64), Error> {
        let id = process_id(&snap.location, &snap.hash, snap.pid);
        let need = snap.counters.len() as u64
            + meta.map_or(0, |m| m.len() as u64)
            + info.map_or(0, |m| m.len() as u64)
            + snap.metadata.as_ref().map_or(0, |m| m.len() as u64)
            + 512;
        let (mut dropped, mut dropped_bytes) = (0, 0);
        if need > self.limit {
            return Ok((u64::MAX, need));
        }
        let mut total: u64 = 0;
        let recs = self.records();
        for (p, _) in &recs {
            if p.file_name().is_some_and(|n| n != id.as_str()) {
                total += Spool::dir_size(p);
            }
        }
        for (p, r) in &recs {
            if total + need <= self.limit {
                break;
            }
            if p.file_name().is_some_and(|n| n == id.as_str()) {
                continue;
            }
            let size = Spool::dir_size(p);
            tracing::warn!(
                location = %r.location.dir(), pid = r.pid, bytes = size,
                "spool full: dropping the oldest process's snapshot"
            );
            let _ = std::fs::remove_dir_all(p);
            total -= size;
            dropped += 1;
            dropped_bytes += size;
        }
        let dir = self.dir.join(&id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        if let Some(m) = meta {
            write_atomic(&dir.join("meta"), m)?;
        }
        if let Some(i) = info {
            write_atomic(&dir.join("info"), i)?;
        }
        if let Some(m) = &snap.metadata {
            write_atomic(&dir.join("metadata"), m)?;
        }
        write_atomic(&dir.join("counters"), &snap.counters)?;
        let rec = Record {
            location: snap.location.clone(),
            pid: snap.pid,
            hash: snap.hash.clone(),
            state: state.clone(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            has_meta: meta.is_some(),
            has_info: info.is_some(),
            has_metadata: snap.metadata.is_some(),
        };
        let json = serde_json::to_vec(&rec).map_err(|e| Error::io(&dir, e.into()))?;
        write_atomic(&dir.join("record.json"), &json)?;
        Ok((dropped, dropped_bytes))
    }

    fn load(&self, dir: &Path, rec: &Record) -> Option<Snapshot> {
        let counters = std::fs::read(dir.join("counters")).ok()?;
        let read = |name: &str, has: bool| {
            has.then(|| std::fs::read(dir.join(name)).ok().map(Bytes::from))
                .flatten()
        };
        Some(Snapshot {
            location: rec.location.clone(),
            pid: rec.pid,
            hash: rec.hash.clone(),
            meta: read("meta", rec.has_meta),
            counters: Bytes::from(counters),
            info: read("info", rec.has_info),
            metadata: read("metadata", rec.has_metadata),
        })
    }
}

/// Per-process upload state plus what must be kept until stored.
#[derive(Debug, Default)]
struct Proc {
    state: ProcState,
    pending_meta: Option<Bytes>,
    pending_info: Option<Bytes>,
}

/// Stores snapshots through a [`Sink`], spooling what fails.
#[derive(Debug)]
pub struct Uploader {
    sink: Sink,
    spool: Spool,
    procs: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Proc>>>>,
    drain_lock: tokio::sync::Mutex<()>,
    stored: AtomicU64,
    spooled: AtomicU64,
    dropped: AtomicU64,
    dropped_bytes: AtomicU64,
}

impl Uploader {
    /// An uploader; what `spool` holds from an earlier run is drained by
    /// the next [`Uploader::store`] or [`Uploader::drain`].
    pub fn new(sink: Sink, spool: Spool) -> Uploader {
        let u = Uploader {
            sink,
            spool,
            procs: Mutex::new(HashMap::new()),
            drain_lock: tokio::sync::Mutex::new(()),
            stored: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
        };
        for (dir, rec) in u.spool.records() {
            let id = process_id(&rec.location, &rec.hash, rec.pid);
            let snap = u.spool.load(&dir, &rec);
            let p = Proc {
                state: rec.state.clone(),
                pending_meta: snap.as_ref().and_then(|s| s.meta.clone()),
                pending_info: snap.and_then(|s| s.info),
            };
            u.lock_procs()
                .insert(id, Arc::new(tokio::sync::Mutex::new(p)));
        }
        u
    }

    fn lock_procs(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Proc>>>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sink.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// Counters so far (spool figures read from disk).
    pub fn stats(&self) -> Stats {
        Stats {
            stored: self.stored.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            dropped_bytes: self.dropped_bytes.load(Ordering::Relaxed),
            spool_entries: self.spool.len() as u64,
            spool_bytes: self.spool.bytes(),
        }
    }

    /// Forgets a process that is gone (its stored objects stay).
    pub fn forget(&self, location: &Location, hash: &str, pid: u32) {
        self.lock_procs().remove(&process_id(location, hash, pid));
    }

    /// Stores one snapshot, or spools it when the sink fails. Errors are
    /// local (spool I/O) or a refused key; sink failures are an
    /// [`Outcome`], not an error.
    pub async fn store(&self, snap: Snapshot) -> Result<Outcome, Error> {
        let outcome = self.store_one(snap).await?;
        if matches!(outcome, Outcome::Stored { .. }) && !self.spool.is_empty() {
            self.drain().await?;
        }
        Ok(outcome)
    }

    async fn store_one(&self, snap: Snapshot) -> Result<Outcome, Error> {
        let id = process_id(&snap.location, &snap.hash, snap.pid);
        let proc = self.lock_procs().entry(id.clone()).or_default().clone();
        let mut p = proc.lock().await;
        if !p.state.meta_stored && snap.meta.is_some() {
            p.pending_meta = snap.meta.clone();
        }
        if !p.state.info_stored && snap.info.is_some() {
            p.pending_info = snap.info.clone();
        }
        match self.upload(&snap, &mut p).await {
            Ok(slot) => {
                self.spool.remove(&id);
                self.stored.fetch_add(1, Ordering::Relaxed);
                Ok(Outcome::Stored { slot })
            }
            Err(e) if matches!(e, Error::BadKey { .. }) => Err(e),
            Err(e) => {
                let reason = e.to_string();
                let (d, db) = self.spool.put(
                    &snap,
                    &p.state,
                    p.pending_meta.as_ref(),
                    p.pending_info.as_ref(),
                )?;
                if d == u64::MAX {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.dropped_bytes.fetch_add(db, Ordering::Relaxed);
                    return Ok(Outcome::Dropped { reason });
                }
                self.dropped.fetch_add(d, Ordering::Relaxed);
                self.dropped_bytes.fetch_add(db, Ordering::Relaxed);
                self.spooled.fetch_add(1, Ordering::Relaxed);
                Ok(Outcome::Spooled { reason })
            }
        }
    }

    /// Uploads what is missing for this process, then the counters.
    async fn upload(&self, snap: &Snapshot, p: &mut Proc) -> Result<u32, Error> {
        let loc = &snap.location;
        if !p.state.meta_stored
            && let Some(m) = &p.pending_meta
        {
            self.sink
                .put(&loc.key(&meta_name(&snap.hash)), m.clone())
                .await?;
            p.state.meta_stored = true;
            p.pending_meta = None;
        }
        let slot = if p.state.last_slot == Some(1) { 2 } else { 1 };
        self.sink
            .put(
                &loc.key(&counters_name(&snap.hash, snap.pid, slot)),
                snap.counters.clone(),
            )
            .await?;
        p.state.last_slot = Some(slot);
        if !p.state.info_stored
            && let Some(i) = &p.pending_info
        {
            self.sink.put(&loc.key("info.json"), i.clone()).await?;
            p.state.info_stored = true;
            p.pending_info = None;
        }
        if let Some(m) = &snap.metadata {
            self.sink.put(&loc.key("metadata.json"), m.clone()).await?;
        }
        Ok(slot)
    }

    /// Uploads spooled snapshots, oldest first, until the spool is empty or
    /// the sink fails. Returns how many were stored.
    pub async fn drain(&self) -> Result<u64, Error> {
        let Ok(_guard) = self.drain_lock.try_lock() else {
            return Ok(0);
        };
        let mut n = 0;
        for (dir, rec) in self.spool.records() {
            let Some(snap) = self.spool.load(&dir, &rec) else {
                continue;
            };
            let id = process_id(&rec.location, &rec.hash, rec.pid);
            let proc = self.lock_procs().entry(id.clone()).or_default().clone();
            let mut p = proc.lock().await;
            // A newer snapshot may have been stored meanwhile.
            if !dir.join("record.json").is_file() {
                continue;
            }
            if p.pending_meta.is_none() && !p.state.meta_stored {
                p.pending_meta = snap.meta.clone();
            }
            if p.pending_info.is_none() && !p.state.info_stored {
                p.pending_info = snap.info.clone();
            }
            match self.upload(&snap, &mut p).await {
                Ok(_) => {
                    self.spool.remove(&id);
                    self.stored.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "spool drain stopped");
                    break;
                }
            }
        }
        Ok(n)
    }
}
