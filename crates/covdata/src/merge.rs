//! Counter merging with Go's semantics (`internal/coverage/cmerge`).

use crate::meta::{CounterGranularity, CounterMode};

/// What a merge does when its inputs disagree on the counter mode (Go's
/// `cmerge.ModeMergePolicy`). Not to be confused with `db::ReplicaMerge`,
/// which says how the counts of an owner's replicas combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeMergePolicy {
    /// Different modes are an error (`textfmt`, `subtract`, `intersect`).
    #[default]
    Strict,
    /// The mode upgrades to the larger one (`percent`, `func`, `pkglist`, `merge`).
    Relaxed,
}

/// Adds two counters, clamping at `u32::MAX`; the flag says it clamped.
#[inline]
pub fn saturating_add(dst: u32, src: u32) -> (u32, bool) {
    match dst.checked_add(src) {
        Some(v) => (v, false),
        None => (u32::MAX, true),
    }
}

/// A mode clash or a counter length mismatch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error(
        "counter granularity clash while reading meta-data file {file}: previous file had {prev}, new file has {new}"
    )]
    Granularity {
        file: String,
        prev: CounterGranularity,
        new: CounterGranularity,
    },
    #[error(
        "counter mode clash while reading meta-data file {file}: previous file had {prev}, new file has {new}"
    )]
    Mode {
        file: String,
        prev: CounterMode,
        new: CounterMode,
    },
    #[error("merging counters: len(dst)={dst} len(src)={src}")]
    Length { dst: usize, src: usize },
}

/// Go's `cmerge.Merger`: tracks the mode and merges counter vectors.
#[derive(Debug, Clone, Default)]
pub struct Merger {
    mode: CounterMode,
    granularity: CounterGranularity,
    policy: ModeMergePolicy,
}

impl Merger {
    pub fn new(policy: ModeMergePolicy) -> Self {
        Merger {
            policy,
            ..Default::default()
        }
    }

    pub fn mode(&self) -> CounterMode {
        self.mode
    }

    pub fn granularity(&self) -> CounterGranularity {
        self.granularity
    }

    /// Records the mode of the next meta-data file, applying the policy.
    pub fn set_mode_and_granularity(
        &mut self,
        file: &str,
        mode: CounterMode,
        granularity: CounterGranularity,
    ) -> Result<(), MergeError> {
        if self.mode == CounterMode::INVALID {
            self.mode = mode;
            self.granularity = granularity;
            return Ok(());
        }
        if self.granularity != granularity {
            return Err(MergeError::Granularity {
                file: file.into(),
                prev: self.granularity,
                new: granularity,
            });
        }
        if self.mode != mode {
            if self.policy == ModeMergePolicy::Strict {
                return Err(MergeError::Mode {
                    file: file.into(),
                    prev: self.mode,
                    new: mode,
                });
            }
            if self.mode < mode {
                self.mode = mode;
            }
        }
        Ok(())
    }

    pub fn reset(&mut self) {
        self.mode = CounterMode::INVALID;
        self.granularity = CounterGranularity::INVALID;
    }

    /// Merges `src` into `dst` (equal lengths required): OR in set mode,
    /// saturating add otherwise. Returns whether any counter saturated.
    pub fn merge_counters(&self, dst: &mut [u32], src: &[u32]) -> Result<bool, MergeError> {
        if dst.len() != src.len() {
            return Err(MergeError::Length {
                dst: dst.len(),
                src: src.len(),
            });
        }
        Ok(merge_into(self.mode, dst, src))
    }
}

/// Merges `src` into the prefix of `dst` in the given mode; returns overflow.
#[inline]
pub fn merge_into(mode: CounterMode, dst: &mut [u32], src: &[u32]) -> bool {
    let mut overflow = false;
    if mode == CounterMode::SET {
        for (d, &s) in dst.iter_mut().zip(src) {
            if s != 0 {
                *d = 1;
            }
        }
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            let (v, o) = saturating_add(*d, s);
            *d = v;
            overflow |= o;
        }
    }
    overflow
}
