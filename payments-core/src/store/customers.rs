//! The `customers` table: each user's Stripe customer, created once (the row lock
//! serializes concurrent first calls) and looked up both ways.

use sqlx::PgConnection;

use super::StoreError;
use crate::UserId;

/// Records the user's Stripe customer unless one is recorded already, and returns
/// the one that is: the first writer wins, so two instances that both created the
/// customer (with the same idempotency key, so the same customer) agree. Nothing is
/// locked while Stripe is asked: this runs once Stripe has answered.
pub async fn record_stripe_customer(
    conn: &mut PgConnection,
    user: &UserId,
    customer: &str,
) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO customers (user_id, stripe_customer_id) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE \
         SET stripe_customer_id = COALESCE(customers.stripe_customer_id, EXCLUDED.stripe_customer_id) \
         RETURNING stripe_customer_id",
    )
    .bind(user.as_str())
    .bind(customer)
    .fetch_one(&mut *conn)
    .await?)
}

pub async fn stripe_customer(
    conn: &mut PgConnection,
    user: &UserId,
) -> Result<Option<String>, StoreError> {
    let id: Option<Option<String>> =
        sqlx::query_scalar("SELECT stripe_customer_id FROM customers WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(id.flatten())
}

pub async fn user_for_customer(
    conn: &mut PgConnection,
    customer: &str,
) -> Result<Option<UserId>, StoreError> {
    let user: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM customers WHERE stripe_customer_id = $1")
            .bind(customer)
            .fetch_optional(&mut *conn)
            .await?;
    user.map(|u| UserId::parse(&u).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}
