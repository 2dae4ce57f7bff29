//! The `customers` table: each user's Stripe customer, created once (the row lock
//! serializes concurrent first calls) and looked up both ways.

use sqlx::PgConnection;

use super::StoreError;
use crate::UserId;

/// Locks the user's customer row (creating it empty on first use) and returns the
/// Stripe customer id if one is recorded. Holding the lock while creating the Stripe
/// customer makes concurrent first calls create exactly one.
pub async fn lock_customer(
    conn: &mut PgConnection,
    user: &UserId,
) -> Result<Option<String>, StoreError> {
    sqlx::query("INSERT INTO customers (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user.as_str())
        .execute(&mut *conn)
        .await?;
    let id: Option<String> = sqlx::query_scalar(
        "SELECT stripe_customer_id FROM customers WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

pub async fn set_stripe_customer(
    conn: &mut PgConnection,
    user: &UserId,
    customer: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE customers SET stripe_customer_id = $2 WHERE user_id = $1")
        .bind(user.as_str())
        .bind(customer)
        .execute(&mut *conn)
        .await?;
    Ok(())
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
