//! The adaptive polling schedule of `--watch` and the node agent (from the
//! seed's node collector): every 1 s for the first 10 s of a process's life
//! under observation, every 5 s until 5 min, then every 10 s.
//!
//! [`Schedule`] makes the steps configurable (`1s:10s,5s:5m,10s`);
//! [`interval`] is the default schedule.

use std::time::Duration;

/// A polling schedule: `(interval, until)` steps, then a steady interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Poll every `.0` while the process has been observed for less than `.1`.
    pub steps: Vec<(Duration, Duration)>,
    /// The interval after the last step.
    pub steady: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            steps: vec![
                (Duration::from_secs(1), Duration::from_secs(10)),
                (Duration::from_secs(5), Duration::from_secs(5 * 60)),
            ],
            steady: Duration::from_secs(10),
        }
    }
}

impl Schedule {
    /// The interval before the next poll, given how long the process has
    /// been observed.
    pub fn interval(&self, observed_for: Duration) -> Duration {
        self.steps
            .iter()
            .find(|(_, until)| observed_for < *until)
            .map_or(self.steady, |(every, _)| *every)
    }

    /// Parses `EVERY:UNTIL,…,STEADY` (humantime durations), e.g.
    /// `1s:10s,5s:5m,10s`. Intervals must be positive and the `UNTIL`s
    /// increasing.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let dur = |s: &str| -> Result<Duration, String> {
            let d = humantime::parse_duration(s)
                .map_err(|e| format!("schedule {text:?}: {s:?}: {e}"))?;
            Ok(d)
        };
        let Some((last, steps)) = parts.split_last() else {
            return Err(format!("schedule {text:?} is empty"));
        };
        let steady = dur(last)?;
        if last.contains(':') || steady.is_zero() {
            return Err(format!(
                "schedule {text:?}: the last part must be one positive interval"
            ));
        }
        let mut out = Vec::new();
        let mut prev = Duration::ZERO;
        for step in steps {
            let Some((every, until)) = step.split_once(':') else {
                return Err(format!(
                    "schedule {text:?}: {step:?} is not EVERY:UNTIL (e.g. 1s:10s)"
                ));
            };
            let (every, until) = (dur(every)?, dur(until)?);
            if every.is_zero() || until <= prev {
                return Err(format!(
                    "schedule {text:?}: {step:?}: intervals must be positive and the UNTILs increasing"
                ));
            }
            prev = until;
            out.push((every, until));
        }
        Ok(Schedule { steps: out, steady })
    }
}

/// The interval before the next poll on the default schedule.
pub fn interval(observed_for: Duration) -> Duration {
    Schedule::default().interval(observed_for)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(interval(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            interval(Duration::from_millis(9_999)),
            Duration::from_secs(1)
        );
        assert_eq!(interval(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(interval(Duration::from_secs(299)), Duration::from_secs(5));
        assert_eq!(interval(Duration::from_secs(300)), Duration::from_secs(10));
        assert_eq!(
            interval(Duration::from_secs(86_400)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn parse_round_trips_the_default_and_rejects_nonsense() {
        assert_eq!(
            Schedule::parse("1s:10s, 5s:5m, 10s").unwrap(),
            Schedule::default()
        );
        let s = Schedule::parse("30s").unwrap();
        assert_eq!(s.interval(Duration::ZERO), Duration::from_secs(30));
        for bad in ["", "1s:10s", "0s", "1s:10s,5s:5s,10s", "x:1s,1s", "1s:x,1s"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
