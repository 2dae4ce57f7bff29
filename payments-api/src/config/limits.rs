//! What one caller, and one connection, may take of the instance: open watch streams,
//! the mutation rate, HTTP/2 streams and keepalive (`PAYMENTS_WATCH_MAX_*`,
//! `PAYMENTS_RATE_LIMIT_*`, `PAYMENTS_HTTP2_*`).

use std::{num::NonZeroU32, time::Duration};

use payments_service_kit::Reader;

/// The caps that keep one caller from starving the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `PAYMENTS_WATCH_MAX_PER_USER`: open WatchTransaction streams per user token.
    pub watches_per_user: usize,
    /// `PAYMENTS_WATCH_MAX_STREAMS`: open WatchTransaction streams on this instance.
    pub watches_per_instance: usize,
    /// `PAYMENTS_RATE_LIMIT_PER_SEC` / `PAYMENTS_RATE_LIMIT_BURST`: mutations per user;
    /// `None` (a rate of 0) turns the limit off.
    pub mutations: Option<RateLimit>,
    /// `PAYMENTS_HTTP2_MAX_CONCURRENT_STREAMS`: concurrent calls per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// `PAYMENTS_HTTP2_KEEPALIVE_SECS`: idle HTTP/2 connections are pinged this often.
    pub keepalive_interval: Duration,
    /// `PAYMENTS_HTTP2_KEEPALIVE_TIMEOUT_SECS`: a ping unanswered this long closes the
    /// connection (and with it the streams of a client that vanished).
    pub keepalive_timeout: Duration,
}

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            watches_per_user: 16,
            watches_per_instance: 20_000,
            mutations: Some(RateLimit {
                per_second: NonZeroU32::MIN.saturating_add(4),
                burst: NonZeroU32::MIN.saturating_add(19),
            }),
            max_concurrent_streams: 256,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

pub(super) fn read(env: &mut Reader<'_>) -> LimitsConfig {
    let default = LimitsConfig::default();
    LimitsConfig {
        watches_per_user: env.positive("PAYMENTS_WATCH_MAX_PER_USER", default.watches_per_user),
        watches_per_instance: env
            .positive("PAYMENTS_WATCH_MAX_STREAMS", default.watches_per_instance),
        mutations: read_rate(env, default.mutations),
        max_concurrent_streams: env.positive(
            "PAYMENTS_HTTP2_MAX_CONCURRENT_STREAMS",
            default.max_concurrent_streams,
        ),
        keepalive_interval: env.seconds(
            "PAYMENTS_HTTP2_KEEPALIVE_SECS",
            default.keepalive_interval.as_secs(),
        ),
        keepalive_timeout: env.seconds(
            "PAYMENTS_HTTP2_KEEPALIVE_TIMEOUT_SECS",
            default.keepalive_timeout.as_secs(),
        ),
    }
}

/// A rate of 0 turns the limit off; a burst of 0 is a mistake.
fn read_rate(env: &mut Reader<'_>, default: Option<RateLimit>) -> Option<RateLimit> {
    let rate = default.map_or(0, |r| r.per_second.get());
    let burst = default.map_or(1, |r| r.burst.get());
    let per_second = env.parsed("PAYMENTS_RATE_LIMIT_PER_SEC", rate);
    let burst = env.parsed("PAYMENTS_RATE_LIMIT_BURST", burst);
    match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
        (None, _) => None,
        (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
        (Some(_), None) => {
            env.problem("PAYMENTS_RATE_LIMIT_BURST must be at least 1");
            None
        }
    }
}
