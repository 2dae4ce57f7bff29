//! The inbox lives in payments-core (store and apply in one database transaction);
//! this service counts what it did in its own metrics.

pub use payments_core::inbox::*;

use crate::metrics::Metrics;

impl InboxMetrics for Metrics {
    fn event_outcome(&self, state: &str) {
        Metrics::event_outcome(self, state);
    }
    fn event_applied(&self, event_type: &str) {
        Metrics::event_applied(self, event_type);
    }
    fn event_unmatched(&self) {
        Metrics::event_unmatched(self);
    }
    fn event_dead_lettered(&self) {
        Metrics::event_dead_lettered(self);
    }
    fn transition(&self, from: &str, to: &str) {
        Metrics::transition(self, from, to);
    }
}
