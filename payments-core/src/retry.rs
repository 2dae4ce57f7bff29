//! The retry budget shared by stored events and outbox calls: exponential backoff
//! from `base`, capped at `max_backoff`, dead after `max_attempts`.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; each further attempt doubles it.
    pub base: Duration,
    pub max_backoff: Duration,
    /// Attempts (including the first) before the work is dead-lettered.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// 1 s doubling to an hour, 20 attempts (about nine hours in all): the ingestor's
    /// default, and the budget an operator's replay gives an event it cannot apply yet.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(1),
        max_backoff: Duration::from_secs(3_600),
        max_attempts: 20,
    };

    /// The wait before the next attempt, given how many attempts have been made
    /// (this one included); None when the budget is spent.
    pub fn backoff(&self, attempts_made: u32) -> Option<Duration> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        let doublings = attempts_made.saturating_sub(1).min(31);
        let wait = self.base.saturating_mul(1u32 << doublings);
        Some(wait.min(self.max_backoff))
    }

    /// [`Self::backoff`] as a point in time from `now`.
    pub fn next_attempt_at(
        &self,
        attempts_made: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let wait = self.backoff(attempts_made)?;
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        Some(
            now.checked_add_signed(wait)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
        max_attempts: 6,
    };

    #[test]
    fn waits_double_from_the_base_up_to_the_cap() {
        let waits: Vec<_> = (1..6).filter_map(|n| POLICY.backoff(n)).collect();
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10]);
    }

    #[test]
    fn the_budget_ends_after_max_attempts() {
        assert!(POLICY.backoff(5).is_some());
        assert_eq!(POLICY.backoff(6), None);
        assert_eq!(POLICY.backoff(u32::MAX), None);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let generous = RetryPolicy {
            max_attempts: u32::MAX,
            ..POLICY
        };
        assert_eq!(generous.backoff(1_000), Some(Duration::from_secs(10)));
        assert!(
            generous
                .next_attempt_at(1_000, chrono::Utc::now())
                .is_some()
        );
    }
}
