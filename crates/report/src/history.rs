//! The index's run history: the phases a collection recorded (each with
//! every row's coverage during it, so the reader can switch the index to a
//! phase) and the times it was collected.

use std::collections::BTreeMap;

use serde::Serialize;

/// A phase of the data: its bounds and each row's (statements, covered)
/// during it, by [`OwnerRow::id`](crate::model::OwnerRow::id). Rows that did
/// not run in the phase are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseCoverage {
    pub name: String,
    /// RFC 3339 times of its start and end marks (`None`: still open).
    pub started_at: String,
    pub ended_at: Option<String>,
    pub rows: BTreeMap<String, (u64, u64)>,
}

/// Phases and collection times of a site's data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// In start order.
    pub phases: Vec<PhaseCoverage>,
    /// Distinct collection times (`YYYY-MM-DDTHH:MM`, UTC) with the number of
    /// reports whose latest snapshot was taken then, oldest first.
    pub times: Vec<(String, usize)>,
}

/// A phase as the index's JSON carries it: rows by their position in the
/// index's `rows`.
#[derive(Debug, Serialize)]
pub(crate) struct PhaseJson {
    pub name: String,
    pub from: String,
    pub to: Option<String>,
    /// Row index → [statements, covered].
    pub rows: BTreeMap<usize, [u64; 2]>,
}

/// The index's history JSON: phases and collection times.
pub(crate) fn to_json(h: &History, row_ids: &[&str]) -> (Vec<PhaseJson>, Vec<(String, usize)>) {
    let pos: BTreeMap<&str, usize> = row_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let phases = h
        .phases
        .iter()
        .map(|p| PhaseJson {
            name: p.name.clone(),
            from: p.started_at.clone(),
            to: p.ended_at.clone(),
            rows: p
                .rows
                .iter()
                .filter_map(|(id, (t, c))| Some((*pos.get(id.as_str())?, [*t, *c])))
                .collect(),
        })
        .collect();
    (phases, h.times.clone())
}
