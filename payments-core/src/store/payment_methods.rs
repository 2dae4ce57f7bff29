//! The `payment_methods` table: each user's cards as Stripe described them, when
//! they were validated and detached. A card belongs to one user.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::StoreError;
use crate::{CardDetails, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PaymentMethodRow {
    pub id: String,
    pub user_id: UserId,
    pub brand: String,
    pub last4: String,
    pub fingerprint: String,
    pub validated_at: Option<DateTime<Utc>>,
    pub detached_at: Option<DateTime<Utc>>,
}

impl PaymentMethodRow {
    pub fn validated(&self) -> bool {
        self.validated_at.is_some()
    }
}

const COLUMNS: &str = "id, user_id, brand, last4, fingerprint, validated_at, detached_at";

/// What [`upsert_payment_method`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// The card is recorded for the user, as it now is.
    Recorded(PaymentMethodRow),
    /// The payment method is already recorded for another user: nothing changed.
    OwnedByAnotherUser,
}

/// Records (or refreshes) a card attached to the user. Details only fill in what is
/// unknown, so an attach event arriving after a validation never clears anything.
pub async fn upsert_payment_method(
    conn: &mut PgConnection,
    user: &UserId,
    card: &CardDetails,
) -> Result<Upserted, StoreError> {
    let sql = format!(
        "INSERT INTO payment_methods (id, user_id, brand, last4, fingerprint) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET \
           brand = CASE WHEN payment_methods.brand = '' THEN EXCLUDED.brand ELSE payment_methods.brand END, \
           last4 = CASE WHEN payment_methods.last4 = '' THEN EXCLUDED.last4 ELSE payment_methods.last4 END, \
           fingerprint = CASE WHEN payment_methods.fingerprint = '' THEN EXCLUDED.fingerprint \
                         ELSE payment_methods.fingerprint END, \
           updated_at = now() \
         WHERE payment_methods.user_id = EXCLUDED.user_id \
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as::<_, PaymentMethodRow>(sqlx::AssertSqlSafe(sql))
        .bind(&card.payment_method_id)
        .bind(user.as_str())
        .bind(&card.brand)
        .bind(&card.last4)
        .bind(&card.fingerprint)
        .fetch_optional(&mut *conn)
        .await?;
    // The update's WHERE refuses another user's row, so no row comes back.
    Ok(row.map_or(Upserted::OwnedByAnotherUser, Upserted::Recorded))
}

/// The user a payment method is recorded for, detached or not.
pub async fn payment_method_owner(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<UserId>, StoreError> {
    let owner: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM payment_methods WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    owner
        .map(|u| UserId::parse(&u).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

/// Marks a card validated, creating its row if the attach has not been recorded yet.
pub async fn mark_validated(
    conn: &mut PgConnection,
    user: &UserId,
    payment_method_id: &str,
    fingerprint: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payment_methods (id, user_id, fingerprint, validated_at) VALUES ($1, $2, COALESCE($3, ''), now()) \
         ON CONFLICT (id) DO UPDATE SET validated_at = COALESCE(payment_methods.validated_at, now()), \
           updated_at = now() WHERE payment_methods.user_id = EXCLUDED.user_id",
    )
    .bind(payment_method_id)
    .bind(user.as_str())
    .bind(fingerprint)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_payment_method(
    conn: &mut PgConnection,
    user: &UserId,
    id: &str,
) -> Result<Option<PaymentMethodRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payment_methods WHERE id = $1 AND user_id = $2 AND detached_at IS NULL"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await?)
}

pub async fn list_payment_methods(
    conn: &mut PgConnection,
    user: &UserId,
) -> Result<Vec<PaymentMethodRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payment_methods WHERE user_id = $1 AND detached_at IS NULL ORDER BY created_at, id"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user.as_str())
        .fetch_all(&mut *conn)
        .await?)
}

/// Marks a card detached; returns the row as it now is, if it exists.
pub async fn mark_detached(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<PaymentMethodRow>, StoreError> {
    let sql = format!(
        "UPDATE payment_methods SET detached_at = COALESCE(detached_at, now()), updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}
