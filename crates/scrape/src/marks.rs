//! Phase boundary markers: `DIR/marks.json` and the per-entry copies of the
//! snapshot taken at each boundary.
//!
//! A phase is measured without resetting anyone's counters: at its start and
//! at its end every live process is snapshot, and the snapshot is kept in
//! the entry as `phasemark.<seq>.<hash>.<pid>` (a counter file, named so that
//! `go tool covdata` and older covfleet versions ignore it). `marks.json`
//! lists the boundaries in order; each entry's `metadata.json` records how
//! many marks the collection held when the entry was first and last written
//! (`marks_first`, `marks_latest`), which tells `compile` whether a process
//! lived through a boundary, started after it, or ended before it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file, directly in the collection directory.
pub const MARKS_FILE: &str = "marks.json";
/// Prefix of the per-entry boundary snapshots.
pub const MARK_PREFIX: &str = "phasemark.";

/// Start or end of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkKind {
    Start,
    End,
}

impl MarkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkKind::Start => "start",
            MarkKind::End => "end",
        }
    }
}

/// A boundary asked for (`--phase-start NAME`, `--phase-end NAME`, a signal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRequest {
    pub kind: MarkKind,
    pub phase: String,
}

/// A boundary recorded in `marks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// 1, 2, … in the order the marks were taken.
    pub seq: u32,
    pub kind: MarkKind,
    pub phase: String,
    /// RFC 3339 time the boundary snapshot was taken.
    pub at: String,
    /// Processes whose snapshot was kept at this boundary.
    #[serde(default)]
    pub processes: usize,
}

/// `marks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub marks: Vec<Mark>,
}

fn one() -> u32 {
    1
}

/// Why marks cannot be read or taken; each names the file or the phase.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// `marks.json` could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `marks.json` is not what covfleet writes.
    #[error("{path}: not a marks file: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The phase was started before in this collection.
    #[error("phase {phase:?} was already started in this collection (mark {seq})")]
    AlreadyStarted { phase: String, seq: u32 },
    /// An end without an open start.
    #[error("phase {phase:?} is not open in this collection (no --phase-start {phase} before)")]
    NotOpen { phase: String },
    /// An empty or unusable name.
    #[error("{phase:?} is not a phase name (letters, digits, '.', '_', '-'; at most 80 bytes)")]
    BadName { phase: String },
}

/// Whether `name` can name a phase (it appears in URLs and `DIR@PHASE`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Marks {
    /// Reads `DIR/marks.json` (empty when absent).
    pub fn read(dir: &Path) -> Result<Marks, MarkError> {
        let path = dir.join(MARKS_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| MarkError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Marks {
                version: 1,
                marks: Vec::new(),
            }),
            Err(source) => Err(MarkError::Io { path, source }),
        }
    }

    /// Writes `DIR/marks.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), MarkError> {
        let path = dir.join(MARKS_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|source| MarkError::Json {
            path: path.clone(),
            source,
        })?;
        let tmp = dir.join(format!(".tmp.{MARKS_FILE}.{}", std::process::id()));
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| {
                let _ = std::fs::remove_file(&tmp);
                MarkError::Io { path, source }
            })
    }

    /// Number of marks so far (the `seq` of the last one).
    pub fn count(&self) -> u32 {
        self.marks.iter().map(|m| m.seq).max().unwrap_or(0)
    }

    /// Phases started and not ended, in start order.
    pub fn open(&self) -> Vec<String> {
        let mut open: Vec<String> = Vec::new();
        for m in &self.marks {
            match m.kind {
                MarkKind::Start => open.push(m.phase.clone()),
                MarkKind::End => open.retain(|p| *p != m.phase),
            }
        }
        open
    }

    /// Checks that `reqs` can be taken now, in order: a phase starts once
    /// per collection, an end needs an open start.
    pub fn check(&self, reqs: &[MarkRequest]) -> Result<(), MarkError> {
        let mut open = self.open();
        let mut started: Vec<(String, u32)> = self
            .marks
            .iter()
            .filter(|m| m.kind == MarkKind::Start)
            .map(|m| (m.phase.clone(), m.seq))
            .collect();
        for r in reqs {
            if !valid_name(&r.phase) {
                return Err(MarkError::BadName {
                    phase: r.phase.clone(),
                });
            }
            match r.kind {
                MarkKind::Start => {
                    if let Some((_, seq)) = started.iter().find(|(p, _)| *p == r.phase) {
                        return Err(MarkError::AlreadyStarted {
                            phase: r.phase.clone(),
                            seq: *seq,
                        });
                    }
                    started.push((r.phase.clone(), 0));
                    open.push(r.phase.clone());
                }
                MarkKind::End => {
                    if !open.contains(&r.phase) {
                        return Err(MarkError::NotOpen {
                            phase: r.phase.clone(),
                        });
                    }
                    open.retain(|p| *p != r.phase);
                }
            }
        }
        Ok(())
    }

    /// Appends `reqs` as the marks numbered after the last one, all taken
    /// at `at` with `processes` snapshots kept.
    pub fn push(&mut self, reqs: &[MarkRequest], at: &str, processes: usize) -> Vec<Mark> {
        let mut added = Vec::new();
        for (seq, r) in (self.count() + 1..).zip(reqs) {
            let m = Mark {
                seq,
                kind: r.kind,
                phase: r.phase.clone(),
                at: at.to_string(),
                processes,
            };
            self.marks.push(m.clone());
            added.push(m);
        }
        added
    }
}

/// The name of an entry's copy of a boundary snapshot.
pub fn mark_file_name(seq: u32, hash_hex: &str, pid: u32) -> String {
    format!("{MARK_PREFIX}{seq}.{hash_hex}.{pid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: MarkKind, p: &str) -> MarkRequest {
        MarkRequest {
            kind,
            phase: p.into(),
        }
    }

    #[test]
    fn starts_once_and_ends_only_open_phases() {
        let mut m = Marks::default();
        m.check(&[req(MarkKind::Start, "baseline")]).unwrap();
        m.push(&[req(MarkKind::Start, "baseline")], "t0", 1);
        assert!(matches!(
            m.check(&[req(MarkKind::End, "e2e")]),
            Err(MarkError::NotOpen { .. })
        ));
        let both = [req(MarkKind::End, "baseline"), req(MarkKind::Start, "e2e")];
        m.check(&both).unwrap();
        let added = m.push(&both, "t1", 2);
        assert_eq!(added.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(m.open(), ["e2e"]);
        assert!(matches!(
            m.check(&[req(MarkKind::Start, "baseline")]),
            Err(MarkError::AlreadyStarted { seq: 1, .. })
        ));
        assert!(matches!(
            m.check(&[req(MarkKind::Start, "../x")]),
            Err(MarkError::BadName { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        m.write(dir.path()).unwrap();
        assert_eq!(Marks::read(dir.path()).unwrap(), m);
        assert_eq!(mark_file_name(3, "ab", 7), "phasemark.3.ab.7");
    }
}
