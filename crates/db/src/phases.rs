//! Phases measured from boundary snapshots, without resets.
//!
//! `covfleet collect --phase-start NAME` / `--phase-end NAME` (or signals
//! during `--watch`) append marks to `DIR/marks.json` and keep every live
//! process's snapshot at that moment in its entry
//! (`phasemark.<seq>.<hash>.<pid>`). Each entry's metadata.json records how
//! many marks existed when it was first and last written. A phase's counts
//! for one process (one entry) are its counters at the end mark minus those
//! at the start mark, per unit and never negative:
//!
//! - start: the copy at the start mark; none and the entry was first written
//!   after the mark was taken → the process started during the phase (0);
//!   none and the entry was last written before it → the process had ended
//!   before the phase (not part of it);
//! - end: the copy at the end mark; none and the entry was last written
//!   before the mark → the process ended during the phase (its latest
//!   snapshot); an open phase (no end yet) ends at the latest snapshot;
//! - a process seen on both sides of a mark but not snapshot at it cannot be
//!   measured: it is left out with a warning.
//!
//! A restart inside a phase is a new process, hence a new entry: the old one
//! contributes up to its last snapshot, the new one from zero. Per owner,
//! processes of one instance add and instances merge like the owner's rows
//! (max or sum).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use covdata::hash::{Fnv128, HashWriter};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Deserialize;

use crate::codec;
use crate::compile::{CompileSummary, layout_from_stored};
use crate::entry::EntryInfo;
use crate::error::{Error, SqlCtx};
use crate::layout::{Layout, pct};
use crate::merge::{self, ReplicaMerge};

/// The collection's marks file (written by `covfleet collect`).
pub const MARKS_FILE: &str = "marks.json";

#[derive(Debug, Clone, Deserialize)]
struct MarkRow {
    seq: u32,
    kind: String,
    phase: String,
    #[serde(default)]
    at: String,
}

#[derive(Debug, Default, Deserialize)]
struct MarksFile {
    #[serde(default)]
    marks: Vec<MarkRow>,
}

/// A phase as `marks.json` defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseSpan {
    pub name: String,
    pub start_mark: u32,
    pub end_mark: Option<u32>,
    pub started_at: String,
    pub ended_at: Option<String>,
}

