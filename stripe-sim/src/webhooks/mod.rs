//! Webhook delivery: endpoints and secrets (changeable at runtime), the outbox the store
//! publishes events into, delivery statistics, and the chaos record.
//!
//! `delivery.rs` runs the background tasks, `signing.rs` computes `Stripe-Signature`,
//! `chaos.rs` decides each event's fate.

pub mod chaos;
mod delivery;
pub mod signing;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Chaos, WebhookSecret};
use crate::resources::events::Event;

pub(crate) use delivery::{Dispatcher, run_dispatcher};

/// Counters of webhook delivery, for tests and `GET /test/delivery_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryStats {
    /// Deliveries that got a 2xx (a duplicate counts twice).
    pub delivered: u64,
    /// Deliveries that exhausted the retry schedule.
    pub failed: u64,
    /// Events chaos dropped (never delivered to any endpoint).
    pub dropped: u64,
    /// Extra copies chaos scheduled.
    pub duplicated: u64,
    /// HTTP attempts made, retries included.
    pub attempts: u64,
    /// Events not yet dispatched plus deliveries not yet finished.
    pub in_flight: u64,
}

/// What chaos decided for one event, for tests that check reproducibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFate {
    pub event_id: String,
    pub event_type: String,
    pub seq: u64,
    pub dropped: bool,
    /// 1, or 2 for a duplicated event.
    pub copies: usize,
    pub holds: Vec<Duration>,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    attempts: AtomicU64,
    in_flight: AtomicU64,
}

/// Shared between the API (which publishes) and the delivery tasks.
pub(crate) struct WebhookState {
    endpoints: RwLock<Vec<String>>,
    secrets: RwLock<Vec<WebhookSecret>>,
    counters: Counters,
    /// The next event's sequence number, shared by the test and live accounts.
    next_event_seq: AtomicU64,
    fates: Mutex<Vec<EventFate>>,
    pub seed: u64,
    pub chaos: Chaos,
    pub retry_schedule: Vec<Duration>,
}

impl WebhookState {
    pub fn new(
        endpoints: Vec<String>,
        secrets: Vec<WebhookSecret>,
        seed: u64,
        chaos: Chaos,
        retry_schedule: Vec<Duration>,
    ) -> Self {
        Self {
            endpoints: RwLock::new(endpoints),
            secrets: RwLock::new(secrets),
            counters: Counters::default(),
            next_event_seq: AtomicU64::new(0),
            fates: Mutex::new(Vec::new()),
            seed,
            chaos,
            retry_schedule,
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn add_endpoint(&self, url: String) {
        let mut endpoints = self
            .endpoints
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !endpoints.contains(&url) {
            endpoints.push(url);
        }
    }

    pub fn secrets(&self) -> Vec<WebhookSecret> {
        self.secrets
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn set_secrets(&self, secrets: Vec<WebhookSecret>) {
        *self
            .secrets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = secrets;
    }

    pub fn stats(&self) -> DeliveryStats {
        let c = &self.counters;
        DeliveryStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            duplicated: c.duplicated.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::SeqCst),
        }
    }

    pub fn fates(&self) -> Vec<EventFate> {
        let mut fates = self
            .fates
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        fates.sort_by_key(|f| f.seq);
        fates
    }

    fn record_fate(&self, fate: EventFate) {
        self.fates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(fate);
    }
}

/// Decrements `in_flight` when dropped, whichever way a delivery ends (even when aborted).
struct InFlight(Arc<WebhookState>);

impl InFlight {
    fn start(state: &Arc<WebhookState>) -> Self {
        state.counters.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where the stores put new events; delivery never blocks the request that made them.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<(Arc<Event>, InFlightToken)>,
    state: Arc<WebhookState>,
}

/// Keeps an event counted as in flight until the dispatcher has scheduled it.
pub(crate) struct InFlightToken {
    _in_flight: InFlight,
}

impl Outbox {
    pub fn new(
        state: Arc<WebhookState>,
    ) -> (Self, mpsc::UnboundedReceiver<(Arc<Event>, InFlightToken)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, state }, rx)
    }

    /// 0, 1, 2, … across both accounts, in the order their events are created.
    pub fn next_event_seq(&self) -> u64 {
        self.state.next_event_seq.fetch_add(1, Ordering::SeqCst)
    }

    pub fn endpoint_count(&self) -> usize {
        self.state.endpoints.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn publish(&self, event: Arc<Event>) {
        let token = InFlightToken {
            _in_flight: InFlight::start(&self.state),
        };
        if self.tx.send((event, token)).is_err() {
            // Only after shutdown, when nothing is delivered any more.
            tracing::debug!("webhook dispatcher stopped; event not delivered");
        }
    }
}
