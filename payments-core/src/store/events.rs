//! The `stripe_events` inbox: every verified event, with the state its processing
//! reached ([`EventState`]), its attempts and the next one. The retry queue is the
//! [`EventState::RETRYABLE`] states, written into its query from that one list.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::{StripeEvent, StripeEventId, TransactionId, text::text_enum};

text_enum!(
    /// Where a stored event is in its processing.
    EventState as "event state" {
        /// Stored, not yet applied.
        Received = "received",
        Applied = "applied",
        /// Valid but late or duplicate: changed nothing.
        Stale = "stale",
        /// A type we store but do not act on.
        Ignored = "ignored",
        /// No transaction found yet: retried by the worker.
        Unmatched = "unmatched",
        /// Presupposes a state not reached yet: retried by the worker.
        Deferred = "deferred",
        /// Recorded but needs an operator (invalid for its transaction, currency mismatch,
        /// another transaction's object, the other mode's event).
        Flagged = "flagged",
        /// Retry budget exhausted.
        Dead = "dead",
        /// About an object that is not ours (no metadata of ours, no id we recorded:
        /// another integration on a shared account): recorded, never retried.
        Foreign = "foreign",
    }
);

impl EventState {
    /// Not applied yet, and retried by the worker: the retry queue's query and the
    /// `stripe_events_retry` index are written from this list (a test compares the
    /// index with it).
    pub const RETRYABLE: &'static [EventState] = &[
        EventState::Received,
        EventState::Unmatched,
        EventState::Deferred,
    ];

    /// Not done, or needing an operator: what the health signals count, and what
    /// the `stripe_events_attention` index holds (a test compares them).
    pub const ATTENTION: &'static [EventState] = &[
        EventState::Received,
        EventState::Unmatched,
        EventState::Deferred,
        EventState::Flagged,
        EventState::Dead,
    ];

    pub fn is_retryable(self) -> bool {
        Self::RETRYABLE.contains(&self)
    }
}

text_enum!(
    /// How an event reached the inbox.
    EventSource as "event source" {
        Webhook = "webhook",
        CatchUp = "catch_up",
        Replay = "replay",
    }
);

/// The primary key that refuses a repeated event id.
const EVENT_ID_KEY: &str = "stripe_events_pkey";

impl StoreError {
    /// Whether [`insert_event`] met an event stored before (a redelivery, or a
    /// concurrent delivery that committed first).
    pub fn is_repeated_event(&self) -> bool {
        self.is_conflict_on(EVENT_ID_KEY)
    }
}

/// Stores a verified event with the outcome of its first processing attempt, in its
/// final state: one row written once. A repeated id is refused by the primary key
/// ([`StoreError::is_repeated_event`]); the caller's database transaction is then aborted and must be
/// rolled back, undoing whatever it applied for the repeat.
///
/// Returns the doorbells the database transaction has collected so far, for its caller
/// to ring once it commits (empty unless it was begun by
/// [`begin_collecting_doorbells`](super::begin_collecting_doorbells)): read back by the
/// insert, so collecting them costs no round trip of its own.
pub async fn insert_event(
    conn: &mut PgConnection,
    event: &StripeEvent,
    source: EventSource,
    outcome: &EventOutcome<'_>,
) -> Result<String, StoreError> {
    let collected: Option<String> = sqlx::query_scalar(
        "INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source, \
           state, transaction_id, last_error, next_attempt_at, attempts, processed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::int, \
           CASE WHEN $13 THEN NULL ELSE now() END) \
         RETURNING current_setting('payments.doorbells', true)",
    )
    .bind(event.id.as_str())
    .bind(&event.event_type)
    .bind(&event.api_version)
    .bind(event.created)
    .bind(event.livemode)
    .bind(&event.payload)
    .bind(source)
    .bind(outcome.state)
    .bind(outcome.transaction_id.map(|t| t.as_uuid()))
    .bind(outcome.error)
    .bind(outcome.next_attempt_at)
    .bind(i32::from(outcome.count_attempt))
    .bind(outcome.state.is_retryable())
    .fetch_one(&mut *conn)
    .await?;
    Ok(collected.unwrap_or_default())
}