/// Pairs start and end marks into phases, in start order (a second start
/// of a phase name is ignored; an end without a start too).
fn spans(marks: &[MarkRow]) -> Vec<PhaseSpan> {
    let mut sorted: Vec<&MarkRow> = marks.iter().collect();
    sorted.sort_by_key(|m| m.seq);
    let mut out: Vec<PhaseSpan> = Vec::new();
    for m in sorted {
        match m.kind.as_str() {
            "start" if !out.iter().any(|s| s.name == m.phase) => out.push(PhaseSpan {
                name: m.phase.clone(),
                start_mark: m.seq,
                end_mark: None,
                started_at: m.at.clone(),
                ended_at: None,
            }),
            "end" => {
                if let Some(s) = out
                    .iter_mut()
                    .find(|s| s.name == m.phase && s.end_mark.is_none())
                {
                    s.end_mark = Some(m.seq);
                    s.ended_at = Some(m.at.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// The flattened meta-data file `meta_id` of the database at `p`.
fn stored_layout(conn: &Connection, meta_id: i64, p: &Path) -> Result<Layout, Error> {
    let data: Vec<u8> = conn
        .query_row(
            "SELECT data FROM meta_files WHERE id = ?1",
            [meta_id],
            |r| r.get(0),
        )
        .db(p)?;
    layout_from_stored(&data).map_err(|source| Error::Corrupt {
        path: p.to_path_buf(),
        what: format!("meta-data file {meta_id}"),
        source,
    })
}

/// Stores a report's boundary snapshots and mark span (compile, per entry).
pub(crate) fn write_report_marks(
    tx: &Transaction<'_>,
    report_id: i64,
    info: &EntryInfo,
    marks: &[(u32, Vec<u32>)],
    p: &Path,
) -> Result<(), Error> {
    if info.marks_first == 0 && info.marks_latest == 0 && marks.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT OR REPLACE INTO report_mark_span (report_id, marks_first, marks_latest) VALUES (?1, ?2, ?3)",
        params![report_id, info.marks_first, info.marks_latest],
    )
    .db(p)?;
    let mut st = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO report_marks (report_id, mark, counters) VALUES (?1, ?2, ?3)",
        )
        .db(p)?;
    for (seq, c) in marks {
        st.execute(params![report_id, seq, codec::encode_counters(c)])
            .db(p)?;
    }
    Ok(())
}

/// What one process (report) counted during a phase, or `None` when it is
/// not part of it. `Err` carries why it cannot be measured.
pub fn process_phase_counts(
    latest: &[u32],
    marks: &BTreeMap<u32, Vec<u32>>,
    marks_first: u32,
    marks_latest: u32,
    span: &PhaseSpan,
) -> Result<Option<Vec<u32>>, &'static str> {
    let s = span.start_mark;
    let start: Option<&Vec<u32>> = match marks.get(&s) {
        Some(c) => Some(c),
        // Entries of collections without marks record 0: "before everything".
        None if marks_first >= s => None,
        None if marks_latest < s => return Ok(None),
        None => return Err("alive across the start mark but not snapshot at it"),
    };
    let end: &[u32] = match span.end_mark {
        None => latest,
        Some(e) => match marks.get(&e) {
            Some(c) => c,
            None if marks_first >= e => return Ok(None),
            None if marks_latest < e => latest,
            None => return Err("alive across the end mark but not snapshot at it"),
        },
    };
    let mut out = end.to_vec();
    if let Some(st) = start {
        for (o, &b) in out.iter_mut().zip(st) {
            *o = o.saturating_sub(b);
        }
    }
    Ok(Some(out))
}

struct Member {
    id: i64,
    dir_name: String,
    instance: String,
    latest: Vec<u32>,
    marks: BTreeMap<u32, Vec<u32>>,
    first: u32,
    last: u32,
}

struct OwnerRef {
    id: i64,
    meta_id: i64,
}

fn load_members(
    conn: &Connection,
    owner: i64,
    layout: &Layout,
    p: &Path,
) -> Result<Vec<Member>, Error> {
    let mut st = conn
        .prepare_cached(
            "SELECT r.id, r.dir_name, r.instance, coalesce(s.marks_first, 0), coalesce(s.marks_latest, 0) \
             FROM owner_reports o JOIN report_sources r ON r.id = o.report_id \
             LEFT JOIN report_mark_span s ON s.report_id = r.id WHERE o.owner_id = ?1 ORDER BY r.id",
        )
        .db(p)?;
    let rows: Vec<(i64, String, String, u32, u32)> = st
        .query_map([owner], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .db(p)?
        .collect::<Result<_, _>>()
        .db(p)?;
    let mut pst = conn
        .prepare_cached("SELECT counters FROM report_processes WHERE report_id = ?1")
        .db(p)?;
    let mut mst = conn
        .prepare_cached("SELECT mark, counters FROM report_marks WHERE report_id = ?1")
        .db(p)?;
    let corrupt = |what: String, source| Error::Corrupt {
        path: p.to_path_buf(),
        what,
        source,
    };
    let mut out = Vec::new();
    for (id, dir_name, instance, first, last) in rows {
        let mut latest = vec![0u32; layout.len()];
        let blobs: Vec<Vec<u8>> = pst
            .query_map([id], |r| r.get(0))
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)?;
        for b in blobs {
            let c = codec::decode_counters_for(&b, layout.len())
                .map_err(|e| corrupt(format!("counters of report {id} (entry {dir_name})"), e))?;
            merge::add_into(&mut latest, &c, layout.mode);
        }
        let mut marks = BTreeMap::new();
        let rows: Vec<(u32, Vec<u8>)> = mst
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)?;
        for (seq, b) in rows {
            let c = codec::decode_counters_for(&b, layout.len()).map_err(|e| {
                corrupt(
                    format!("mark {seq} counters of report {id} (entry {dir_name})"),
                    e,
                )
            })?;
            marks.insert(seq, c);
        }
        out.push(Member {
            id,
            dir_name,
            instance,
            latest,
            marks,
            first,
            last,
        });
    }
    Ok(out)
}

/// Recomputes the phase tables from `marks.json` and the stored reports,
/// when anything changed (`changed`, or the marks file itself).
pub(crate) fn recompute(
    conn: &mut Connection,
    collection: &Path,
    merge_mode: ReplicaMerge,
    changed: bool,
    p: &Path,
    summary: &mut CompileSummary,
) -> Result<(), Error> {
    let mpath = collection.join(MARKS_FILE);
    let raw = match crate::regular::read_regular(&mpath, crate::entry::MAX_JSON_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            summary.warnings.push(e.to_string());
            Vec::new()
        }
    };
    let mut h = Fnv128::new();
    h.write(&raw);
    h.write(merge_mode.as_str().as_bytes());
    let marks_hash = covdata::hex(&h.finish());
    let stored: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = 'marks'", [], |r| {
            r.get(0)
        })
        .optional()
        .db(p)?;
    if !changed && stored.as_deref() == Some(marks_hash.as_str()) {
        summary.phases = conn
            .query_row("SELECT count(*) FROM phases", [], |r| r.get::<_, i64>(0))
            .db(p)? as usize;
        return Ok(());
    }
    let file: MarksFile = if raw.is_empty() {
        MarksFile::default()
    } else {
        match serde_json::from_slice(&raw) {
            Ok(f) => f,
            Err(e) => {
                summary
                    .warnings
                    .push(format!("{}: not a marks file: {e}", mpath.display()));
                MarksFile::default()
            }
        }
    };
    let phases = spans(&file.marks);
    let owners: Vec<OwnerRef> = {
        let mut st = conn
            .prepare("SELECT id, meta_id FROM owners ORDER BY id")
            .db(p)?;
        st.query_map([], |r| {
            Ok(OwnerRef {
                id: r.get(0)?,
                meta_id: r.get(1)?,
            })
        })
        .db(p)?
        .collect::<Result<_, _>>()
        .db(p)?
    };
    let tx = conn.transaction().db(p)?;
    tx.execute("DELETE FROM phase_file_stats", []).db(p)?;
    tx.execute("DELETE FROM phase_owners", []).db(p)?;
    tx.execute("DELETE FROM phases", []).db(p)?;
    let mut layouts: HashMap<i64, Arc<Layout>> = HashMap::new();
    let mut members: HashMap<i64, Vec<Member>> = HashMap::new();
    if !phases.is_empty() {
        for o in &owners {
            if let std::collections::hash_map::Entry::Vacant(slot) = layouts.entry(o.meta_id) {
                slot.insert(Arc::new(stored_layout(&tx, o.meta_id, p)?));
            }
            members.insert(o.id, load_members(&tx, o.id, &layouts[&o.meta_id], p)?);
        }
    }
    for span in &phases {
        tx.execute(
            "INSERT INTO phases (name, start_mark, end_mark, started_at, ended_at, owner_count, process_count, \
             total_stmts, covered_stmts, coverage_pct) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, 0, 0)",
            params![span.name, span.start_mark, span.end_mark, span.started_at, span.ended_at],
        )
        .db(p)?;
        let phase_id = tx.last_insert_rowid();
        let (mut n_owners, mut n_procs, mut total, mut covered) = (0i64, 0i64, 0u64, 0u64);
        for o in &owners {
            let layout = &layouts[&o.meta_id];
            let mut by_instance: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            let mut reports = 0i64;
            for m in &members[&o.id] {
                match process_phase_counts(&m.latest, &m.marks, m.first, m.last, span) {
                    Ok(Some(c)) => {
                        let inst = by_instance
                            .entry(m.instance.as_str())
                            .or_insert_with(|| vec![0; layout.len()]);
                        merge::add_into(inst, &c, layout.mode);
                        reports += 1;
                    }
                    Ok(None) => {}
                    Err(why) => summary.warnings.push(format!(
                        "phase {}: entry {} (report {}) left out: {why}",
                        span.name, m.dir_name, m.id
                    )),
                }
            }
            if reports == 0 {
                continue;
            }
            let mut acc = vec![0u32; layout.len()];
            for inst in by_instance.values() {
                merge::merge_into(&mut acc, inst, merge_mode, layout.mode);
            }
            let (t, c) = layout.stmt_totals(&acc);
            tx.execute(
                "INSERT INTO phase_owners (phase_id, owner_id, report_count, process_count, total_stmts, \
                 covered_stmts, coverage_pct, counters) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    phase_id,
                    o.id,
                    reports,
                    reports,
                    t as i64,
                    c as i64,
                    pct(c, t),
                    codec::encode_counters(&acc)
                ],
            )
            .db(p)?;
            let mut fs = tx
                .prepare_cached(
                    "INSERT INTO phase_file_stats (phase_id, owner_id, file_path, package_path, total_stmts, \
                     covered_stmts, coverage_pct) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .db(p)?;
            for ((ft, fc), f) in layout.file_totals(&acc).into_iter().zip(&layout.files) {
                if f.injected {
                    continue;
                }
                fs.execute(params![
                    phase_id,
                    o.id,
                    f.path,
                    f.package_path,
                    ft as i64,
                    fc as i64,
                    pct(fc, ft)
                ])
                .db(p)?;
            }
            n_owners += 1;
            n_procs += reports;
            total += t;
            covered += c;
        }
        tx.execute(
            "UPDATE phases SET owner_count = ?2, process_count = ?3, total_stmts = ?4, covered_stmts = ?5, \
             coverage_pct = ?6 WHERE id = ?1",
            params![
                phase_id,
                n_owners,
                n_procs,
                total as i64,
                covered as i64,
                pct(covered, total)
            ],
        )
        .db(p)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO settings VALUES ('marks', ?1)",
        [&marks_hash],
    )
    .db(p)?;
    tx.commit().db(p)?;
    summary.phases = phases.len();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: u32, e: Option<u32>) -> PhaseSpan {
        PhaseSpan {
            name: "e2e".into(),
            start_mark: s,
            end_mark: e,
            started_at: String::new(),
            ended_at: None,
        }
    }

    #[test]
    fn boundaries_restarts_and_never_negative() {
        let marks: BTreeMap<u32, Vec<u32>> = [(2, vec![5, 1, 0]), (3, vec![7, 4, 2])].into();
        let ph = span(2, Some(3));
        // Through the whole phase: end − start.
        assert_eq!(
            process_phase_counts(&[9, 9, 9], &marks, 1, 3, &ph),
            Ok(Some(vec![2, 3, 2]))
        );
        // Started during the phase, seen at its end: from zero.
        let late: BTreeMap<u32, Vec<u32>> = [(3, vec![1, 0, 4])].into();
        assert_eq!(
            process_phase_counts(&[2, 2, 5], &late, 2, 3, &ph),
            Ok(Some(vec![1, 0, 4]))
        );
        // Ended during the phase: its latest snapshot minus the start.
        let early: BTreeMap<u32, Vec<u32>> = [(2, vec![5, 1, 0])].into();
        assert_eq!(
            process_phase_counts(&[6, 1, 3], &early, 1, 2, &ph),
            Ok(Some(vec![1, 0, 3]))
        );
        // Ended before the phase, or started after it: not part of it.
        assert_eq!(
            process_phase_counts(&[6, 1, 3], &BTreeMap::new(), 0, 1, &ph),
            Ok(None)
        );
        assert_eq!(
            process_phase_counts(&[6, 1, 3], &BTreeMap::new(), 3, 4, &ph),
            Ok(None)
        );
        // A counter lower at the end than at the start (bad data) stays 0.
        let odd: BTreeMap<u32, Vec<u32>> = [(2, vec![5, 1, 0]), (3, vec![4, 1, 0])].into();
        assert_eq!(
            process_phase_counts(&[9, 9, 9], &odd, 1, 3, &ph),
            Ok(Some(vec![0, 0, 0]))
        );
        // Open phase: up to the latest snapshot.
        assert_eq!(
            process_phase_counts(&[9, 9, 9], &marks, 1, 3, &span(2, None)),
            Ok(Some(vec![4, 8, 9]))
        );
        // Alive across the start but not snapshot at it.
        assert!(process_phase_counts(&[9, 9, 9], &BTreeMap::new(), 1, 3, &ph).is_err());
    }

    #[test]
    fn spans_pair_starts_and_ends() {
        let m = |seq, kind: &str, phase: &str| MarkRow {
            seq,
            kind: kind.into(),
            phase: phase.into(),
            at: format!("t{seq}"),
        };
        let s = spans(&[
            m(3, "start", "e2e"),
            m(1, "start", "baseline"),
            m(2, "end", "baseline"),
            m(4, "end", "nope"),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].start_mark, s[0].end_mark), (1, Some(2)));
        assert_eq!((s[1].name.as_str(), s[1].end_mark), ("e2e", None));
    }
}

