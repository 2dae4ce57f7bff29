//! The `outbox`: calls to Stripe that must follow a commit, enqueued in the same
//! database transaction as the change that needs them, and claimed, completed or
//! rescheduled by the ingestor's worker.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::{TransactionId, text::text_enum};

text_enum!(
    /// A call to Stripe that must follow a commit: releasing a hold, or voiding the
    /// invoice of a coupon attempt that failed or was canceled.
    OutboxKind as "outbox kind" {
        CancelPaymentIntent = "cancel_payment_intent",
        VoidInvoice = "void_invoice",
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

/// Claims due rows for `lease`, in one statement that commits on its own: a claimed
/// row is not due again until the lease ends, so other workers leave it alone while
/// its call is sent, and no row lock or database transaction waits on Stripe. A worker
/// that dies mid-call leaves the row to be claimed again after the lease (the call's
/// idempotency key makes the repeat harmless).
pub async fn claim_outbox(
    conn: &mut PgConnection,
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<OutboxRow>, StoreError> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    Ok(sqlx::query_as(
        "UPDATE outbox SET next_attempt_at = now() + $2 * interval '1 millisecond' \
         WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= now() \
                      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, transaction_id, target, idempotency_key, attempts",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(&mut *conn)
    .await?)
}

/// Marks a pending row done (a row another worker finished first stays as it is).
pub async fn complete_outbox(conn: &mut PgConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET state = 'done', done_at = now(), attempts = attempts + 1 \
         WHERE id = $1 AND state = 'pending'",
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
         next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $1 AND state = 'pending'",
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
