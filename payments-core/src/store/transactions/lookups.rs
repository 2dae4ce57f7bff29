//! What the request path asks of the table before it calls Stripe: the transaction
//! under an idempotency key, how many attempts failed, the validation that proved a
//! card, whether a coupon was redeemed.

use sqlx::PgConnection;

use super::{COLUMNS, from_row};
use crate::{Transaction, TransactionStatus, UserId, store::StoreError};

/// [`TransactionStatus::UNSUCCESSFUL`] as the queries (and the
/// `transactions_coupon_once` index, negated) write it.
pub fn unsuccessful_predicate() -> String {
    format!(
        "status IN ({})",
        crate::text::sql_list(TransactionStatus::UNSUCCESSFUL)
    )
}

/// The transaction the user created under this idempotency key, if any.
pub async fn find_by_idempotency_key(
    conn: &mut PgConnection,
    user: &UserId,
    key: &str,
) -> Result<Option<Transaction>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM transactions WHERE user_id = $1 AND idempotency_key = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// How many of the user's transactions under keys starting with `prefix` failed or
/// were canceled: the attempt number of the next derived key.
pub async fn failed_attempts(
    conn: &mut PgConnection,
    user: &UserId,
    prefix: &str,
) -> Result<i64, StoreError> {
    let sql = format!(
        "SELECT count(*) FROM transactions WHERE user_id = $1 \
         AND starts_with(idempotency_key, $2) AND {}",
        unsuccessful_predicate()
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(prefix)
        .fetch_one(&mut *conn)
        .await?)
}

/// The succeeded card validation that proved this card, newest first.
pub async fn validating_transaction(
    conn: &mut PgConnection,
    user: &UserId,
    payment_method: &str,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions WHERE user_id = $1 AND payment_method_id = $2 \
         AND kind = 'card_validation' AND status = 'succeeded' ORDER BY updated_at DESC, id DESC LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(payment_method)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Whether the user already redeemed this code (case-insensitively) in a transaction
/// that did not fail: a pre-check before calling Stripe; the `transactions_coupon_once`
/// index still decides races.
pub async fn coupon_redeemed(
    conn: &mut PgConnection,
    user: &UserId,
    code: &str,
) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT 1 FROM transactions WHERE user_id = $1 AND kind = 'coupon' \
         AND lower(coupon_code) = lower($2) AND NOT {}",
        unsuccessful_predicate()
    );
    let found: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Whether the user has a successful top-up or redemption (a promotion code restricted to
/// first-time transactions excludes them), as Stripe counts a customer's prior payments.
pub async fn has_paid_before(conn: &mut PgConnection, user: &UserId) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM transactions WHERE user_id = $1 \
           AND kind IN ('payment', 'coupon') AND status IN ('succeeded', 'refunded'))",
    )
    .bind(user.as_str())
    .fetch_one(&mut *conn)
    .await?)
}

/// Locks the other live (neither failed nor canceled) redemption of `tx`'s coupon by
/// its user, if any: the one a late success of `tx` would meet in the
/// `transactions_coupon_once` indexes (the same Stripe coupon where both recorded it,
/// else the same code).
pub async fn lock_live_coupon_sibling(
    conn: &mut PgConnection,
    tx: &Transaction,
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions s WHERE s.user_id = $2 AND s.kind = 'coupon' \
         AND s.id <> $1 AND NOT {} \
         AND (s.stripe_coupon_id = (SELECT stripe_coupon_id FROM transactions WHERE id = $1) \
              OR lower(s.coupon_code) = lower($3)) \
         ORDER BY s.created_at LIMIT 1 FOR UPDATE",
        unsuccessful_predicate()
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tx.id.as_uuid())
        .bind(&tx.user_id)
        .bind(&tx.coupon_code)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}