/// A phase recorded in the database (table `phases`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Phase {
    pub id: i64,
    pub name: String,
    pub start_mark: u32,
    /// `None` while the phase is open (it then ends at the latest snapshots).
    pub end_mark: Option<u32>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub owner_count: i64,
    pub process_count: i64,
    pub total_stmts: i64,
    pub covered_stmts: i64,
    pub coverage_pct: f64,
}

/// One owner's coverage during a phase (table `phase_owners`).
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseOwner {
    pub owner_id: i64,
    pub report_count: i64,
    pub total_stmts: i64,
    pub covered_stmts: i64,
    pub coverage_pct: f64,
}

impl crate::read::Database {
    /// Every phase, in start order (empty for collections without marks).
    pub fn phases(&self) -> Result<Vec<Phase>, Error> {
        let p = self.path();
        let mut st = self
            .connection()
            .prepare(
                "SELECT id, name, start_mark, end_mark, started_at, ended_at, owner_count, process_count, \
                 total_stmts, covered_stmts, coverage_pct FROM phases ORDER BY start_mark",
            )
            .db(p)?;
        st.query_map([], |r| {
            Ok(Phase {
                id: r.get(0)?,
                name: r.get(1)?,
                start_mark: r.get(2)?,
                end_mark: r.get(3)?,
                started_at: r.get(4)?,
                ended_at: r.get(5)?,
                owner_count: r.get(6)?,
                process_count: r.get(7)?,
                total_stmts: r.get(8)?,
                covered_stmts: r.get(9)?,
                coverage_pct: r.get(10)?,
            })
        })
        .db(p)?
        .collect::<Result<_, _>>()
        .db(p)
    }

