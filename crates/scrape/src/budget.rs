//! Bounds on what a coverage server's answers may cost the collector.
//!
//! Every answer is untrusted: its size is bounded per snapshot
//! ([`Limits::max_snapshot`], applied to the body as sent *and* after gzip
//! decompression) and the bytes of all answers being read at once are
//! bounded together by a [`MemoryBudget`] shared by every fetch of a run.
//!
//! A fetch first reserves a small share of the budget (waiting for it while
//! holding nothing), grows its reservation without waiting while the body
//! arrives, and when the budget cannot grow it, gives everything back and
//! tries once more with a reservation large enough for the biggest
//! acceptable answer. Reservations are only ever waited for while holding
//! none, so fetches cannot deadlock each other.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default largest snapshot, decompressed (a meta-data file of a very large
/// binary is tens of MiB, base64 adds a third).
pub const DEFAULT_MAX_SNAPSHOT: u64 = 256 << 20;
/// Default bytes of answers held in memory at once, across all targets.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 1 << 30;
/// First reservation of a fetch; most snapshots fit.
const INITIAL_RESERVATION: u64 = 16 << 20;
/// Budget accounting unit.
const UNIT: u64 = 1 << 10;

/// Size limits of a run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest answer body, as sent and after decompression (`--max-snapshot-size`).
    pub max_snapshot: u64,
    /// Shared budget of answer bytes in memory (`--max-in-flight`).
    pub budget: MemoryBudget,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_snapshot: DEFAULT_MAX_SNAPSHOT,
            budget: MemoryBudget::new(DEFAULT_MAX_IN_FLIGHT),
        }
    }
}

/// Limits that cannot work together, or a size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `--max-snapshot-size 0`.
    #[error("--max-snapshot-size must be more than 0")]
    ZeroSnapshot,
    /// The budget cannot hold one snapshot.
    #[error("--max-in-flight ({budget}) must be at least --max-snapshot-size ({snapshot})")]
    BudgetTooSmall { budget: String, snapshot: String },
    /// Not a size such as `256MiB`.
    #[error("not a size: {0:?} (e.g. 256MiB, 1GiB, 65536)")]
    Size(String),
}

impl Limits {
    /// The limits, checking that one snapshot fits the budget.
    pub fn new(max_snapshot: u64, max_in_flight: u64) -> Result<Limits, LimitError> {
        if max_snapshot == 0 {
            return Err(LimitError::ZeroSnapshot);
        }
        if max_in_flight < max_snapshot {
            return Err(LimitError::BudgetTooSmall {
                budget: format_size(max_in_flight),
                snapshot: format_size(max_snapshot),
            });
        }
        Ok(Limits {
            max_snapshot,
            budget: MemoryBudget::new(max_in_flight),
        })
    }
}

/// Bytes of answers that may be held at once by all fetches of a run.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    sem: Arc<Semaphore>,
    units: u64,
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> MemoryBudget {
        // Semaphore permits are u32 / usize-bounded: 4 TiB in KiB units is plenty.
        let units = units(bytes).clamp(1, u64::from(u32::MAX >> 2));
        MemoryBudget {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// The budget's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.units * UNIT
    }

    /// Bytes not reserved right now (for tests and messages).
    pub fn available(&self) -> u64 {
        self.sem.available_permits() as u64 * UNIT
    }

    /// Waits until `bytes` (capped at the whole budget) can be reserved.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let n = units(bytes).clamp(1, self.units);
        let permit = self.sem.clone().acquire_many_owned(n as u32).await.ok();
        Reservation {
            sem: self.sem.clone(),
            held: permit.as_ref().map_or(0, |p| p.num_permits() as u64),
            permit,
        }
    }

    /// The first reservation of a fetch.
    pub async fn reserve_initial(&self, max_snapshot: u64) -> Reservation {
        self.reserve(INITIAL_RESERVATION.min(max_snapshot.saturating_mul(2)))
            .await
    }
}

/// Part of a [`MemoryBudget`] held by one fetch; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    sem: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    held: u64,
}

impl Reservation {
    /// Makes the reservation cover `bytes`, without waiting; false when the
    /// budget has not that much left.
    pub fn ensure(&mut self, bytes: u64) -> bool {
        let want = units(bytes);
        if want <= self.held {
            return true;
        }
        let more = want - self.held;
        let Ok(more_u32) = u32::try_from(more) else {
            return false;
        };
        match self.sem.clone().try_acquire_many_owned(more_u32) {
            Ok(p) => {
                match &mut self.permit {
                    Some(held) => held.merge(p),
                    None => self.permit = Some(p),
                }
                self.held = want;
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> u64 {
        self.held * UNIT
    }
}

/// What one answer may use while it is read: at most `max` bytes, counted
/// against a shared reservation.
#[derive(Debug, Clone)]
pub struct BodyLimit {
    pub max: u64,
    pub reservation: Option<Arc<Mutex<Reservation>>>,
}

impl Default for BodyLimit {
    fn default() -> Self {
        BodyLimit {
            max: DEFAULT_MAX_SNAPSHOT,
            reservation: None,
        }
    }
}

/// Why an answer was not read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// More than `max` bytes.
    Size,
    /// The shared budget could not cover it right now.
    Budget,
}

impl BodyLimit {
    /// Accounts `total` bytes held by this answer; `extra` are bytes the
    /// fetch holds besides (the compressed body while decompressing).
    pub fn check(&self, total: u64, extra: u64) -> Result<(), Exceeded> {
        if total > self.max {
            return Err(Exceeded::Size);
        }
        if let Some(r) = &self.reservation {
            let mut r = r.lock().unwrap_or_else(|p| p.into_inner());
            if !r.ensure(total.saturating_add(extra)) {
                return Err(Exceeded::Budget);
            }
        }
        Ok(())
    }
}

/// `1.5 GiB`, `256 MiB`, `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {name}", bytes / size)
            } else {
                format!("{:.1} {name}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

/// Parses `256MiB`, `1GiB`, `64M`, `10k`, `1048576` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, LimitError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| LimitError::Size(s.to_string()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(LimitError::Size(s.to_string())),
    };
    n.checked_mul(mult)
        .ok_or_else(|| LimitError::Size(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1x").is_err());
        assert_eq!(format_size(256 << 20), "256 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reservations_grow_without_waiting_and_give_back() {
        let b = MemoryBudget::new(64 << 10);
        let mut r = b.reserve(8 << 10).await;
        assert!(r.ensure(32 << 10));
        assert!(!r.ensure(128 << 10), "more than the budget");
        let mut other = b.reserve(16 << 10).await;
        assert!(!other.ensure(40 << 10), "only 32 KiB are left for both");
        drop(r);
        assert!(other.ensure(40 << 10));
        drop(other);
        assert_eq!(b.available(), 64 << 10);
    }
}
