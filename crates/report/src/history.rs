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
    /// Row index → the row's page in the phase's own site
    /// ([`phase_dir`]`/b/<slug>.html`, relative to the index).
    pub pages: BTreeMap<usize, String>,
}

/// Where a phase's own site goes, relative to the main site: `phase/<name>`
/// (`covfleet render` writes one per phase; names are `[A-Za-z0-9._-]`).
pub fn phase_dir(name: &str) -> String {
    format!("phase/{name}")
}

/// The index's history JSON: phases and collection times.
pub(crate) fn to_json(
    h: &History,
    rows: &[crate::model::OwnerRow],
) -> (Vec<PhaseJson>, Vec<(String, usize)>) {
    let pos: BTreeMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let phases = h
        .phases
        .iter()
        .map(|p| {
            // The phase's site names its pages as render names any site's:
            // the same rows in the same order, only those that ran.
            let mut used = std::collections::HashSet::new();
            let mut pages = BTreeMap::new();
            for (i, r) in rows.iter().enumerate() {
                if !p.rows.contains_key(&r.id) {
                    continue;
                }
                let mut slug = crate::site::page_slug(r);
                while !used.insert(slug.clone()) {
                    slug.push('_');
                }
                pages.insert(i, format!("{}/b/{slug}.html", phase_dir(&p.name)));
            }
            PhaseJson {
                name: p.name.clone(),
                from: p.started_at.clone(),
                to: p.ended_at.clone(),
                rows: p
                    .rows
                    .iter()
                    .filter_map(|(id, (t, c))| Some((*pos.get(id.as_str())?, [*t, *c])))
                    .collect(),
                pages,
            }
        })
        .collect();
    (phases, h.times.clone())
}
