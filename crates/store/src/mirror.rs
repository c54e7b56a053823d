//! Mirrors a collection directory (`DIR/coverage/<entry>/`, as
//! `covfleet collect` writes it) into a sink in the seed layout, through an
//! [`Uploader`] — so `collect -o s3://…` feeds the same bucket as the agent,
//! with the same slots and the same spool.
//!
//! Each entry's `metadata.json` says where it belongs: `source: "kube"`
//! entries go to `{hostname}/{namespace}/{pod}/{container}/{time}/{image}/{binary}/`,
//! everything else (host processes, plain URLs) to
//! `{hostname}/_host_/{time}/{binary}/`. The discovery time is when the
//! entry's `covmeta` was written (first snapshot). An entry is uploaded again when its snapshot
//! count (`metadata.json` `snapshots`) changed.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::Value;

use crate::error::Error;
use crate::layout::{Location, discovery_time};
use crate::upload::{Outcome, Snapshot, Uploader};

/// What one [`Mirror::sync`] pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Snapshots stored.
    pub stored: u64,
    /// Snapshots spooled (the sink failed), with the last reason.
    pub spooled: u64,
    pub last_error: Option<String>,
    /// Snapshots dropped by the spool bound.
    pub dropped: u64,
    /// Entries without usable metadata, skipped.
    pub skipped: u64,
}

#[derive(Debug)]
struct Seen {
    location: Location,
    snapshots: u64,
}

/// Uploads new snapshots of a collection directory.
#[derive(Debug)]
pub struct Mirror {
    uploader: Uploader,
    seen: HashMap<String, Seen>,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn location_of(md: &Value, time: &str) -> Location {
    let binary = s(md, "binary_name").to_string();
    let hostname = match s(md, "hostname") {
        "" => "unknown".to_string(),
        h => h.to_string(),
    };
    if s(md, "source") == "kube" && !s(md, "pod_name").is_empty() {
        let c = md.get("container").cloned().unwrap_or(Value::Null);
        Location::Pod {
            hostname,
            namespace: s(md, "namespace").to_string(),
            pod: s(md, "pod_name").to_string(),
            container: s(&c, "name").to_string(),
            discovery_time: time.to_string(),
            image: s(&c, "image").to_string(),
            binary,
        }
    } else {
        Location::Host {
            hostname,
            discovery_time: time.to_string(),
            binary,
        }
    }
}

impl Mirror {
    pub fn new(uploader: Uploader) -> Mirror {
        Mirror {
            uploader,
            seen: HashMap::new(),
        }
    }

    pub fn uploader(&self) -> &Uploader {
        &self.uploader
    }

    /// Uploads every entry of `coverage_root` with a snapshot not uploaded
    /// yet, then drains the spool.
    pub async fn sync(&mut self, coverage_root: &Path) -> Result<SyncReport, Error> {
        let mut report = SyncReport::default();
        let mut names: Vec<String> = match std::fs::read_dir(coverage_root) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(coverage_root, e)),
        };
        names.sort();
        for name in names {
            let dir = coverage_root.join(&name);
            let Ok(md_bytes) = std::fs::read(dir.join("metadata.json")) else {
                report.skipped += 1;
                continue;
            };
            let Ok(md) = serde_json::from_slice::<Value>(&md_bytes) else {
                report.skipped += 1;
                continue;
            };
            let snapshots = md.get("snapshots").and_then(Value::as_u64).unwrap_or(0);
            if self
                .seen
                .get(&name)
                .is_some_and(|s| s.snapshots == snapshots)
            {
                continue;
            }
            let hash = s(&md, "meta_hash").to_string();
            let latest = s(&md, "latest_counters").to_string();
            let pid = md.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32;
            let counters = match std::fs::read(dir.join(&latest)) {
                Ok(c) if !latest.is_empty() && !latest.contains('/') => c,
                _ => {
                    report.skipped += 1;
                    continue;
                }
            };
            // The discovery time: when covmeta was first written (it is
            // never rewritten), so a later run puts the process in the same
            // place.
            let location = match self.seen.get(&name) {
                Some(s) => s.location.clone(),
                None => {
                    let first = std::fs::metadata(dir.join(format!("covmeta.{hash}")))
                        .and_then(|m| m.modified())
                        .unwrap_or_else(|_| SystemTime::now());
                    location_of(&md, &discovery_time(first))
                }
            };
            let read = |f: &str| std::fs::read(dir.join(f)).ok().map(Bytes::from);
            let snap = Snapshot {
                location: location.clone(),
                pid,
                meta: read(&format!("covmeta.{hash}")),
                hash,
                counters: Bytes::from(counters),
                info: read("info.json"),
                metadata: Some(Bytes::from(md_bytes)),
            };
            match self.uploader.store(snap).await? {
                Outcome::Stored { .. } => report.stored += 1,
                Outcome::Spooled { reason } => {
                    report.spooled += 1;
                    report.last_error = Some(reason);
                }
                Outcome::Dropped { reason } => {
                    report.dropped += 1;
                    report.last_error = Some(reason);
                }
            }
            self.seen.insert(
                name,
                Seen {
                    location,
                    snapshots,
                },
            );
        }
        self.uploader.drain().await?;
        Ok(report)
    }
}
