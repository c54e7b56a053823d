//! The collection directory: `DIR/coverage/<entry>/`, one directory per
//! (namespace, pod, container, binary, process), each GOCOVERDIR-compatible:
//! `covmeta.<hash>`, `covcounters.<hash>.<pid>.1|.2` (alternating, so an
//! interrupted write never loses the previous snapshot), `metadata.json` and
//! `info.json`.
//!
//! Names from the network or the cluster never reach a path raw: each part
//! goes through [`sanitize`], parts are joined into one path component, and
//! the result is checked to stay directly under `DIR/coverage`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use covdata::names::{NameLimit, fnv64};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::protocol::Identity;

/// Longest sanitized part (80 bytes, 8 hash digits when cut): several
/// parts share one entry name.
const ENTRY_PART: NameLimit = NameLimit {
    max_len: 80,
    hash_digits: 8,
};
/// Longest entry name, in bytes (file systems allow 255; room is left for
/// the temporary names written beside entries).
pub const MAX_ENTRY_NAME: usize = 200;

/// Makes one name safe as (part of) a file name: keeps `[A-Za-z0-9._-]`,
/// maps everything else to `_`, never starts with `.`, never empty, at most
/// 80 bytes (long names keep a hash of the original so they stay distinct).
pub fn sanitize(name: &str) -> String {
    covdata::names::sanitize(name, ENTRY_PART)
}

/// A container as recorded in `metadata.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub name: String,
    pub image: String,
}

/// A pod's owner (`metadata.ownerReferences`), for owner grouping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
}

/// `metadata.json`: where a directory's data came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub pod_name: String,
    pub namespace: String,
    pub container: ContainerMeta,
    /// RFC 3339 time of the latest snapshot.
    pub collected_at: String,
    pub binary_name: String,
    /// Node name (Kubernetes), this host (`--local`) or the URL's host.
    pub hostname: String,
    /// True for a process found on this host outside any pod (`--local`).
    pub host_process: bool,
    /// `--phase NAME`, when given.
    pub phase: Option<String>,
    /// `url`, `local` or `kube`.
    pub source: String,
    /// How the server was reached.
    pub target: String,
    /// PID reported by the server.
    pub pid: u32,
    /// Port the server listens on, when known.
    pub port: Option<u16>,
    /// Host PID and start time (`--local`), container restart count (`--kube`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub process: BTreeMap<String, String>,
    /// The pod's `ownerReferences` (`--kube`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerRef>,
    /// Hash of the meta-data file.
    pub meta_hash: String,
    /// The counter file holding the newest snapshot (the other slot holds
    /// the one before). Snapshots of one process are cumulative: read the
    /// newest, never add the two.
    pub latest_counters: String,
    /// Snapshots written into this directory so far.
    pub snapshots: u64,
    /// Phase marks the collection held (`marks.json`) when this entry got
    /// its first snapshot; absent in collections without marks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks_first: Option<u32>,
    /// … and when it got its latest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks_latest: Option<u32>,
}

/// How a target was found; decides the shape of its entry name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// `--url`: `url_<host>_<port>_…`.
    #[default]
    Url,
    /// `--local`: `host_<hostname>_…`.
    Local,
    /// `--kube`: `<namespace>_<pod>_<container>_…`.
    Kube,
    /// `--kube --nodes`: a node's host process through the API server's
    /// node proxy (`host_<node>_…`, like `Local`).
    Node,
    /// `covfleet demo`: local processes named like the pods of a cluster
    /// (entry names as for `Kube`).
    Demo,
}

impl Source {
    /// The name recorded in `metadata.json` (`source`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Url => "url",
            Source::Local => "local",
            Source::Kube => "kube",
            Source::Node => "kube-node",
            Source::Demo => "demo",
        }
    }
}

/// Where one process's data goes, before sanitizing.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub source: Source,
    pub namespace: String,
    pub pod: String,
    pub container: ContainerMeta,
    pub binary: String,
    pub hostname: String,
    pub host_process: bool,
    pub pid: u32,
    /// Distinguishes processes that reuse a PID: start ticks, restart count…
    pub process_tag: Option<String>,
    pub phase: Option<String>,
    pub target: String,
    pub port: Option<u16>,
    /// `--url`: the URL's path when not `/` (servers behind path prefixes
    /// on one host and port are different targets).
    pub route: Option<String>,
    pub process: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerRef>,
}

