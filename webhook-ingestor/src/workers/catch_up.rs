//! The catch-up pass: reads `GET /v1/events` from a little before the newest event we
//! stored and puts whatever is missing through the inbox (source `catch_up`), exactly
//! as if its webhook had arrived. Redelivered ids are duplicates and change nothing.
//! It covers webhooks Stripe gave up on and events created while the endpoint was
//! misconfigured.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use payments_core::{
    StripeEvent,
    store::{self, EventSource},
    stripe_event::ACTED_ON_TYPES,
};
use sqlx::PgPool;

use crate::{
    inbox::{self, Received, Rules},
    metrics::Metrics,
    stripe_api::StripeApi,
};

#[derive(Clone)]
pub struct CatchUp {
    pub pool: PgPool,
    pub stripe: StripeApi,
    pub metrics: Arc<Metrics>,
    pub rules: Rules,
    /// How far before the newest stored event to look: events are not stored in
    /// creation order, so one missed earlier than the newest must still be found.
    pub overlap: Duration,
}

impl CatchUp {
    pub async fn pass(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await.context("catch-up start")?;
        let newest = store::latest_event_created(&mut conn).await?;
        drop(conn);
        let overlap = chrono::Duration::from_std(self.overlap).unwrap_or_default();
        let since = newest.unwrap_or_else(Utc::now) - overlap;
        let events = self
            .stripe
            .reader()
            .events_since(since.timestamp(), ACTED_ON_TYPES)
            .await
            .context("listing Stripe events")?;
        for raw in events {
            let event = match StripeEvent::from_value(raw) {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "Stripe listed something that is not an event; skipped");
                    self.metrics.caught_up("not_an_event");
                    continue;
                }
            };
            let received = inbox::receive(&self.pool, &event, EventSource::CatchUp, &self.rules)
                .await
                .with_context(|| format!("storing caught-up event {}", event.id))?;
            match received {
                Received::Duplicate => self.metrics.caught_up("duplicate"),
                Received::Stored(report) => {
                    tracing::info!(event_id = %event.id, event_type = %event.event_type, "stored a missed event");
                    report.count(&self.metrics);
                    self.metrics.caught_up("stored");
                }
            }
        }
        Ok(())
    }
}
