//! Queries this service needs that `payments_core::store` does not have yet. They
//! belong there; they live here until it grows them.

use payments_core::{
    Transaction, TransactionId, UserId,
    store::{self, StoreError},
};
use sqlx::PgConnection;
use uuid::Uuid;

/// The transaction the user created under this idempotency key, if any.
pub async fn find_by_idempotency_key(
    conn: &mut PgConnection,
    user: &UserId,
    key: &str,
) -> Result<Option<Transaction>, StoreError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM transactions WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(user.as_str())
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => store::get_transaction(conn, TransactionId::from(id)).await,
        None => Ok(None),
    }
}

/// How many of the user's transactions under keys starting with `prefix` failed or
/// were canceled: the attempt number of the next derived key.
pub async fn failed_attempts(
    conn: &mut PgConnection,
    user: &UserId,
    prefix: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM transactions WHERE user_id = $1 \
         AND starts_with(idempotency_key, $2) AND status IN ('failed', 'canceled')",
    )
    .bind(user.as_str())
    .bind(prefix)
    .fetch_one(&mut *conn)
    .await?)
}

/// The card validation that proved this card, newest first.
pub async fn validating_transaction(
    conn: &mut PgConnection,
    user: &UserId,
    payment_method: &str,
) -> Result<Option<Transaction>, StoreError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM transactions WHERE user_id = $1 AND payment_method_id = $2 \
         AND kind = 'card_validation' AND status = 'succeeded' \
         ORDER BY updated_at DESC, id DESC LIMIT 1",
    )
    .bind(user.as_str())
    .bind(payment_method)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => store::get_transaction(conn, TransactionId::from(id)).await,
        None => Ok(None),
    }
}

/// Whether the user already redeemed this code (case-insensitively) in a
/// transaction that did not fail: what the `transactions_coupon_once` index refuses.
pub async fn coupon_redeemed(
    conn: &mut PgConnection,
    user: &UserId,
    code: &str,
) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM transactions WHERE user_id = $1 AND kind = 'coupon' \
         AND lower(coupon_code) = lower($2) AND status NOT IN ('failed', 'canceled')",
    )
    .bind(user.as_str())
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}
