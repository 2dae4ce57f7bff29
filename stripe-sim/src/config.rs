//! Everything that can be configured, as one typed struct. The library builder and the binary's
//! flags both fill a [`Config`]; [`Config::validate`] reports every problem at once.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A webhook signing secret (`whsec_…`). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The full secret string; its bytes are the HMAC key, as Stripe uses them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(6).collect();
        write!(f, "WebhookSecret({prefix}…)")
    }
}

/// Webhook chaos: every knob is decided per event from `seed` and the event's sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    /// Probability (0..=1) that an event is delivered twice.
    pub duplicate_rate: f64,
    /// Probability (0..=1) that an event is never delivered (it is still listed by `GET /v1/events`).
    pub drop_rate: f64,
    /// Each delivery is held a random time in `[0, reorder_window)`, so events overtake each other.
    pub reorder_window: Duration,
    /// A fixed extra delay before every delivery.
    pub delay: Duration,
}

impl Default for Chaos {
    fn default() -> Self {
        Self {
            duplicate_rate: 0.0,
            drop_rate: 0.0,
            reorder_window: Duration::ZERO,
            delay: Duration::ZERO,
        }
    }
}

/// The full configuration of one simulator.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub webhook_urls: Vec<String>,
    pub webhook_secrets: Vec<WebhookSecret>,
    /// Seeds ids, client secrets, chaos and rate-based faults. `None` picks one at random.
    pub seed: Option<u64>,
    pub chaos: Chaos,
    /// Waits between delivery attempts: `retry_schedule.len() + 1` attempts in all.
    pub retry_schedule: Vec<Duration>,
    /// Per-attempt timeout of a webhook POST.
    pub webhook_timeout: Duration,
    /// Webhook POSTs in flight at once.
    pub max_concurrent_deliveries: usize,
    /// Accept live-mode keys (`sk_live_…`, `rk_live_…`). Their requests run against a separate
    /// live-mode account whose objects and events carry `livemode: true`; its events go to the
    /// same endpoints, as when a live endpoint points at a test receiver. Off by default, so a
    /// live key sent here by mistake is refused.
    pub livemode: bool,
    /// Events each mode keeps listable by `GET /v1/events` (and never older than 30 days, as
    /// on Stripe); older ones are forgotten, so memory stays bounded on long runs.
    pub event_retention: u32,
}

impl Config {
    /// Defaults for tests: port 0, fast retries (100 ms doubling, 10 attempts).
    pub fn for_tests() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_urls: Vec::new(),
            webhook_secrets: Vec::new(),
            seed: None,
            chaos: Chaos::default(),
            retry_schedule: doubling(Duration::from_millis(100), 9),
            webhook_timeout: Duration::from_secs(5),
            max_concurrent_deliveries: 64,
            livemode: false,
            event_retention: DEFAULT_EVENT_RETENTION,
        }
    }

    /// Defaults for the binary: port 12111, slower retries (1 s doubling, 10 attempts).
    pub fn for_binary() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 12111)),
            retry_schedule: doubling(Duration::from_secs(1), 9),
            webhook_timeout: Duration::from_secs(10),
            ..Self::for_tests()
        }
    }

    /// Every problem in the configuration, or `Ok`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (name, rate) in [
            ("duplicate_rate", self.chaos.duplicate_rate),
            ("drop_rate", self.chaos.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        for url in &self.webhook_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!(
                    "webhook url {url:?} must start with http:// or https://"
                ));
            }
        }
        if self.webhook_secrets.iter().any(|s| s.expose().is_empty()) {
            problems.push("a webhook secret is empty".to_owned());
        }
        if self.max_concurrent_deliveries == 0 {
            problems.push("max_concurrent_deliveries must be at least 1".to_owned());
        }
        if self.event_retention == 0 {
            problems.push("event_retention must be at least 1".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }
}

/// Events kept per mode by default: far more than any test reads back, and a few hundred
/// megabytes at most (an event is 2–5 KB of JSON).
pub const DEFAULT_EVENT_RETENTION: u32 = 50_000;

/// `first`, `2 × first`, … (`count` waits).
pub fn doubling(first: Duration, count: u32) -> Vec<Duration> {
    (0..count).map(|i| first.saturating_mul(1 << i)).collect()
}

/// All configuration problems found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_together() {
        let mut config = Config::for_tests();
        config.chaos.drop_rate = 2.0;
        config.chaos.duplicate_rate = -1.0;
        config.webhook_urls.push("ftp://x".into());
        let error = config.validate().expect_err("invalid");
        assert_eq!(error.0.len(), 3, "{error}");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret = WebhookSecret::new("whsec_verysecretvalue");
        assert!(!format!("{secret:?}").contains("verysecret"));
    }

    #[test]
    fn the_default_schedule_doubles() {
        assert_eq!(
            doubling(Duration::from_millis(100), 3),
            [100, 200, 400].map(Duration::from_millis)
        );
    }
}
