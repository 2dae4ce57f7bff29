//! Prometheus metrics of this instance, rendered as text at `GET /metrics`: Stripe
//! call latency and errors by operation, and the open WatchTransaction streams.
//! Hand-rolled on atomics: a few series do not need a metrics framework.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::watch::WatchHub;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    stripe_latency: Mutex<BTreeMap<&'static str, std::sync::Arc<Histogram>>>,
    stripe_errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// Records one Stripe call; `error` is the failure class, if it failed.
    pub fn stripe_call(
        &self,
        operation: &'static str,
        elapsed: Duration,
        error: Option<&'static str>,
    ) {
        let histogram = locked(&self.stripe_latency)
            .entry(operation)
            .or_default()
            .clone();
        histogram.observe(elapsed);
        if let Some(kind) = error {
            *locked(&self.stripe_errors)
                .entry((operation, kind))
                .or_default() += 1;
        }
    }

    pub fn render(&self, hub: &WatchHub) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP payments_watch_streams_open WatchTransaction streams open on this instance.\n",
        );
        out.push_str("# TYPE payments_watch_streams_open gauge\n");
        let _ = writeln!(out, "payments_watch_streams_open {}", hub.open_streams());
        out.push_str(
            "# HELP payments_watch_transactions Distinct transactions watched on this instance.\n",
        );
        out.push_str("# TYPE payments_watch_transactions gauge\n");
        let _ = writeln!(
            out,
            "payments_watch_transactions {}",
            hub.watched_transactions()
        );
        out.push_str(
            "# HELP payments_watch_reads_total Queries issued for WatchTransaction: batched re-reads of changed rows and the safety pass's version checks.\n",
        );
        out.push_str("# TYPE payments_watch_reads_total counter\n");
        let _ = writeln!(out, "payments_watch_reads_total {}", hub.reads());
        self.render_stripe(&mut out);
        out
    }

    fn render_stripe(&self, out: &mut String) {
        out.push_str("# HELP payments_stripe_call_duration_seconds Stripe API call latency.\n");
        out.push_str("# TYPE payments_stripe_call_duration_seconds histogram\n");
        for (op, h) in locked(&self.stripe_latency).iter() {
            for (bucket, bound) in h.buckets.iter().zip(BUCKETS) {
                let n = bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "payments_stripe_call_duration_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {n}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "payments_stripe_call_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "payments_stripe_call_duration_seconds_sum{{operation=\"{op}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "payments_stripe_call_duration_seconds_count{{operation=\"{op}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP payments_stripe_call_errors_total Failed Stripe API calls by failure class.\n",
        );
        out.push_str("# TYPE payments_stripe_call_errors_total counter\n");
        for ((op, kind), n) in locked(&self.stripe_errors).iter() {
            let _ = writeln!(
                out,
                "payments_stripe_call_errors_total{{operation=\"{op}\",kind=\"{kind}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_lands_in_every_bucket_at_or_above_its_latency() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(30));
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(h.count.load(Ordering::Relaxed), 1);
    }
}
