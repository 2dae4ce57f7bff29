//! The unsettled transactions reconciliation sweeps: one page at a time by
//! `(updated_at, id)`, each claimed with `SKIP LOCKED`. The set is the
//! `unsettled_transactions` table, which a trigger keeps from each row's status (so no
//! index on `transactions` holds the status, and settling a transaction can be a HOT
//! update); its CHECK and the claim's predicate are [`TransactionStatus::UNSETTLED`]
//! (a test compares them).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLUMNS, from_row};
use crate::{Transaction, TransactionId, TransactionStatus, store::StoreError};

/// [`TransactionStatus::UNSETTLED`] as the claim (and the `unsettled_transactions`
/// CHECK) write it.
pub fn unsettled_predicate() -> String {
    format!(
        "status IN ({})",
        crate::text::sql_list(TransactionStatus::UNSETTLED)
    )
}

/// A position in the sweep over unsettled transactions, oldest change first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCursor {
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of unsettled transactions untouched since `older_than`, after `after`, and
/// not backed off ([`back_off_reconciliation`]): candidates for reconciliation. Keyset paging, so transactions that stay unsettled
/// for good (an abandoned 3DS) cannot starve the ones behind them.
pub async fn unsettled_page(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
    after: Option<SweepCursor>,
    limit: i64,
) -> Result<Vec<SweepCursor>, StoreError> {
    let sql = "SELECT t.updated_at, t.id FROM unsettled_transactions u \
         JOIN transactions t ON t.id = u.transaction_id \
         WHERE t.updated_at < $1 \
           AND ($2::timestamptz IS NULL OR (t.updated_at, t.id) > ($2, $3)) \
           AND NOT EXISTS (SELECT 1 FROM reconcile_backoff b \
                           WHERE b.transaction_id = t.id AND b.next_attempt_at > now()) \
         ORDER BY t.updated_at, t.id LIMIT $4";
    let rows: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(sql)
        .bind(older_than)
        .bind(after.map(|c| c.updated_at))
        .bind(after.map(|c| c.id))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(updated_at, id)| SweepCursor { updated_at, id })
        .collect())
}

/// Locks the transaction for reconciliation if it is still unsettled and no other
/// instance holds it; None otherwise (skip it).
pub async fn claim_unsettled(
    conn: &mut PgConnection,
    id: TransactionId,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions WHERE id = $1 AND {} FOR UPDATE SKIP LOCKED",
        unsettled_predicate()
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// When the oldest transaction was created: nothing we made at Stripe is older (the
/// catch-up's first pass reads back to here when it has no event to start from).
pub async fn oldest_transaction_created(
    conn: &mut PgConnection,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT min(created_at) FROM transactions")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Reading the transaction back changed nothing: it is not read again before a delay
/// that doubles with each such read, from `base` up to `max`.
pub async fn back_off_reconciliation(
    conn: &mut PgConnection,
    id: TransactionId,
    base: std::time::Duration,
    max: std::time::Duration,
) -> Result<(), StoreError> {
    let base_ms = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
    let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO reconcile_backoff AS b (transaction_id, attempts, next_attempt_at) \
         VALUES ($1, 1, now() + $2 * interval '1 millisecond') \
         ON CONFLICT (transaction_id) DO UPDATE SET attempts = b.attempts + 1, \
           next_attempt_at = now() + least($3::float8, $2::float8 * power(2, least(b.attempts, 40))) \
                                     * interval '1 millisecond'",
    )
    .bind(id.as_uuid())
    .bind(base_ms)
    .bind(max_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
