//! Queries this service needs that the shared store does not offer yet. They follow
//! payments-core's conventions (a `&mut PgConnection`, `StoreError`) so they can move
//! there unchanged.

use chrono::{DateTime, Utc};
use payments_core::{TransactionId, store::StoreError};
use sqlx::PgConnection;
use uuid::Uuid;

/// A position in the sweep over unsettled transactions, oldest change first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCursor {
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of unsettled transactions untouched since `older_than`, after `after`.
/// Unlike `store::lock_unsettled` this pages with a keyset, so transactions that stay
/// unsettled for good (an abandoned 3DS) cannot starve the ones behind them.
pub async fn unsettled_page(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
    after: Option<SweepCursor>,
    limit: i64,
) -> Result<Vec<SweepCursor>, StoreError> {
    let rows: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(
        "SELECT updated_at, id FROM transactions \
         WHERE status IN ('created', 'pending', 'requires_action') AND updated_at < $1 \
           AND ($2::timestamptz IS NULL OR (updated_at, id) > ($2, $3)) \
         ORDER BY updated_at, id LIMIT $4",
    )
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
/// instance holds it; false otherwise (skip it).
pub async fn claim_unsettled(
    conn: &mut PgConnection,
    id: TransactionId,
) -> Result<bool, StoreError> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM transactions WHERE id = $1 \
         AND status IN ('created', 'pending', 'requires_action') FOR UPDATE SKIP LOCKED",
    )
    .bind(id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}
