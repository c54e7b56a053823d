//! Where the agent's snapshots go, in the seed layout:
//!
//! ```text
//! {prefix}/{hostname}/{namespace}/{pod}/{container}/{discovery-time}/{image}/{binary}/
//! {prefix}/{hostname}/_host_/{discovery-time}/{binary}/
//! ```
//!
//! each holding `covmeta.<hash>` (once), `covcounters.<hash>.<pid>.1|.2`
//! (alternating, so an interrupted upload never loses the previous
//! snapshot), `info.json` (once) and `metadata.json` (the collection
//! directory's metadata, rewritten with each snapshot: pod UID, restart
//! count and process start time, so `compile` tells restarts from
//! snapshots).
//!
//! [`Sink`] is the small interface the engine needs; [`FileSink`] writes a
//! local directory.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures::future::BoxFuture;
use scrape::output::sanitize;

/// A pod's container, as placed in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlace {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub image: String,
}

/// One process's directory in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub hostname: String,
    /// `None` for processes outside any pod (`_host_`).
    pub pod: Option<PodPlace>,
    /// When the agent found the process (the layout's `{discovery-time}`).
    pub discovered: SystemTime,
    pub binary: String,
}

/// `20261130T134615.123Z`: sortable, one path component.
pub fn discovery_time(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_millis(t).to_string();
    s.replace(['-', ':'], "")
}

impl Location {
    /// The directory relative to the sink's prefix (every part sanitized).
    pub fn rel_dir(&self) -> String {
        let mut parts = vec![sanitize(&self.hostname)];
        match &self.pod {
            Some(p) => {
                parts.push(sanitize(&p.namespace));
                parts.push(sanitize(&p.pod));
                parts.push(sanitize(&p.container));
                parts.push(discovery_time(self.discovered));
                parts.push(sanitize(if p.image.is_empty() {
                    "unknown"
                } else {
                    &p.image
                }));
            }
            None => {
                parts.push("_host_".into());
                parts.push(discovery_time(self.discovered));
            }
        }
        parts.push(sanitize(&self.binary));
        parts.join("/")
    }
}

/// A sink failure, naming where.
#[derive(Debug, thiserror::Error)]
#[error("{target}: {message}")]
pub struct SinkError {
    /// The object or file that could not be written.
    pub target: String,
    pub message: String,
}

/// Stores files of the layout.
pub trait Sink: Send + Sync + fmt::Debug {
    /// Where it writes (for logs).
    fn describe(&self) -> String;
    /// Stores `data` as `name` in the directory of `loc`, replacing any
    /// previous content atomically (a reader sees the old or the new file).
    fn put<'a>(
        &'a self,
        loc: &'a Location,
        name: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// A local directory (`file://DIR`).
#[derive(Debug, Clone)]
pub struct FileSink {
    root: PathBuf,
}

impl FileSink {
    pub fn new(root: impl Into<PathBuf>) -> FileSink {
        FileSink { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".tmp.{name}.{}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

impl Sink for FileSink {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn put<'a>(
        &'a self,
        loc: &'a Location,
        name: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let dir = self.root.join(loc.rel_dir());
            let path = dir.join(sanitize(name));
            let p2 = path.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                write_atomic(&p2, &data)
            })
            .await
            .map_err(|e| SinkError {
                target: path.display().to_string(),
                message: e.to_string(),
            })?
            .map_err(|e| SinkError {
                target: path.display().to_string(),
                message: e.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_seeds_and_stays_inside() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let host = Location {
            hostname: "node-1".into(),
            pod: None,
            discovered: t,
            binary: "kubelet".into(),
        };
        assert_eq!(host.rel_dir(), "node-1/_host_/20231114T221320.123Z/kubelet");
        let pod = Location {
            hostname: "node-1".into(),
            pod: Some(PodPlace {
                namespace: "../..".into(),
                pod: "web-1".into(),
                container: "app".into(),
                image: "quay.io/x/app:v1".into(),
            }),
            discovered: t,
            binary: "/etc".into(),
        };
        assert_eq!(
            pod.rel_dir(),
            "node-1/_._../web-1/app/20231114T221320.123Z/quay.io_x_app_v1/_etc"
        );
        assert!(pod.rel_dir().split('/').all(|p| p != ".." && !p.is_empty()));
    }
}
