//! This service's own metrics, in the shared registry of `payments_telemetry::metrics`
//! (names, format and `GET /metrics` live there): Stripe call latency and failures by
//! operation, and the WatchTransaction hub's streams, read at scrape time.

use std::time::Duration;

use payments_telemetry::metrics::{Counter, Family, Histogram, latency_histogram};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::watch::WatchHub;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    operation: &'static str,
    kind: &'static str,
}

/// `payments_stripe_call_duration_seconds{operation}` and
/// `payments_stripe_call_errors_total{operation,kind}`.
#[derive(Debug)]
pub struct Metrics {
    stripe_latency: Family<Operation, Histogram, fn() -> Histogram>,
    stripe_errors: Family<Failure, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            stripe_latency: Family::new_with_constructor(latency_histogram),
            stripe_errors: Family::default(),
        };
        registry.register(
            "stripe_call_duration_seconds",
            "Stripe API call latency, by operation",
            metrics.stripe_latency.clone(),
        );
        registry.register(
            "stripe_call_errors",
            "Failed Stripe API calls, by operation and failure class",
            metrics.stripe_errors.clone(),
        );
        metrics
    }

    /// Records one Stripe call; `error` is the failure class, if it failed.
    pub fn stripe_call(
        &self,
        operation: &'static str,
        elapsed: Duration,
        error: Option<&'static str>,
    ) {
        self.stripe_latency
            .get_or_create(&Operation { operation })
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.stripe_errors
                .get_or_create(&Failure { operation, kind })
                .inc();
        }
    }
}

/// The hub's gauges and its read counter, read when scraped:
/// `payments_watch_streams_open`, `payments_watch_transactions`,
/// `payments_watch_reads_total`.
pub struct WatchCollector(pub WatchHub);

impl std::fmt::Debug for WatchCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchCollector")
    }
}

impl Collector for WatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = [
            (
                "watch_streams_open",
                "WatchTransaction streams open on this instance",
                self.0.open_streams(),
            ),
            (
                "watch_transactions",
                "Distinct transactions watched on this instance",
                self.0.watched_transactions(),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let reads = ConstCounter::new(self.0.reads());
        reads.encode(encoder.encode_descriptor(
            "watch_reads",
            "Queries issued for WatchTransaction: batched re-reads of changed rows and the \
             safety pass's version checks",
            None,
            reads.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use payments_telemetry::metrics::MetricsRegistry;

    use super::*;

    #[test]
    fn a_call_lands_in_every_bucket_at_or_above_its_latency() {
        let mut registry = MetricsRegistry::default();
        let metrics = Metrics::register(registry.registry());
        metrics.stripe_call("create_customer", Duration::from_millis(30), None);
        metrics.stripe_call(
            "create_customer",
            Duration::from_millis(3),
            Some("declined"),
        );
        let text = registry.render();
        let bucket = |le: &str| {
            format!(
                "payments_stripe_call_duration_seconds_bucket{{le=\"{le}\",operation=\"create_customer\"}}"
            )
        };
        for (le, count) in [
            ("0.005", 1),
            ("0.025", 1),
            ("0.05", 2),
            ("10.0", 2),
            ("+Inf", 2),
        ] {
            let line = format!("{} {count}\n", bucket(le));
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(text.contains(
            "payments_stripe_call_errors_total{operation=\"create_customer\",kind=\"declined\"} 1\n"
        ));
    }
}