impl Placement {
    /// The entry directory name (one path component); `instance` > 1 marks
    /// a later process detected behind the same name.
    pub fn entry_name(&self, instance: u32) -> String {
        let mut parts: Vec<String> = Vec::new();
        match self.source {
            Source::Kube | Source::Demo => {
                parts.push(sanitize(&self.namespace));
                parts.push(sanitize(&self.pod));
                parts.push(sanitize(&self.container.name));
            }
            Source::Local | Source::Node => {
                parts.push("host".into());
                parts.push(sanitize(&self.hostname));
            }
            Source::Url => {
                parts.push("url".into());
                parts.push(sanitize(&self.hostname));
                if let Some(p) = self.port {
                    parts.push(p.to_string());
                }
                if let Some(route) = &self.route {
                    parts.push(sanitize(route.trim_start_matches('/')));
                }
            }
        }
        parts.push(sanitize(&self.binary));
        let mut proc_part = format!("p{}", self.pid);
        if let Some(tag) = &self.process_tag {
            proc_part.push('-');
            proc_part.push_str(&sanitize(tag));
        }
        if instance > 1 {
            proc_part.push_str(&format!("-i{instance}"));
        }
        parts.push(proc_part);
        if let Some(phase) = &self.phase {
            parts.push(format!("phase-{}", sanitize(phase)));
        }
        cap_name(parts.join("_"))
    }
}

/// Caps a joined entry name at [`MAX_ENTRY_NAME`] bytes; a long name keeps
/// its start and ends with a hash of the whole, so names stay distinct.
fn cap_name(name: String) -> String {
    if name.len() <= MAX_ENTRY_NAME {
        return name;
    }
    // Sanitized names are ASCII: any byte index is a char boundary.
    let mut short: String = name[..MAX_ENTRY_NAME - 17].to_string();
    short.push('-');
    short.push_str(&format!("{:016x}", fnv64(name.as_bytes())));
    short
}

/// Writes one entry directory.
#[derive(Debug)]
pub struct EntryWriter {
    dir: PathBuf,
    name: String,
    metadata: Option<Metadata>,
    /// Marks in the collection's `marks.json` (see [`crate::marks`]).
    marks_seen: u32,
    /// Marks the next snapshot is also kept as (taken by it).
    marks_pending: Vec<u32>,
}

/// Files replaced together, each atomically: every file is written whole to
/// a temporary name beside its final one, all are synced to disk, then
/// renamed into place in the order they were added. A crash
/// at any point leaves each final name holding either its previous content
/// or the new one, complete: never a torn file (the data is on disk before
/// a rename can be). The renames themselves are not synced: after a power
/// loss an entry may hold its previous snapshot, which is consistent too.
#[derive(Debug, Default)]
pub struct Batch {
    files: Vec<(PathBuf, PathBuf, std::fs::File)>,
    /// Bytes written to `files`.
    bytes: u64,
}

impl Batch {
    /// Writes `data` to a temporary file for `path`.
    pub fn add(&mut self, path: &Path, data: &[u8]) -> Result<(), Error> {
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = path.with_file_name(format!(".tmp.{file_name}.{}", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(data)?;
            Ok(f)
        });
        match written {
            Ok(f) => {
                self.files.push((tmp, path.to_path_buf(), f));
                self.bytes += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(Error::io(path, e))
            }
        }
    }

