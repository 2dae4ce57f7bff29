//! The user's Stripe customer, created on first use.

use payments_core::{UserId, store};

use super::AppState;
use crate::error::ApiResult;

/// The user's Stripe customer id, creating the customer if there is none. The row
/// lock makes concurrent first calls wait for one creation, and the Stripe
/// idempotency key derived from the user covers a crash between Stripe and commit.
pub async fn ensure_customer(state: &AppState, user: &UserId) -> ApiResult<String> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    if let Some(id) = store::stripe_customer(&mut conn, user).await? {
        return Ok(id);
    }
    drop(conn);
    let mut db = store::begin(&state.pool, "ensure_customer").await?;
    if let Some(id) = store::lock_customer(&mut db, user).await? {
        return Ok(id);
    }
    let id = state.stripe.create_customer(user.as_str()).await?;
    store::set_stripe_customer(&mut db, user, &id).await?;
    db.commit().await?;
    Ok(id)
}
