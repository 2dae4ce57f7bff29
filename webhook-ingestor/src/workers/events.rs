//! Retries stored events that could not be applied yet: unmatched (the transaction's
//! row was not committed when the webhook came, or the customer is not known yet),
//! deferred (a refund before its success), or failed on an error. Each event is
//! claimed and processed in its own database transaction, oldest first.

use std::sync::Arc;

use anyhow::Context as _;
use payments_core::{
    StripeEvent,
    store::{self, EventOutcome, EventState, StoreError, StoredEvent},
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    inbox::{self, Rules},
    metrics::Metrics,
};

#[derive(Clone)]
pub struct EventWorker {
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    pub rules: Rules,
}

impl EventWorker {
    /// Processes due events until none is left or shutdown is requested.
    pub async fn drain(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            let processed = self
                .process_next()
                .await
                .context("retrying a stored event")?;
            if !processed {
                break;
            }
        }
        Ok(())
    }

    /// Claims and processes one due event; false when none is due.
    pub async fn process_next(&self) -> Result<bool, StoreError> {
        let mut tx = store::begin(&self.pool, "retry_event").await?;
        let Some(stored) = store::claim_due_events(&mut tx, 1).await?.pop() else {
            tx.rollback().await?;
            return Ok(false);
        };
        let span = tracing::info_span!(
            "retry_event",
            stripe_event_id = %stored.id,
            stripe_event_type = %stored.event_type,
            attempt = stored.attempts.saturating_add(1),
            state = tracing::field::Empty,
            transaction_id = tracing::field::Empty,
        );
        let report = match StripeEvent::from_value(stored.payload.clone()) {
            Ok(event) => {
                inbox::process(&mut tx, &event, stored.attempts, &self.rules)
                    .instrument(span.clone())
                    .await?
            }
            Err(e) => {
                bury_unreadable(&mut tx, &stored, &e.to_string())
                    .instrument(span)
                    .await?;
                tx.commit().await?;
                self.metrics.event_dead_lettered();
                return Ok(true);
            }
        };
        tx.commit().await?;
        span.record("state", report.state.as_str());
        if let Some(id) = report.transaction_id {
            span.record("transaction_id", tracing::field::display(id));
        }
        report.count(&self.metrics);
        Ok(true)
    }
}

/// Only parsed events are stored, so this means a row was edited by hand.
async fn bury_unreadable(
    conn: &mut PgConnection,
    stored: &StoredEvent,
    why: &str,
) -> Result<(), StoreError> {
    tracing::warn!(event_id = %stored.id, error = why, "stored payload is not an event; dead-lettered");
    let outcome = EventOutcome {
        state: EventState::Dead,
        transaction_id: None,
        error: Some(why),
        next_attempt_at: None,
        count_attempt: true,
    };
    store::record_event_outcome(conn, stored.id.as_str(), &outcome).await
}