    /// Syncs every file, then renames each into place.
    pub fn commit(self) -> Result<(), Error> {
        // All files are written before the sync; batches committed at the
        // same time share it (see crate::groupsync).
        let files: Vec<&std::fs::File> = self.files.iter().map(|(_, _, f)| f).collect();
        let mut sync_error = crate::groupsync::sync_files(&files, self.bytes).err();
        let mut failed = None;
        for (i, (tmp, path, file)) in self.files.into_iter().enumerate() {
            drop(file);
            // Files after one that failed to sync are not renamed.
            let sync = match sync_error.take_if(|(at, _)| *at == i) {
                Some((_, e)) => Err(e),
                None => Ok(()),
            };
            let done = match (failed.is_some(), sync) {
                (true, _) => Ok(()),
                (false, Err(e)) => Err(e),
                (false, Ok(())) => std::fs::rename(&tmp, &path),
            };
            if failed.is_some() || done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            if let Err(e) = done {
                failed = Some(Error::io(&path, e));
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

impl EntryWriter {
    /// Opens (creating) `root/name`; `root` is `DIR/coverage`.
    pub fn open(root: &Path, name: &str) -> Result<EntryWriter, Error> {
        let invalid = |why: &str| {
            Error::io(
                root.join(name),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
            )
        };
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(invalid("not a single safe path component"));
        }
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let dir = root.join(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(invalid("exists and is not a plain directory"));
            }
            Ok(_) => {}
            Err(_) => std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?,
        }
        let metadata = std::fs::read(dir.join("metadata.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Metadata>(&b).ok());
        Ok(EntryWriter {
            dir,
            name: name.to_string(),
            metadata,
            marks_seen: 0,
            marks_pending: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metadata found on disk or last written.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Whether `covmeta.<hash>` is present.
    pub fn has_meta(&self, hash: &covdata::Hash) -> bool {
        self.dir
            .join(format!("covmeta.{}", covdata::hex(hash)))
            .is_file()
    }

    /// Writes `covmeta.<hash>` (unchanged content is not rewritten).
    pub fn write_meta(&self, hash: &covdata::Hash, data: &[u8]) -> Result<(), Error> {
        let mut batch = Batch::default();
        self.stage_meta(&mut batch, hash, data)?;
        batch.commit()
    }

    fn stage_meta(
        &self,
        batch: &mut Batch,
        hash: &covdata::Hash,
        data: &[u8],
    ) -> Result<(), Error> {
        let path = self.dir.join(format!("covmeta.{}", covdata::hex(hash)));
        if std::fs::read(&path).is_ok_and(|old| old == data) {
            return Ok(());
        }
        batch.add(&path, data)
    }

    /// Writes a snapshot as [`EntryWriter::write_snapshot`] does, with the
    /// meta-data file and `info.json` when given, as one [`Batch`]: the
    /// files are synced together and `metadata.json`, which names the
    /// newest counter file, is renamed into place last.
    pub fn write_all(
        &mut self,
        placement: &Placement,
        identity: &Identity,
        hash: &covdata::Hash,
        meta: Option<&[u8]>,
        counters: &[u8],
        info: Option<&Identity>,
    ) -> Result<PathBuf, Error> {
        let mut batch = Batch::default();
        if let Some(meta) = meta {
            self.stage_meta(&mut batch, hash, meta)?;
        }
        if let Some(info) = info {
            self.stage_info(&mut batch, placement, info)?;
        }
        let (path, md) = self.stage_snapshot(&mut batch, placement, identity, hash, counters)?;
        batch.commit()?;
        self.metadata = Some(md);
        self.marks_pending.clear();
        Ok(path)
    }

    /// Phase marks for the next [`write_snapshot`](Self::write_snapshot):
    /// `seen`, how many marks the collection holds now (recorded as
    /// `marks_first` / `marks_latest` in metadata.json), and `at`, the marks
    /// (sequence numbers) that snapshot is taken for: it is also kept as
    /// `phasemark.<seq>.<hash>.<pid>` (ignored by `go tool covdata`).
    pub fn set_marks(&mut self, seen: u32, at: &[u32]) {
        self.marks_seen = seen;
        self.marks_pending = at.to_vec();
    }

    /// The newest counter file written here, if any.
    pub fn latest_counters(&self) -> Option<(String, Vec<u8>)> {
        let name = self
            .metadata
            .as_ref()
            .map(|m| m.latest_counters.clone())
            .filter(|n| !n.is_empty())?;
        let data = std::fs::read(self.dir.join(&name)).ok()?;
        Some((name, data))
    }

    /// Writes a snapshot into the slot (`.1` / `.2`) that does not hold the
    /// newest one, then records it as the newest in `metadata.json`.
    pub fn write_snapshot(
        &mut self,
        placement: &Placement,
        identity: &Identity,
        hash: &covdata::Hash,
        counters: &[u8],
    ) -> Result<PathBuf, Error> {
        let mut batch = Batch::default();
        let (path, md) = self.stage_snapshot(&mut batch, placement, identity, hash, counters)?;
        batch.commit()?;
        self.metadata = Some(md);
        self.marks_pending.clear();
        Ok(path)
    }

    /// Stages the counter file and then `metadata.json` naming it; returns
    /// the counter file's path and the metadata to keep once committed.
    fn stage_snapshot(
        &self,
        batch: &mut Batch,
        placement: &Placement,
        identity: &Identity,
        hash: &covdata::Hash,
        counters: &[u8],
    ) -> Result<(PathBuf, Metadata), Error> {
        let hex = covdata::hex(hash);
        let prefix = format!("covcounters.{hex}.{}.", identity.pid);
        let slot = match self.metadata.as_ref().map(|m| m.latest_counters.as_str()) {
            Some(n) if n == format!("{prefix}1") => 2,
            _ => 1,
        };
        let name = format!("{prefix}{slot}");
        let path = self.dir.join(&name);
        for seq in &self.marks_pending {
            let mark = crate::marks::mark_file_name(*seq, &hex, identity.pid);
            batch.add(&self.dir.join(mark), counters)?;
        }
        batch.add(&path, counters)?;
        let snapshots = self.metadata.as_ref().map_or(0, |m| m.snapshots) + 1;
        let seen = (self.marks_seen > 0).then_some(self.marks_seen);
        let marks_first = match &self.metadata {
            Some(m) => m.marks_first.or(seen.map(|_| 0)),
            None => seen,
        };
        let marks_latest = seen.or(self.metadata.as_ref().and_then(|m| m.marks_latest));
        let md = Metadata {
            pod_name: placement.pod.clone(),
            namespace: placement.namespace.clone(),
            container: placement.container.clone(),
            collected_at: humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string(),
            binary_name: placement.binary.clone(),
            hostname: placement.hostname.clone(),
            host_process: placement.host_process,
            phase: placement.phase.clone(),
            source: placement.source.as_str().to_string(),
            target: placement.target.clone(),
            pid: identity.pid,
            port: placement.port,
            process: placement.process.clone(),
            owner_references: placement.owner_references.clone(),
            meta_hash: hex,
            latest_counters: name,
            snapshots,
            marks_first,
            marks_latest,
        };
        let json = serde_json::to_vec_pretty(&md)
            .map_err(|e| Error::io(self.dir.join("metadata.json"), e.into()))?;
        batch.add(&self.dir.join("metadata.json"), &json)?;
        Ok((path, md))
    }

    /// Writes `info.json`: every identity header (lowercase_underscore, no
    /// `x_art_coverage_` prefix) plus `binary_name`, `host`, `port`, `pid`.
    pub fn write_info(&self, placement: &Placement, identity: &Identity) -> Result<(), Error> {
        let mut batch = Batch::default();
        self.stage_info(&mut batch, placement, identity)?;
        batch.commit()
    }

    fn stage_info(
        &self,
        batch: &mut Batch,
        placement: &Placement,
        identity: &Identity,
    ) -> Result<(), Error> {
        let mut info: BTreeMap<String, serde_json::Value> = identity
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        info.insert("binary_name".into(), identity.binary.clone().into());
        info.insert("host".into(), placement.hostname.clone().into());
        info.insert("pid".into(), identity.pid.into());
        if let Some(p) = placement.port {
            info.insert("port".into(), p.into());
        }
        let path = self.dir.join("info.json");
        let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::io(&path, e.into()))?;
        batch.add(&path, &json)
    }
}

/// Whether `new` can be a later snapshot of the process that wrote `old`:
/// counters of one process only grow. A drop means another process (PID
/// reuse, restart) or a reset. Undecodable data counts as a continuation.
pub fn is_continuation(old: &[u8], new: &[u8]) -> bool {
    let (Ok(old), Ok(new)) = (
        covdata::CounterFile::decode(old),
        covdata::CounterFile::decode(new),
    ) else {
        return true;
    };
    if old.meta_hash != new.meta_hash {
        return false;
    }
    let newer: std::collections::HashMap<(u32, u32), &Vec<u32>> = new
        .funcs
        .iter()
        .map(|f| ((f.pkg, f.func), &f.counters))
        .collect();
    for f in &old.funcs {
        let nonzero = f.counters.iter().any(|&c| c > 0);
        let grew = match newer.get(&(f.pkg, f.func)) {
            None => !nonzero,
            Some(n) => {
                n.len() == f.counters.len() && f.counters.iter().zip(n.iter()).all(|(o, n)| n >= o)
            }
        };
        if !grew {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_parts_are_capped_at_80_bytes_with_a_hash() {
        let s = sanitize(&format!("ns/ééé{}", "x".repeat(200)));
        assert_eq!(s.len(), 80);
        assert_eq!(s, format!("ns____{}-77824b00", "x".repeat(65)));
    }

    #[test]
    fn hostile_names_stay_one_component() {
        for evil in [
            "../../x",
            "..",
            ".",
            "",
            "a/b",
            "/etc/passwd",
            "x\0y",
            "ns\\..\\up",
        ] {
            let s = sanitize(evil);
            assert!(
                !s.contains('/') && !s.contains('\\') && !s.contains('\0'),
                "{evil:?} -> {s:?}"
            );
            assert!(!s.starts_with('.'), "{evil:?} -> {s:?}");
            assert!(!s.is_empty());
        }
        let p = Placement {
            source: Source::Kube,
            namespace: "../..".into(),
            pod: "../../x".into(),
            container: ContainerMeta {
                name: "/".into(),
                image: String::new(),
            },
            binary: "..".into(),
            pid: 1,
            phase: Some("../e2e".into()),
            ..Default::default()
        };
        let name = p.entry_name(1);
        assert!(
            !name.contains('/') && name != ".." && !name.starts_with('.'),
            "{name}"
        );
    }

    #[test]
    fn long_names_stay_distinct() {
        let a = sanitize(&"a".repeat(200));
        let b = sanitize(&format!("{}b", "a".repeat(199)));
        assert!(a.len() <= ENTRY_PART.max_len && b.len() <= ENTRY_PART.max_len);
        assert_ne!(a, b);
    }

    fn tmp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".tmp."))
            .collect()
    }

    #[test]
    fn batch_replaces_every_file_or_leaves_it() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::write(&a, b"old a").unwrap();
        std::fs::write(&b, b"old b").unwrap();

        // A crash after writing the temporary files (nothing committed):
        // every final name keeps its previous content, whole.
        let mut batch = Batch::default();
        batch.add(&a, b"new a, longer than before").unwrap();
        batch.add(&b, b"new b").unwrap();
        std::mem::forget(batch);
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert_eq!(std::fs::read(&b).unwrap(), b"old b");
        for t in tmp_files(d) {
            std::fs::remove_file(d.join(t)).unwrap();
        }

        let mut batch = Batch::default();
        batch.add(&a, b"new a").unwrap();
        batch.add(&b, b"new b").unwrap();
        batch.commit().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new a");
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        assert!(tmp_files(d).is_empty());

        // A rename that fails (the name is taken by a directory): the files
        // before it are in place, it and the ones after keep their previous
        // content, no temporary file is left, and the error names the file.
        let c = d.join("c");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("x"), b"x").unwrap();
        let mut batch = Batch::default();
        batch.add(&a, b"newer a").unwrap();
        batch.add(&c, b"c").unwrap();
        batch.add(&b, b"newer b").unwrap();
        let err = batch.commit().unwrap_err().to_string();
        assert!(err.contains(&c.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&a).unwrap(), b"newer a");
        assert!(c.is_dir());
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        assert!(tmp_files(d).is_empty(), "{:?}", tmp_files(d));

        // A file that cannot be created: reported, nothing else touched.
        let mut batch = Batch::default();
        let err = batch
            .add(&d.join("missing").join("f"), b"f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn write_all_is_one_consistent_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EntryWriter::open(tmp.path(), "e").unwrap();
        let p = Placement {
            binary: "app".into(),
            pid: 7,
            ..Default::default()
        };
        let id = Identity {
            pid: 7,
            binary: "app".into(),
            headers: Default::default(),
        };
        let hash = [3u8; 16];
        let first = w
            .write_all(&p, &id, &hash, Some(b"meta"), b"one", Some(&id))
            .unwrap();
        let second = w.write_all(&p, &id, &hash, None, b"two", None).unwrap();
        assert_ne!(first, second, "the slots alternate");
        let md: Metadata =
            serde_json::from_slice(&std::fs::read(w.dir().join("metadata.json")).unwrap()).unwrap();
        assert_eq!(md.snapshots, 2);
        assert_eq!(w.dir().join(&md.latest_counters), second);
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        assert_eq!(std::fs::read(&first).unwrap(), b"one");
        assert!(w.has_meta(&hash));
        assert!(w.dir().join("info.json").is_file());
        assert!(tmp_files(w.dir()).is_empty());
    }

    #[test]
    fn open_rejects_escape() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["..", "a/b", ""] {
            assert!(EntryWriter::open(tmp.path(), bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/tmp", tmp.path().join("link")).unwrap();
        assert!(EntryWriter::open(tmp.path(), "link").is_err());
    }
}
