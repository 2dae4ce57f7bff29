//! The background side of webhook delivery: one dispatcher task takes events from the outbox in
//! order, applies chaos, and spawns one task per (copy, endpoint) that holds, POSTs, and retries
//! on the configured schedule. A semaphore bounds the POSTs in flight; holds and backoff sleeps
//! do not take a permit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{EventFate, InFlight, InFlightToken, WebhookState, chaos, signing};
use crate::resources::events::Event;
use crate::store::now;

/// Everything a delivery task needs.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    pub state: Arc<WebhookState>,
    pub client: reqwest::Client,
    pub permits: Arc<Semaphore>,
    pub cancel: CancellationToken,
}

pub(crate) async fn run_dispatcher(
    dispatcher: Dispatcher,
    mut events: mpsc::UnboundedReceiver<(Arc<Event>, InFlightToken)>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = dispatcher.cancel.cancelled() => break,
            received = events.recv() => match received {
                Some((event, token)) => dispatcher.schedule(&mut tasks, &event, token),
                None => break,
            },
            Some(finished) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = finished
                    && error.is_panic() {
                        tracing::error!(%error, "a webhook delivery task panicked");
                    }
            }
        }
    }
    tasks.shutdown().await;
}

impl Dispatcher {
    fn schedule(&self, tasks: &mut JoinSet<()>, event: &Arc<Event>, _token: InFlightToken) {
        let fate = chaos::decide(self.state.seed, event.seq, &self.state.chaos);
        self.state.record_fate(EventFate {
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            seq: event.seq,
            dropped: fate.dropped,
            copies: fate.holds.len(),
            holds: fate.holds.clone(),
        });
        let counters = &self.state.counters;
        if fate.dropped {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event_id = %event.id, "chaos dropped the event");
            return;
        }
        counters
            .duplicated
            .fetch_add(fate.holds.len() as u64 - 1, Ordering::Relaxed);
        let body = event.body.clone();
        for url in self.state.endpoints() {
            for hold in &fate.holds {
                let delivery = Delivery {
                    dispatcher: self.clone(),
                    url: url.clone(),
                    event_id: event.id.clone(),
                    body: body.clone(),
                    hold: *hold,
                    _in_flight: InFlight::start(&self.state),
                };
                tasks.spawn(delivery.run());
            }
        }
    }
}

struct Delivery {
    dispatcher: Dispatcher,
    url: String,
    event_id: String,
    body: Bytes,
    hold: Duration,
    _in_flight: InFlight,
}

impl Delivery {
    async fn run(self) {
        let cancel = &self.dispatcher.cancel;
        if !self.sleep(self.hold).await {
            return;
        }
        let schedule = self.dispatcher.state.retry_schedule.clone();
        let counters = &self.dispatcher.state.counters;
        for attempt in 0..=schedule.len() {
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = self.attempt() => outcome,
            };
            counters.attempts.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok(()) => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(reason) => {
                    tracing::debug!(event_id = %self.event_id, url = %self.url, attempt, %reason, "webhook attempt failed");
                    match schedule.get(attempt) {
                        Some(wait) => {
                            if !self.sleep(*wait).await {
                                return;
                            }
                        }
                        None => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(event_id = %self.event_id, url = %self.url, attempts = attempt + 1, %reason, "webhook delivery gave up");
                        }
                    }
                }
            }
        }
    }

    /// Sleeps unless shutting down; `false` when cancelled.
    async fn sleep(&self, duration: Duration) -> bool {
        if duration.is_zero() {
            return !self.dispatcher.cancel.is_cancelled();
        }
        tokio::select! {
            () = self.dispatcher.cancel.cancelled() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }

    /// One signed POST; the signature is computed now, with the secrets active now.
    async fn attempt(&self) -> Result<(), String> {
        let _permit = self
            .dispatcher
            .permits
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        let secrets = self.dispatcher.state.secrets();
        let signature = signing::header(&secrets, now(), &self.body);
        let response = self
            .dispatcher
            .client
            .post(&self.url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", signature)
            .body(self.body.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }
}
