//! The `outbox`: calls to Stripe that must follow a commit, enqueued in the same
//! database transaction as the change that needs them, and claimed, completed or
//! rescheduled by the ingestor's worker.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::{TransactionId, text::text_enum};

text_enum!(
    /// A call to Stripe that must follow a commit.
    OutboxKind as "outbox kind" {
        CancelPaymentIntent = "cancel_payment_intent",
    }
);

/// Enqueues a call in the caller's database transaction; the idempotency key makes
/// a second enqueue of the same call a no-op, and is sent to Stripe as is.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: OutboxKind,
    transaction: TransactionId,
    target: &str,
    idempotency_key: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO outbox (kind, transaction_id, target, idempotency_key) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(kind)
    .bind(transaction.as_uuid())
    .bind(target)
    .bind(idempotency_key)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: OutboxKind,
    pub transaction_id: Uuid,
    pub target: String,
    pub idempotency_key: String,
    pub attempts: i32,
}

/// Claims due rows; rows another worker holds are skipped.
pub async fn claim_outbox(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, kind, transaction_id, target, idempotency_key, attempts FROM outbox \
         WHERE state = 'pending' AND next_attempt_at <= now() ORDER BY next_attempt_at \
         LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn complete_outbox(conn: &mut PgConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET state = 'done', done_at = now(), attempts = attempts + 1 WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `next`, or dead when `next` is None.
pub async fn fail_outbox(
    conn: &mut PgConnection,
    id: i64,
    error: &str,
    next: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
         state = CASE WHEN $3::timestamptz IS NULL THEN 'dead' ELSE 'pending' END, \
         next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(next)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn outbox_depth(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'pending'")
            .fetch_one(&mut *conn)
            .await?,
    )
}
