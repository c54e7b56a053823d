//! The adaptive polling schedule of `--watch` (from the seed's node
//! collector): every 1 s for the first 10 s of a process's life under
//! observation, every 5 s until 5 min, then every 10 s.

use std::time::Duration;

/// The interval before the next poll, given how long the process has been
/// observed.
pub fn interval(observed_for: Duration) -> Duration {
    if observed_for < Duration::from_secs(10) {
        Duration::from_secs(1)
    } else if observed_for < Duration::from_secs(5 * 60) {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(10)
    }
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
}
