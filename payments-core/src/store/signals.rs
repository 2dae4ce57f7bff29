//! What an on-call engineer watches in the database: events that need attention by
//! state, transactions still unsettled by status, the outbox's oldest pending call.
//! One round trip, each part read from a partial index (migrations 0015-0017), and
//! every count capped, so its cost stays bounded however far things have gone wrong.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;

/// Event states that mean "not done yet" or "needs an operator".
pub const ATTENTION_EVENT_STATES: [&str; 5] =
    ["received", "unmatched", "deferred", "flagged", "dead"];
/// Transaction statuses that are not settled (see `TransactionStatus::is_settled`).
pub const UNSETTLED_STATUSES: [&str; 3] = ["created", "pending", "requires_action"];

/// Counts stop here: beyond it, the exact number does not change what to do.
pub const COUNT_CAP: i64 = 100_000;

/// Rows in one state: how many (at most [`COUNT_CAP`]) and since when the oldest waits.
#[derive(Debug, Clone, PartialEq)]
pub struct StateCount {
    pub state: &'static str,
    pub count: i64,
    pub oldest: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSignals {
    /// One entry per [`ATTENTION_EVENT_STATES`], oldest by `received_at`.
    pub events: Vec<StateCount>,
    /// One entry per [`UNSETTLED_STATUSES`], oldest by `created_at`.
    pub unsettled: Vec<StateCount>,
    /// Pending outbox calls; oldest by `created_at`.
    pub outbox: StateCount,
    /// The database's clock when read, to age the timestamps against.
    pub now: DateTime<Utc>,
}

impl StateCount {
    /// Seconds the oldest row has waited at `now`; 0 when there is none.
    pub fn oldest_age_seconds(&self, now: DateTime<Utc>) -> f64 {
        self.oldest.map_or(0.0, |t| {
            ((now - t).num_milliseconds().max(0) as f64) / 1000.0
        })
    }
}

/// One `SELECT` of a count and an oldest timestamp per (table, column, value); the
/// values are literals so each part can use its partial index, and the oldest is the
/// index's first entry (an index-only scan of one row, where `min()` would read them all).
fn part(table: &str, column: &str, value: &str, time: &str) -> String {
    format!(
        "SELECT '{value}'::text, \
           (SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {column} = '{value}' \
              LIMIT {COUNT_CAP}) capped), \
           (SELECT {time} FROM {table} WHERE {column} = '{value}' \
              ORDER BY {time} LIMIT 1)"
    )
}

pub async fn health_signals(conn: &mut PgConnection) -> Result<HealthSignals, StoreError> {
    let parts: Vec<String> = ATTENTION_EVENT_STATES
        .iter()
        .map(|s| part("stripe_events", "state", s, "received_at"))
        .chain(
            UNSETTLED_STATUSES
                .iter()
                .map(|s| part("transactions", "status", s, "created_at")),
        )
        .chain([part("outbox", "state", "pending", "created_at")])
        .collect();
    // Every value in the statement is one of the constants above.
    let sql = parts.join(" UNION ALL ");
    let rows: Vec<(String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let count = |state: &'static str, i: usize| -> Result<StateCount, StoreError> {
        let (_, count, oldest) = rows
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("no signal row for {state}")))?;
        Ok(StateCount {
            state,
            count: *count,
            oldest: *oldest,
        })
    };
    let events = ATTENTION_EVENT_STATES.len();
    let unsettled = UNSETTLED_STATUSES.len();
    Ok(HealthSignals {
        events: (0..events)
            .map(|i| count(ATTENTION_EVENT_STATES[i], i))
            .collect::<Result<_, _>>()?,
        unsettled: (0..unsettled)
            .map(|i| count(UNSETTLED_STATUSES[i], events + i))
            .collect::<Result<_, _>>()?,
        outbox: count("pending", events + unsettled)?,
        now,
    })
}
