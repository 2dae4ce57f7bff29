//! Fault injection for API requests (`/v1/*`), to exercise the clients' retries and timeouts.
//!
//! - A *failure* rejects the request before it runs (nothing changes, nothing is stored for its
//!   idempotency key) with a 5xx `api_error` and `Stripe-Should-Retry: true`.
//! - A *delay* holds the response after the request ran: the change happened, the client may
//!   time out, and a retry with the same `Idempotency-Key` replays the stored result.
//!
//! Rules can be limited to a path prefix; rate-based failures and delays draw from a seeded RNG.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
enum Kind {
    Fail(StatusCode),
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    path_prefix: Option<String>,
    kind: Kind,
    /// `Some(n)`: applies to the next `n` matching requests; `None`: to every one (subject to `rate`).
    remaining: Option<u32>,
    /// Probability of applying to a matching request.
    rate: f64,
}

struct Inner {
    rules: Vec<Rule>,
    rng: StdRng,
    injected: u64,
}

/// Handle to a simulator's fault rules. Cheap to clone; all clones share the rules.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
    path_prefix: Option<String>,
}

/// What to do with one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub fail: Option<StatusCode>,
    pub delay: Duration,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        let inner = Inner {
            rules: Vec::new(),
            rng: StdRng::seed_from_u64(seed ^ 0xFA17),
            injected: 0,
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            path_prefix: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add(&self, kind: Kind, remaining: Option<u32>, rate: f64) {
        let rule = Rule {
            path_prefix: self.path_prefix.clone(),
            kind,
            remaining,
            rate: rate.clamp(0.0, 1.0),
        };
        self.lock().rules.push(rule);
    }

    /// Rules added through the returned handle apply only to paths starting with `prefix`
    /// (for example `/v1/payment_intents`).
    pub fn scope(&self, prefix: impl Into<String>) -> Faults {
        Faults {
            inner: Arc::clone(&self.inner),
            path_prefix: Some(prefix.into()),
        }
    }

    /// The next `n` requests fail with 500.
    pub fn fail_next(&self, n: u32) {
        self.fail_next_with_status(n, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// The next `n` requests fail with `status` (e.g. 503, 429).
    pub fn fail_next_with_status(&self, n: u32, status: StatusCode) {
        self.add(Kind::Fail(status), Some(n), 1.0);
    }

    /// Every request fails with 500 with probability `rate` (seeded, so reproducible).
    pub fn fail_rate(&self, rate: f64) {
        self.add(Kind::Fail(StatusCode::INTERNAL_SERVER_ERROR), None, rate);
    }

    /// The responses to the next `n` requests are held for `delay` after the request ran.
    pub fn delay_next(&self, n: u32, delay: Duration) {
        self.add(Kind::Delay(delay), Some(n), 1.0);
    }

    /// Every response is held for `delay`.
    pub fn delay_all(&self, delay: Duration) {
        self.add(Kind::Delay(delay), None, 1.0);
    }

    /// Every response is held for `delay` with probability `rate` (seeded, so reproducible):
    /// held past a client's timeout, the request ran but its answer is lost.
    pub fn delay_rate(&self, rate: f64, delay: Duration) {
        self.add(Kind::Delay(delay), None, rate);
    }

    /// Removes every rule (of every scope).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many requests a rule has failed or delayed so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// Applies the rules to a request for `path`, consuming counted rules.
    pub(crate) fn decide(&self, path: &str) -> Decision {
        let mut inner = self.lock();
        let Inner {
            rules,
            rng,
            injected,
        } = &mut *inner;
        let mut decision = Decision::default();
        for rule in rules.iter_mut() {
            if rule
                .path_prefix
                .as_deref()
                .is_some_and(|prefix| !path.starts_with(prefix))
            {
                continue;
            }
            if rule.remaining == Some(0) {
                continue;
            }
            if rule.rate < 1.0 && rng.random::<f64>() >= rule.rate {
                continue;
            }
            match rule.kind {
                Kind::Fail(_) if decision.fail.is_some() => continue,
                Kind::Fail(status) => decision.fail = Some(status),
                Kind::Delay(delay) => decision.delay += delay,
            }
            if let Some(remaining) = rule.remaining.as_mut() {
                *remaining -= 1;
            }
        }
        rules.retain(|rule| rule.remaining != Some(0));
        if decision.fail.is_some() || !decision.delay.is_zero() {
            *injected += 1;
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_fails_exactly_n_requests() {
        let faults = Faults::new(1);
        faults.fail_next(2);
        let failed: Vec<bool> = (0..4)
            .map(|_| faults.decide("/v1/customers").fail.is_some())
            .collect();
        assert_eq!(failed, [true, true, false, false]);
        assert_eq!(faults.injected(), 2);
    }

    #[test]
    fn a_scoped_rule_ignores_other_paths() {
        let faults = Faults::new(1);
        faults
            .scope("/v1/payment_intents")
            .fail_next_with_status(1, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(faults.decide("/v1/customers").fail, None);
        assert_eq!(
            faults.decide("/v1/payment_intents/pi_1").fail,
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(faults.decide("/v1/payment_intents/pi_1").fail, None);
    }

    #[test]
    fn rate_based_failures_are_reproducible_with_the_seed() {
        let run = |seed| {
            let faults = Faults::new(seed);
            faults.fail_rate(0.5);
            (0..64)
                .map(|_| faults.decide("/v1/x").fail.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        let failures = run(9).iter().filter(|f| **f).count();
        assert!((16..48).contains(&failures), "{failures}");
    }

    #[test]
    fn rate_based_delays_hold_some_responses_only() {
        let faults = Faults::new(3);
        faults.delay_rate(0.25, Duration::from_millis(40));
        let held = (0..200)
            .filter(|_| faults.decide("/v1/x").delay == Duration::from_millis(40))
            .count();
        assert!((20..80).contains(&held), "{held}");
        assert_eq!(faults.injected(), held as u64);
    }

    #[test]
    fn delays_add_up_and_clear_removes_them() {
        let faults = Faults::new(1);
        faults.delay_all(Duration::from_millis(10));
        faults.delay_next(1, Duration::from_millis(5));
        assert_eq!(faults.decide("/v1/x").delay, Duration::from_millis(15));
        assert_eq!(faults.decide("/v1/x").delay, Duration::from_millis(10));
        faults.clear();
        assert_eq!(faults.decide("/v1/x"), Decision::default());
    }
}
