//! The catch-up pass: puts every event Stripe lists that we never stored through the
//! inbox (source `catch_up`), exactly as if its webhook had arrived; redelivered ids are
//! duplicates and change nothing. It covers webhooks Stripe gave up on and events
//! created while the endpoint was down or misconfigured, whatever they are about
//! (a refund or a dispute of a settled payment as much as an unsettled payment).
//!
//! It keeps a persisted cursor, the newest event up to which everything listed has been
//! stored, and pages `GET /v1/events` forward from it (`ending_before`), oldest page
//! first, moving the cursor after each page, until it reaches the present: no window,
//! no cap on how many events one pass reads. Without a cursor (the first pass), or when
//! Stripe no longer holds the cursor's event (past its 30-day retention), it reads
//! newest first back to a floor, then sets the cursor to the newest event it read.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use payments_core::{
    StripeEvent,
    store::{self, CatchUpCursor, EventSource},
    stripe_event::ACTED_ON_TYPES,
};
use payments_stripe::reader::{EventPage, EventsFrom};
use serde_json::Value;
use sqlx::PgPool;

use crate::{
    inbox::{self, Received, Rules},
    metrics::Metrics,
    stripe_api::StripeApi,
};

/// How far before the newest stored event the first pass (no cursor yet) reads: what
/// the pass read before it kept a cursor, so an upgrade misses nothing it would have found.
const FIRST_PASS_REACH: chrono::Duration = chrono::Duration::hours(1);

/// The catch-up lists every event and keeps those of [`ACTED_ON_TYPES`]: Stripe takes at
/// most 20 types in one `types[]` filter, fewer than we act on, and one unfiltered list
/// keeps one cursor for all of them.
const EVERY_TYPE: &[&str] = &[];

#[derive(Clone)]
pub struct CatchUp {
    pub pool: PgPool,
    pub stripe: StripeApi,
    pub metrics: Arc<Metrics>,
    pub rules: Rules,
}

impl CatchUp {
    pub async fn pass(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await.context("catch-up start")?;
        let cursor = store::catch_up_cursor(&mut conn).await?;
        drop(conn);
        let Some(mut cursor) = cursor else {
            return match self.first_pass_floor().await? {
                Some(floor) => self.read_back(Some(floor)).await,
                // Nothing of ours can be at Stripe yet.
                None => Ok(()),
            };
        };
        loop {
            let page = self
                .stripe
                .reader()
                .events_page(EventsFrom::After(&cursor.event_id), None, EVERY_TYPE)
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) if e.is_missing() => {
                    tracing::warn!(
                        event_id = %cursor.event_id,
                        "Stripe no longer lists the catch-up cursor's event; reading back to its time"
                    );
                    return self.read_back(Some(cursor.event_created)).await;
                }
                Err(e) => return Err(e).context("listing Stripe events"),
            };
            // Newest first: store oldest first, as things happened.
            for raw in page.events.iter().rev() {
                self.store(raw).await?;
            }
            let Some(newest) = page.events.first().and_then(cursor_of) else {
                return Ok(());
            };
            self.advance(&newest).await?;
            cursor = newest;
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// With no cursor: an hour before the newest stored event; with none stored, the
    /// creation of the oldest transaction (nothing of ours at Stripe is older); with no
    /// transaction either, None: there is nothing to read yet.
    async fn first_pass_floor(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let mut conn = self.pool.acquire().await.context("catch-up floor")?;
        if let Some(newest) = store::latest_event_created(&mut conn).await? {
            return Ok(Some(newest - FIRST_PASS_REACH));
        }
        Ok(store::oldest_transaction_created(&mut conn).await?)
    }

    /// Reads newest first back to `floor` (everything Stripe holds if None), storing as
    /// it goes, then sets the cursor to the newest event it read: only once all of them
    /// are stored, so a pass that fails midway is simply read again.
    async fn read_back(&self, floor: Option<DateTime<Utc>>) -> anyhow::Result<()> {
        let since = floor.map(|f| f.timestamp());
        let mut newest: Option<CatchUpCursor> = None;
        let mut older_than: Option<String> = None;
        loop {
            let from = EventsFrom::Newest {
                older_than: older_than.as_deref(),
            };
            let EventPage { events, has_more } = self
                .stripe
                .reader()
                .events_page(from, since, EVERY_TYPE)
                .await
                .context("listing Stripe events")?;
            for raw in &events {
                self.store(raw).await?;
            }
            if newest.is_none() {
                newest = events.first().and_then(cursor_of);
            }
            older_than = events.last().and_then(cursor_of).map(|c| c.event_id);
            if !has_more || older_than.is_none() {
                break;
            }
        }
        match newest {
            Some(newest) => self.advance(&newest).await,
            None => self.start_at_the_newest_event().await,
        }
    }

    /// Nothing to read back: the cursor starts at the newest event Stripe lists at all,
    /// so the next pass reads forward from here.
    async fn start_at_the_newest_event(&self) -> anyhow::Result<()> {
        let page = self
            .stripe
            .reader()
            .events_page(EventsFrom::Newest { older_than: None }, None, EVERY_TYPE)
            .await
            .context("listing Stripe events")?;
        for raw in &page.events {
            self.store(raw).await?;
        }
        match page.events.first().and_then(cursor_of) {
            Some(newest) => self.advance(&newest).await,
            None => Ok(()),
        }
    }

    async fn advance(&self, to: &CatchUpCursor) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await.context("catch-up cursor")?;
        store::advance_catch_up_cursor(&mut conn, to).await?;
        Ok(())
    }

    /// Stores one listed event through the inbox (a duplicate changes nothing).
    async fn store(&self, raw: &Value) -> anyhow::Result<()> {
        let acted_on = raw
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| ACTED_ON_TYPES.contains(&t));
        if !acted_on {
            return Ok(());
        }
        let event = match StripeEvent::from_value(raw.clone()) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "Stripe listed something that is not an event; skipped");
                self.metrics.caught_up("not_an_event");
                return Ok(());
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
        Ok(())
    }
}

/// The cursor a listed event would leave: its id and creation time.
fn cursor_of(raw: &Value) -> Option<CatchUpCursor> {
    let id = raw.get("id")?.as_str()?.to_owned();
    let created = DateTime::from_timestamp(raw.get("created")?.as_i64()?, 0)?;
    Some(CatchUpCursor {
        event_id: id,
        event_created: created,
    })
}