    /// The phase called `name`.
    pub fn phase(&self, name: &str) -> Result<Option<Phase>, Error> {
        Ok(self.phases()?.into_iter().find(|ph| ph.name == name))
    }

    /// The owners that ran during a phase, with their coverage in it.
    pub fn phase_owners(&self, phase_id: i64) -> Result<Vec<PhaseOwner>, Error> {
        let p = self.path();
        let mut st = self
            .connection()
            .prepare(
                "SELECT owner_id, report_count, total_stmts, covered_stmts, coverage_pct FROM phase_owners \
                 WHERE phase_id = ?1 ORDER BY owner_id",
            )
            .db(p)?;
        st.query_map([phase_id], |r| {
            Ok(PhaseOwner {
                owner_id: r.get(0)?,
                report_count: r.get(1)?,
                total_stmts: r.get(2)?,
                covered_stmts: r.get(3)?,
                coverage_pct: r.get(4)?,
            })
        })
        .db(p)?
        .collect::<Result<_, _>>()
        .db(p)
    }

    /// Per-file coverage of an owner during a phase.
    pub fn phase_file_stats(
        &self,
        phase_id: i64,
        owner_id: i64,
    ) -> Result<Vec<crate::read::FileStat>, Error> {
        let p = self.path();
        let mut st = self
            .connection()
            .prepare(
                "SELECT file_path, package_path, total_stmts, covered_stmts, coverage_pct FROM phase_file_stats \
                 WHERE phase_id = ?1 AND owner_id = ?2 ORDER BY file_path",
            )
            .db(p)?;
        st.query_map([phase_id, owner_id], crate::read::FileStat::from_row)
            .db(p)?
            .collect::<Result<_, _>>()
            .db(p)
    }

