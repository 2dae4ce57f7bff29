//! A small registry of counters and gauges rendered in the Prometheus text format.
//! Counters move only after the database commit they describe, so a rolled-back
//! attempt is never counted as done.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

/// A counter split by label values (a handful of distinct values each).
#[derive(Default)]
struct Labeled {
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Labeled {
    fn inc(&self, labels: &[&str]) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let key = labels.iter().map(|l| (*l).to_owned()).collect();
        *values.entry(key).or_default() += 1;
    }

    fn get(&self, labels: &[&str]) -> u64 {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        values.get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, help: &str, names: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        for (labels, count) in values.iter() {
            let pairs: Vec<String> = names
                .iter()
                .zip(labels)
                .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {count}", pairs.join(","));
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A labeled counter with its name, help text and label names.
type Family<'a> = (
    &'a Labeled,
    &'static str,
    &'static str,
    &'static [&'static str],
);

#[derive(Default)]
pub struct Metrics {
    webhooks_verified: AtomicU64,
    webhooks_rejected: Labeled,
    webhooks_duplicate: AtomicU64,
    events_unmatched: AtomicU64,
    events_dead_lettered: AtomicU64,
    events_applied: Labeled,
    event_outcomes: Labeled,
    transitions: Labeled,
    outbox_calls: Labeled,
    outbox_depth: AtomicI64,
    reconciled: Labeled,
    caught_up: Labeled,
    group_commits: AtomicU64,
    group_committed_events: AtomicU64,
}

impl Metrics {
    pub fn webhook_verified(&self) {
        self.webhooks_verified.fetch_add(1, Ordering::Relaxed);
    }
    pub fn webhook_rejected(&self, reason: &str) {
        self.webhooks_rejected.inc(&[reason]);
    }
    pub fn webhook_duplicate(&self) {
        self.webhooks_duplicate.fetch_add(1, Ordering::Relaxed);
    }
    pub fn event_unmatched(&self) {
        self.events_unmatched.fetch_add(1, Ordering::Relaxed);
    }
    pub fn event_dead_lettered(&self) {
        self.events_dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    pub fn event_applied(&self, event_type: &str) {
        self.events_applied.inc(&[event_type]);
    }
    pub fn event_outcome(&self, state: &str) {
        self.event_outcomes.inc(&[state]);
    }
    pub fn transition(&self, from: &str, to: &str) {
        self.transitions.inc(&[from, to]);
    }
    pub fn outbox_call(&self, result: &str) {
        self.outbox_calls.inc(&[result]);
    }
    pub fn reconciled(&self, outcome: &str) {
        self.reconciled.inc(&[outcome]);
    }
    pub fn caught_up(&self, result: &str) {
        self.caught_up.inc(&[result]);
    }
    /// One group commit of `events` webhooks was attempted.
    pub fn group_committed(&self, events: usize) {
        self.group_commits.fetch_add(1, Ordering::Relaxed);
        let events = u64::try_from(events).unwrap_or(u64::MAX);
        self.group_committed_events
            .fetch_add(events, Ordering::Relaxed);
    }
    pub fn set_outbox_depth(&self, depth: i64) {
        self.outbox_depth.store(depth, Ordering::Relaxed);
    }

    pub fn webhooks_verified(&self) -> u64 {
        self.webhooks_verified.load(Ordering::Relaxed)
    }
    pub fn webhooks_rejected(&self, reason: &str) -> u64 {
        self.webhooks_rejected.get(&[reason])
    }
    pub fn webhooks_duplicate(&self) -> u64 {
        self.webhooks_duplicate.load(Ordering::Relaxed)
    }
    pub fn events_unmatched(&self) -> u64 {
        self.events_unmatched.load(Ordering::Relaxed)
    }
    pub fn events_dead_lettered(&self) -> u64 {
        self.events_dead_lettered.load(Ordering::Relaxed)
    }
    pub fn events_applied(&self, event_type: &str) -> u64 {
        self.events_applied.get(&[event_type])
    }
    pub fn reconciliations(&self, outcome: &str) -> u64 {
        self.reconciled.get(&[outcome])
    }
    pub fn caught_up_events(&self, result: &str) -> u64 {
        self.caught_up.get(&[result])
    }
    /// Group commits attempted, and the webhooks they carried.
    pub fn group_commits(&self) -> (u64, u64) {
        (
            self.group_commits.load(Ordering::Relaxed),
            self.group_committed_events.load(Ordering::Relaxed),
        )
    }
    pub fn outbox_depth(&self) -> i64 {
        self.outbox_depth.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, value) in self.plain_counters() {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        for (counter, name, help, labels) in self.labeled_counters() {
            counter.render(&mut out, name, help, labels);
        }
        let name = "ingestor_outbox_depth";
        let _ = writeln!(
            out,
            "# HELP {name} Outbox rows waiting to be sent.\n# TYPE {name} gauge\n{name} {}",
            self.outbox_depth()
        );
        out
    }

    fn plain_counters(&self) -> [(&'static str, &'static str, u64); 6] {
        [
            (
                "ingestor_group_commits_total",
                "Database transactions that stored a group of webhooks (group commit on).",
                self.group_commits.load(Ordering::Relaxed),
            ),
            (
                "ingestor_group_committed_events_total",
                "Webhooks stored through group commits; divided by the commits, the mean group.",
                self.group_committed_events.load(Ordering::Relaxed),
            ),
            (
                "ingestor_webhooks_verified_total",
                "Webhooks whose signature verified.",
                self.webhooks_verified(),
            ),
            (
                "ingestor_webhooks_duplicate_total",
                "Verified webhooks whose event id was already stored.",
                self.webhooks_duplicate(),
            ),
            (
                "ingestor_events_unmatched_total",
                "Processing attempts that found no transaction or customer.",
                self.events_unmatched(),
            ),
            (
                "ingestor_events_dead_lettered_total",
                "Events that spent their retry budget.",
                self.events_dead_lettered(),
            ),
        ]
    }

    fn labeled_counters(&self) -> [Family<'_>; 7] {
        [
            (
                &self.webhooks_rejected,
                "ingestor_webhooks_rejected_total",
                "Webhooks refused, by reason.",
                &["reason"],
            ),
            (
                &self.events_applied,
                "ingestor_events_applied_total",
                "Events that changed a transaction or moved money, by type.",
                &["type"],
            ),
            (
                &self.event_outcomes,
                "ingestor_event_outcomes_total",
                "Event processing attempts, by resulting state.",
                &["state"],
            ),
            (
                &self.transitions,
                "ingestor_transitions_total",
                "Transaction status changes committed, by from and to status.",
                &["from", "to"],
            ),
            (
                &self.outbox_calls,
                "ingestor_outbox_calls_total",
                "Outbox calls to Stripe, by result.",
                &["result"],
            ),
            (
                &self.reconciled,
                "ingestor_reconciliations_total",
                "Transactions read back from Stripe by the sweeper, by outcome.",
                &["outcome"],
            ),
            (
                &self.caught_up,
                "ingestor_catch_up_events_total",
                "Events listed by the catch-up pass, by result.",
                &["result"],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels_in_text_format() {
        let m = Metrics::default();
        m.webhook_verified();
        m.webhook_rejected("no_matching_signature");
        m.webhook_rejected("no_matching_signature");
        m.transition("created", "succeeded");
        m.event_applied("payment_intent.succeeded");
        m.set_outbox_depth(3);
        let text = m.render();
        assert!(
            text.contains("ingestor_webhooks_verified_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ingestor_webhooks_rejected_total{reason=\"no_matching_signature\"} 2\n")
        );
        assert!(text.contains("ingestor_transitions_total{from=\"created\",to=\"succeeded\"} 1\n"));
        assert!(text.contains("ingestor_outbox_depth 3\n"));
        assert!(text.contains("# TYPE ingestor_outbox_depth gauge\n"));
        assert_eq!(m.events_applied("payment_intent.succeeded"), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.event_applied("a\"b\\c");
        assert!(m.render().contains("{type=\"a\\\"b\\\\c\"} 1"));
    }
}
