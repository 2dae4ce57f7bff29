//! [`RetryPolicy`]: how often and how patiently a call is sent again after an answer
//! that says "try again" (UNAVAILABLE, or RESOURCE_EXHAUSTED with a RetryInfo delay).
//! The call is sent again unchanged, so a mutation keeps its idempotency key and its
//! retry returns the transaction the first attempt created.

use std::{future::Future, time::Duration};

use rand::Rng;

use crate::Error;

/// Bounded retries with exponential backoff and jitter; a delay the server asks for
/// (RetryInfo) is honoured instead of the backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles after each.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A server asking for a longer wait than this gets its error passed on instead.
    pub max_server_delay: Duration,
    /// A watch's attempts to open its stream again in a row without a message before
    /// it gives up: more than a unary call gets, since awaiting a payment should
    /// survive a payments-api deploy.
    pub max_watch_attempts: u32,
}

impl Default for RetryPolicy {
    /// Five attempts over 0.75 s to 1.5 s (backoff 100 ms doubling, up to 5 s); a
    /// watch tries to reopen ten times, over 10 s to 21 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_server_delay: Duration::from_secs(30),
            max_watch_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// One attempt only.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before attempt `failures + 1` of a unary call, after `failures` failed
    /// ones: the server's delay when it sent one, else [`RetryPolicy::backoff`].
    /// `None`: give up.
    pub(crate) fn delay(&self, failures: u32, server: Option<Duration>) -> Option<Duration> {
        if failures >= self.max_attempts {
            return None;
        }
        match server {
            Some(asked) => (asked <= self.max_server_delay).then_some(asked),
            None => Some(self.backoff(failures)),
        }
    }

    /// The backoff after `failures` failed attempts, with "equal jitter": half fixed,
    /// half random, so retries of many clients spread out yet none comes back at once.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let backoff = self
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        let half = backoff / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros().max(1) as u64);
        half + Duration::from_micros(jitter)
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy gives up.
pub(crate) async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut failures = 0;
    loop {
        let error = match attempt().await {
            Ok(answer) => return Ok(answer),
            Err(Error::Rpc(e)) if e.is_retryable() => e,
            Err(other) => return Err(other),
        };
        failures += 1;
        let Some(wait) = policy.delay(failures, error.retry_delay) else {
            return Err(Error::Rpc(error));
        };
        tracing::warn!(call = what, code = ?error.code, message = %error.message, attempt = failures, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tonic::{Code, Status};

    use super::*;

    #[test]
    fn the_backoff_doubles_within_its_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            ..RetryPolicy::default()
        };
        for (failures, full) in [(1, 100), (2, 200), (3, 400), (7, 5_000), (9, 5_000)] {
            for _ in 0..50 {
                let wait = policy.delay(failures, None).expect("retries");
                let full = Duration::from_millis(full);
                assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?}");
            }
        }
        assert_eq!(policy.delay(10, None), None, "the budget is spent");
    }

    #[test]
    fn the_server_delay_wins_unless_it_is_too_long() {
        let policy = RetryPolicy::default();
        let asked = Duration::from_secs(2);
        assert_eq!(policy.delay(1, Some(asked)), Some(asked));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(31))), None);
    }

    #[tokio::test(start_paused = true)]
    async fn only_retryable_answers_are_sent_again_and_at_most_max_attempts_times() {
        let policy = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let unavailable = retrying(&policy, "test", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(Error::from(Status::unavailable("down")))
        })
        .await;
        assert_eq!(
            unavailable.expect_err("gives up").code(),
            Some(Code::Unavailable)
        );
        assert_eq!(calls.swap(0, Ordering::Relaxed), 5);

        let refused = retrying(&policy, "test", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(Error::from(Status::failed_precondition("no")))
        })
        .await;
        assert_eq!(
            refused.expect_err("fails").code(),
            Some(Code::FailedPrecondition)
        );
        assert_eq!(calls.swap(0, Ordering::Relaxed), 1);

        let recovered = retrying(&policy, "test", || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err(Error::from(Status::unavailable("down"))),
                _ => Ok("answer"),
            }
        })
        .await;
        assert_eq!(recovered.expect("the third attempt answers"), "answer");
    }
}
