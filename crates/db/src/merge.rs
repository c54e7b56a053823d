//! Counting semantics on dense counter vectors.
//!
//! - Snapshots of one process only grow: keep the latest, i.e. the one that
//!   dominates the others (every counter ≥). Snapshots that do not dominate
//!   each other cannot come from one process (a reused PID, e.g. PID 1 after
//!   a container restart): they are kept apart as separate processes.
//! - Different processes add (OR in `set` mode, saturating sums otherwise).
//! - Replicas (instances) of one owner merge with max by default, or sum.

use covdata::CounterMode;

/// How the counts of an owner's instances (replicas) combine: `compile
/// --merge max|sum`. Not to be confused with `covdata::ModeMergePolicy`, which
/// says what to do when counter modes disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaMerge {
    /// Per block, the highest count of any instance (the seed's choice).
    #[default]
    Max,
    /// Per block, the total over all instances.
    Sum,
}

impl ReplicaMerge {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaMerge::Max => "max",
            ReplicaMerge::Sum => "sum",
        }
    }

    pub fn parse(s: &str) -> Option<ReplicaMerge> {
        match s {
            "max" => Some(ReplicaMerge::Max),
            "sum" => Some(ReplicaMerge::Sum),
            _ => None,
        }
    }
}

/// True when every counter of `a` is ≥ the one of `b`.
pub fn dominates(a: &[u32], b: &[u32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x >= y)
}

/// Reduces snapshots that share a PID to the latest snapshot of each
/// process: returns (counters, snapshots folded into it).
pub fn latest_per_process(mut snaps: Vec<(Vec<u32>, u32)>) -> Vec<(Vec<u32>, u32)> {
    snaps.sort_by_cached_key(|(v, _)| v.iter().map(|&c| u64::from(c)).sum::<u64>());
    let mut heads: Vec<(Vec<u32>, u32)> = Vec::new();
    for (s, n) in snaps {
        match heads.iter_mut().find(|(h, _)| dominates(&s, h)) {
            Some(h) => {
                h.0 = s;
                h.1 += n;
            }
            None => heads.push((s, n)),
        }
    }
    heads
}

/// Adds `v` into `acc` (different processes): OR for `set`, else saturating.
pub fn add_into(acc: &mut [u32], v: &[u32], mode: CounterMode) {
    if mode == CounterMode::SET {
        for (a, &b) in acc.iter_mut().zip(v) {
            *a = u32::from(*a != 0 || b != 0);
        }
    } else {
        for (a, &b) in acc.iter_mut().zip(v) {
            *a = a.saturating_add(b);
        }
    }
}

/// Merges `v` into `acc` across instances.
pub fn merge_into(acc: &mut [u32], v: &[u32], merge: ReplicaMerge, mode: CounterMode) {
    match merge {
        ReplicaMerge::Max => {
            for (a, &b) in acc.iter_mut().zip(v) {
                *a = (*a).max(b);
            }
        }
        ReplicaMerge::Sum => add_into(acc, v, mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_of_one_process_keep_the_latest() {
        let heads = latest_per_process(vec![
            (vec![1, 2, 0], 1),
            (vec![3, 2, 1], 1),
            (vec![1, 0, 0], 1),
        ]);
        assert_eq!(heads, vec![(vec![3, 2, 1], 3)]);
    }

    #[test]
    fn incomparable_snapshots_are_separate_processes() {
        let mut heads = latest_per_process(vec![(vec![5, 0], 1), (vec![0, 1], 1), (vec![6, 0], 1)]);
        heads.sort();
        assert_eq!(heads, vec![(vec![0, 1], 1), (vec![6, 0], 2)]);
    }

    #[test]
    fn add_and_merge() {
        let mut a = vec![1, u32::MAX, 0];
        add_into(&mut a, &[2, 5, 0], CounterMode::ATOMIC);
        assert_eq!(a, vec![3, u32::MAX, 0]);
        let mut s = vec![1, 0, 0];
        add_into(&mut s, &[1, 1, 0], CounterMode::SET);
        assert_eq!(s, vec![1, 1, 0]);
        let mut m = vec![4, 1];
        merge_into(&mut m, &[2, 7], ReplicaMerge::Max, CounterMode::COUNT);
        assert_eq!(m, vec![4, 7]);
        merge_into(&mut m, &[2, 7], ReplicaMerge::Sum, CounterMode::COUNT);
        assert_eq!(m, vec![6, 14]);
    }
}