/// Which of `ids` are stored already (a batch leaves them out before applying).
pub async fn stored_event_ids(
    conn: &mut PgConnection,
    ids: &[&str],
) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM stripe_events WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?,
    )
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: StripeEventId,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub state: EventState,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub transaction_id: Option<Uuid>,
    pub payload: serde_json::Value,
}

const COLUMNS: &str = "id, type, state, attempts, last_error, received_at, transaction_id, payload";

/// Locks one stored event for processing (waits for another worker holding it).
pub async fn lock_event(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<StoredEvent>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM stripe_events WHERE id = $1 FOR UPDATE");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// The events waiting in the retry queue, as the queries (and the
/// `stripe_events_retry` index) write it.
pub fn retryable_predicate() -> String {
    format!(
        "state IN ({})",
        crate::text::sql_list(EventState::RETRYABLE)
    )
}

/// Claims retryable events whose time has come; rows other workers hold are skipped.
pub async fn claim_due_events(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM stripe_events WHERE {} \
         AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
         ORDER BY created LIMIT $1 FOR UPDATE SKIP LOCKED",
        retryable_predicate()
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
}

/// The outcome of one processing attempt.
#[derive(Debug, Clone)]
pub struct EventOutcome<'a> {
    pub state: EventState,
    pub transaction_id: Option<TransactionId>,
    pub error: Option<&'a str>,
    /// For retryable states: when to try again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Whether this attempt counts against the retry budget.
    pub count_attempt: bool,
}

pub async fn record_event_outcome(
    conn: &mut PgConnection,
    id: &str,
    o: &EventOutcome<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE stripe_events SET state = $2, transaction_id = COALESCE($3, transaction_id), \
         last_error = $4, next_attempt_at = $5, attempts = attempts + $6::int, \
         processed_at = CASE WHEN $7 THEN processed_at ELSE now() END WHERE id = $1",
    )
    .bind(id)
    .bind(o.state)
    .bind(o.transaction_id.map(|t| t.as_uuid()))
    .bind(o.error)
    .bind(o.next_attempt_at)
    .bind(i32::from(o.count_attempt))
    .bind(o.state.is_retryable())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn list_dead_events(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM stripe_events WHERE state = 'dead' ORDER BY received_at DESC LIMIT $1"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
}

/// Puts an event back in the queue with a fresh retry budget.
pub async fn requeue_event(conn: &mut PgConnection, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE stripe_events SET state = 'received', attempts = 0, next_attempt_at = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The newest event creation time stored, where a catch-up pass over `GET /v1/events` resumes.
pub async fn latest_event_created(
    conn: &mut PgConnection,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT max(created) FROM stripe_events")
        .fetch_one(&mut *conn)
        .await?)
}

/// The catch-up pass's place in Stripe's event list: every listed event up to this one
/// (inclusive) has been stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CatchUpCursor {
    pub event_id: String,
    pub event_created: DateTime<Utc>,
}

pub async fn catch_up_cursor(conn: &mut PgConnection) -> Result<Option<CatchUpCursor>, StoreError> {
    Ok(
        sqlx::query_as("SELECT event_id, event_created FROM catch_up_cursor")
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Moves the cursor to `to`, never back past a newer one another instance recorded
/// (two passes racing only read the same events twice).
pub async fn advance_catch_up_cursor(
    conn: &mut PgConnection,
    to: &CatchUpCursor,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO catch_up_cursor (event_id, event_created) VALUES ($1, $2) \
         ON CONFLICT (singleton) DO UPDATE SET event_id = $1, event_created = $2, updated_at = now() \
         WHERE catch_up_cursor.event_created <= $2",
    )
    .bind(&to.event_id)
    .bind(to.event_created)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