    /// An owner's counters during a phase (dense, meta-data order), `None`
    /// when the owner did not run in it.
    pub fn phase_counters(&self, phase_id: i64, owner_id: i64) -> Result<Option<Vec<u32>>, Error> {
        let p = self.path();
        let row: Option<(i64, Vec<u8>)> = self
            .connection()
            .query_row(
                "SELECT o.meta_id, po.counters FROM phase_owners po JOIN owners o ON o.id = po.owner_id \
                 WHERE po.phase_id = ?1 AND po.owner_id = ?2",
                [phase_id, owner_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .db(p)?;
        let Some((meta_id, blob)) = row else {
            return Ok(None);
        };
        let layout = stored_layout(self.connection(), meta_id, self.path())?;
        codec::decode_counters_for(&blob, layout.len())
            .map(Some)
            .map_err(|source| Error::Corrupt {
                path: p.to_path_buf(),
                what: format!("phase {phase_id} counters of owner {owner_id}"),
                source,
            })
    }

    /// An owner's coverage during a phase as a Go text profile (like
    /// [`owner_profile`](Self::owner_profile)); `None` when it did not run.
    pub fn phase_profile(&self, phase_id: i64, owner_id: i64) -> Result<Option<String>, Error> {
        let Some(counters) = self.phase_counters(phase_id, owner_id)? else {
            return Ok(None);
        };
        let meta_id: i64 = self
            .connection()
            .query_row(
                "SELECT meta_id FROM owners WHERE id = ?1",
                [owner_id],
                |r| r.get(0),
            )
            .db(self.path())?;
        let layout = stored_layout(self.connection(), meta_id, self.path())?;
        Ok(Some(crate::read::profile_text(&layout, &counters)))
    }
}
