//! Prometheus metrics, one mechanism for both services, on `prometheus-client` (the
//! Prometheus project's own Rust client, OpenMetrics text exposition).
//!
//! A service builds one [`MetricsRegistry`], registers its metrics in
//! [`MetricsRegistry::registry`] at start-up, and serves [`route`] at `GET /metrics`.
//! The process metrics ([`process`]) come with every registry; [`RpcMetrics`] counts
//! and times gRPC calls (through [`RpcLayer`](crate::rpc::RpcLayer)); [`PoolCollector`]
//! reads a database pool's usage at scrape time.
//!
//! # Naming
//!
//! - Every metric the services define is `payments_<subject>_<unit>`, whichever
//!   service exports it (the registry adds the `payments_` prefix): a dashboard tells
//!   the services apart by the `job` / `service` target labels, never by the name.
//! - Units are base units in the name: `_seconds`, `_bytes`; counters end in `_total`
//!   (the encoder adds it), ages are gauges in seconds (`…_age_seconds`), points in
//!   time are `…_timestamp_seconds`.
//! - Labels are snake_case and take a small, fixed set of values (an enum's labels,
//!   an RPC's name, a gRPC code name); never an id, an amount or free text.
//! - The process metrics keep the names every Prometheus client uses
//!   (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …), so stock
//!   dashboards and alerts work unchanged.

use std::sync::Arc;

use prometheus_client::{encoding::text, registry::Registry};

mod pool;
pub mod process;
mod rpc;

pub use pool::PoolCollector;
pub use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
pub use rpc::{RpcLabels, RpcMetrics};

/// What `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets, in seconds, shared by every duration histogram (5 ms to 10 s).
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The metrics of one process: the services' own, under the `payments_` prefix, and
/// the standard process metrics.
#[derive(Debug)]
pub struct MetricsRegistry {
    payments: Registry,
    process: Registry,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector::new()));
        MetricsRegistry {
            payments: Registry::with_prefix("payments"),
            process,
        }
    }
}

impl MetricsRegistry {
    /// Where a service registers its metrics; each name gets the `payments_` prefix.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.payments
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = text::encode_registry(&mut out, &self.payments)
            .and_then(|()| text::encode_registry(&mut out, &self.process))
            .and_then(|()| text::encode_eof(&mut out));
        out
    }
}

/// `GET /metrics`, for any axum router.
pub fn route<S: Clone + Send + Sync + 'static>(
    registry: Arc<MetricsRegistry>,
) -> axum::routing::MethodRouter<S> {
    axum::routing::get(move || {
        let body = registry.render();
        async move { ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], body) }
    })
}
