//! This service's own metrics, in the shared registry of `payments_telemetry::metrics`
//! (names, format and `GET /metrics` live there). Counters move only after the
//! database commit they describe, so a rolled-back attempt is never counted as done.
//! The database-wide health signals (events by state, unsettled transactions, the
//! outbox's age) are gauges a worker refreshes ([`crate::workers::signals`]).

use std::time::Duration;

use payments_core::store::{DoorbellMetrics, HealthSignals};
use payments_telemetry::metrics::{Counter, Family, Gauge, Histogram, latency_histogram};
use prometheus_client::registry::Registry;

/// Label names and values (a handful of distinct values each).
type Labels = Vec<(&'static str, String)>;
/// A counter split by label values.
type Labeled = Family<Labels, Counter>;
/// A gauge split by one label; `f64` for ages in seconds.
type LabeledGauge<N = i64, A = std::sync::atomic::AtomicI64> = Family<Labels, Gauge<N, A>>;
type Seconds = Gauge<f64, std::sync::atomic::AtomicU64>;

fn labels(names: &[&'static str], values: &[&str]) -> Labels {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| (*n, (*v).to_owned()))
        .collect()
}

/// Webhook latency by outcome.
#[derive(Debug, Clone)]
struct Latency(Family<Labels, Histogram, fn() -> Histogram>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Family::new_with_constructor(latency_histogram))
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    webhook_duration: Latency,
    webhooks_verified: Counter,
    webhooks_rejected: Labeled,
    webhooks_duplicate: Counter,
    events_unmatched: Counter,
    events_dead_lettered: Counter,
    events_applied: Labeled,
    event_outcomes: Labeled,
    transitions: Labeled,
    outbox_calls: Labeled,
    outbox_depth: Gauge,
    reconciled: Labeled,
    caught_up: Labeled,
    group_commits: Counter,
    group_committed_events: Counter,
    doorbells: Labeled,
    signals: Signals,
}

/// The gauges of [`HealthSignals`].
#[derive(Debug, Default)]
struct Signals {
    events: LabeledGauge,
    events_oldest: LabeledGauge<f64, std::sync::atomic::AtomicU64>,
    unsettled: LabeledGauge,
    unsettled_oldest: LabeledGauge<f64, std::sync::atomic::AtomicU64>,
    outbox_oldest: Seconds,
    refreshed: Seconds,
}

impl Metrics {
    /// The metrics, registered in `registry` (the `payments_` prefix is the registry's).
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let counters: [(&str, &str, &Counter); 6] = [
            (
                "webhooks_verified",
                "Webhooks whose signature verified",
                &m.webhooks_verified,
            ),
            (
                "webhooks_duplicate",
                "Verified webhooks whose event id was already stored",
                &m.webhooks_duplicate,
            ),
            (
                "events_unmatched",
                "Processing attempts that found no transaction or customer",
                &m.events_unmatched,
            ),
            (
                "events_dead_lettered",
                "Events that spent their retry budget",
                &m.events_dead_lettered,
            ),
            (
                "group_commits",
                "Database transactions that stored a group of webhooks (group commit on)",
                &m.group_commits,
            ),
            (
                "group_committed_events",
                "Webhooks stored through group commits; divided by the commits, the mean group",
                &m.group_committed_events,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let labeled: [(&str, &str, &Labeled); 8] = [
            (
                "webhooks_rejected",
                "Webhooks refused, by reason",
                &m.webhooks_rejected,
            ),
            (
                "events_applied",
                "Events that changed a transaction or moved money, by type",
                &m.events_applied,
            ),
            (
                "event_outcomes",
                "Event processing attempts, by resulting state",
                &m.event_outcomes,
            ),
            (
                "transitions",
                "Transaction status changes committed, by from and to status",
                &m.transitions,
            ),
            (
                "outbox_calls",
                "Outbox calls to Stripe, by result",
                &m.outbox_calls,
            ),
            (
                "reconciliations",
                "Transactions read back from Stripe by the sweeper, by outcome",
                &m.reconciled,
            ),
            (
                "catch_up_events",
                "Events listed by the catch-up pass, by result",
                &m.caught_up,
            ),
            (
                "doorbells",
                "Watchers' doorbells the webhook path queued after its commits, by outcome \
                 (rung, or lost: the change reaches watchers at payments-api's safety pass)",
                &m.doorbells,
            ),
        ];
        for (name, help, family) in labeled {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "webhook_duration_seconds",
            "Time to answer a webhook, from its body read to the answer, by outcome \
             (stored, duplicate, a rejection reason, unavailable, internal_error)",
            m.webhook_duration.0.clone(),
        );
        registry.register(
            "outbox_depth",
            "Outbox calls waiting to be sent (all instances; read by the outbox worker)",
            m.outbox_depth.clone(),
        );
        m.signals.register(registry);
        // Known label values start at 0, so a rate or an alert sees them from the start.
        for reason in crate::http::REJECTION_REASONS {
            drop(
                m.webhooks_rejected
                    .get_or_create(&labels(&["reason"], &[reason])),
            );
        }
        for outcome in ["rung", "lost"] {
            drop(m.doorbells.get_or_create(&labels(&["outcome"], &[outcome])));
        }
        for event_type in payments_core::stripe_event::ACTED_ON_TYPES {
            drop(
                m.events_applied
                    .get_or_create(&labels(&["type"], &[event_type])),
            );
        }
        m
    }

    /// One webhook answered with `outcome` after `elapsed`.
    pub fn webhook_answered(&self, outcome: &str, elapsed: Duration) {
        self.webhook_duration
            .0
            .get_or_create(&labels(&["outcome"], &[outcome]))
            .observe(elapsed.as_secs_f64());
    }
    pub fn webhook_verified(&self) {
        self.webhooks_verified.inc();
    }
    pub fn webhook_rejected(&self, reason: &str) {
        self.webhooks_rejected
            .get_or_create(&labels(&["reason"], &[reason]))
            .inc();
    }
    pub fn webhook_duplicate(&self) {
        self.webhooks_duplicate.inc();
    }
    pub fn event_unmatched(&self) {
        self.events_unmatched.inc();
    }
    pub fn event_dead_lettered(&self) {
        self.events_dead_lettered.inc();
    }
    pub fn event_applied(&self, event_type: &str) {
        self.events_applied
            .get_or_create(&labels(&["type"], &[event_type]))
            .inc();
    }
    pub fn event_outcome(&self, state: &str) {
        self.event_outcomes
            .get_or_create(&labels(&["state"], &[state]))
            .inc();
    }
    pub fn transition(&self, from: &str, to: &str) {
        self.transitions
            .get_or_create(&labels(&["from", "to"], &[from, to]))
            .inc();
    }
    pub fn outbox_call(&self, result: &str) {
        self.outbox_calls
            .get_or_create(&labels(&["result"], &[result]))
            .inc();
    }
    pub fn reconciled(&self, outcome: &str) {
        self.reconciled
            .get_or_create(&labels(&["outcome"], &[outcome]))
            .inc();
    }
    pub fn caught_up(&self, result: &str) {
        self.caught_up
            .get_or_create(&labels(&["result"], &[result]))
            .inc();
    }
    /// One group commit of `events` webhooks was attempted.
    pub fn group_committed(&self, events: usize) {
        self.group_commits.inc();
        self.group_committed_events
            .inc_by(u64::try_from(events).unwrap_or(u64::MAX));
    }
    pub fn set_outbox_depth(&self, depth: i64) {
        self.outbox_depth.set(depth);
    }
    /// The gauges of a fresh reading of the database's health signals.
    pub fn set_signals(&self, signals: &HealthSignals) {
        self.signals.set(signals);
    }

    /// Doorbells by outcome (`rung` or `lost`).
    pub fn doorbells(&self, outcome: &str) -> u64 {
        count(&self.doorbells, &labels(&["outcome"], &[outcome]))
    }
    pub fn webhooks_verified(&self) -> u64 {
        self.webhooks_verified.get()
    }
    pub fn webhooks_rejected(&self, reason: &str) -> u64 {
        count(&self.webhooks_rejected, &labels(&["reason"], &[reason]))
    }
    pub fn webhooks_duplicate(&self) -> u64 {
        self.webhooks_duplicate.get()
    }
    pub fn events_unmatched(&self) -> u64 {
        self.events_unmatched.get()
    }
    pub fn events_dead_lettered(&self) -> u64 {
        self.events_dead_lettered.get()
    }
    pub fn events_applied(&self, event_type: &str) -> u64 {
        count(&self.events_applied, &labels(&["type"], &[event_type]))
    }
    pub fn reconciliations(&self, outcome: &str) -> u64 {
        count(&self.reconciled, &labels(&["outcome"], &[outcome]))
    }
    pub fn caught_up_events(&self, result: &str) -> u64 {
        count(&self.caught_up, &labels(&["result"], &[result]))
    }
    /// Group commits attempted, and the webhooks they carried.
    pub fn group_commits(&self) -> (u64, u64) {
        (self.group_commits.get(), self.group_committed_events.get())
    }
    pub fn outbox_depth(&self) -> i64 {
        self.outbox_depth.get()
    }
}

impl DoorbellMetrics for Metrics {
    fn doorbells_rung(&self, n: usize) {
        self.doorbells
            .get_or_create(&labels(&["outcome"], &["rung"]))
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
    fn doorbells_lost(&self, n: usize) {
        self.doorbells
            .get_or_create(&labels(&["outcome"], &["lost"]))
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

fn count(family: &Labeled, labels: &Labels) -> u64 {
    family.get(labels).map_or(0, |c| c.get())
}

impl Signals {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "events",
            "Stored Stripe events not done yet or needing an operator, by state \
             (whole database; counts stop at 100000)",
            self.events.clone(),
        );
        registry.register(
            "events_oldest_age_seconds",
            "Age of the oldest stored event in each state (0 when there is none)",
            self.events_oldest.clone(),
        );
        registry.register(
            "transactions_unsettled",
            "Transactions not settled yet, by status (whole database; counts stop at 100000)",
            self.unsettled.clone(),
        );
        registry.register(
            "transactions_oldest_unsettled_age_seconds",
            "Age of the oldest unsettled transaction of each status (0 when there is none)",
            self.unsettled_oldest.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest outbox call still pending (0 when there is none)",
            self.outbox_oldest.clone(),
        );
        registry.register(
            "signals_refreshed_timestamp_seconds",
            "When these database-wide gauges were last read (unix time)",
            self.refreshed.clone(),
        );
    }

    fn set(&self, signals: &HealthSignals) {
        let now = signals.now;
        for (counts, oldest, name, rows) in [
            (&self.events, &self.events_oldest, "state", &signals.events),
            (
                &self.unsettled,
                &self.unsettled_oldest,
                "status",
                &signals.unsettled,
            ),
        ] {
            for row in rows {
                let key = labels(&[name], &[row.state]);
                counts.get_or_create(&key).set(row.count);
                oldest.get_or_create(&key).set(row.oldest_age_seconds(now));
            }
        }
        self.outbox_oldest
            .set(signals.outbox.oldest_age_seconds(now));
        self.refreshed.set(now.timestamp_millis() as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use payments_telemetry::metrics::MetricsRegistry;

    use super::*;

    #[test]
    fn renders_counters_with_labels_in_text_format() {
        let mut registry = MetricsRegistry::default();
        let m = Metrics::register(registry.registry());
        m.webhook_verified();
        m.webhook_rejected("no_matching_signature");
        m.webhook_rejected("no_matching_signature");
        m.transition("created", "succeeded");
        m.event_applied("payment_intent.succeeded");
        m.set_outbox_depth(3);
        let text = registry.render();
        assert!(
            text.contains("payments_webhooks_verified_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("payments_webhooks_rejected_total{reason=\"no_matching_signature\"} 2\n")
        );
        assert!(text.contains("payments_transitions_total{from=\"created\",to=\"succeeded\"} 1\n"));
        assert!(text.contains("payments_outbox_depth 3\n"));
        assert!(text.contains("# TYPE payments_outbox_depth gauge\n"));
        assert_eq!(m.events_applied("payment_intent.succeeded"), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut registry = MetricsRegistry::default();
        let m = Metrics::register(registry.registry());
        m.event_applied("a\"b\\c");
        assert!(registry.render().contains("{type=\"a\\\"b\\\\c\"} 1"));
    }
}
