//! What an on-call engineer watches in the database: events that need attention by
//! state, transactions still unsettled by status, the outbox's oldest pending call.
//! One round trip, each part read from an index (the events' and the outbox's partial
//! indexes, migrations 0016-0017; `unsettled_transactions` by status, 0025), and
//! every count capped, so its cost stays bounded however far things have gone wrong.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{EventState, StoreError};
use crate::TransactionStatus;

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
    /// One entry per [`EventState::ATTENTION`], oldest by `received_at`.
    pub events: Vec<StateCount>,
    /// One entry per [`TransactionStatus::UNSETTLED`], oldest by `created_at`.
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
    let attention: Vec<&'static str> = EventState::ATTENTION.iter().map(|s| s.as_str()).collect();
    let unsettled: Vec<&'static str> = TransactionStatus::UNSETTLED
        .iter()
        .map(|s| s.as_str())
        .collect();
    let parts: Vec<String> = attention
        .iter()
        .map(|s| part("stripe_events", "state", s, "received_at"))
        .chain(
            unsettled
                .iter()
                .map(|s| part("unsettled_transactions", "status", s, "created_at")),
        )
        .chain([part("outbox", "state", "pending", "created_at")])
        .collect();
    // Every value in the statement is a stored name of one of the sets above.
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
    let events = attention.len();
    Ok(HealthSignals {
        events: attention
            .iter()
            .enumerate()
            .map(|(i, state)| count(state, i))
            .collect::<Result<_, _>>()?,
        unsettled: unsettled
            .iter()
            .enumerate()
            .map(|(i, status)| count(status, events + i))
            .collect::<Result<_, _>>()?,
        outbox: count("pending", events + unsettled.len())?,
        now,
    })
}
