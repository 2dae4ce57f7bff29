//! The user's Stripe customer, created on first use.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use payments_core::{UserId, store};

use super::AppState;
use crate::error::ApiResult;

/// The user's Stripe customer id, creating the customer if there is none. Nothing is
/// held while Stripe creates it: no pooled connection, no row lock. Concurrent first
/// calls on this instance wait for one creation ([`FirstCalls`], in memory); across
/// instances the Stripe idempotency key derived from the user makes the same customer,
/// and the first id recorded wins.
pub async fn ensure_customer(state: &AppState, user: &UserId) -> ApiResult<String> {
    if let Some(id) = recorded(state, user).await? {
        return Ok(id);
    }
    let _turn = state.first_calls.wait_turn(user).await;
    if let Some(id) = recorded(state, user).await? {
        return Ok(id);
    }
    let created = state.stripe.create_customer(user.as_str()).await?;
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    Ok(store::record_stripe_customer(&mut conn, user, &created).await?)
}

async fn recorded(state: &AppState, user: &UserId) -> ApiResult<Option<String>> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(store::StoreError::from)?;
    Ok(store::stripe_customer(&mut conn, user).await?)
}

/// One creation at a time per user on this instance; the others wait without holding
/// a database connection, then find the customer recorded.
#[derive(Default)]
pub struct FirstCalls {
    turns: Mutex<HashMap<UserId, Arc<tokio::sync::Mutex<()>>>>,
}

/// The user's turn; the entry goes when the last caller waiting for it is done.
pub struct Turn<'a> {
    calls: &'a FirstCalls,
    user: UserId,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl FirstCalls {
    pub async fn wait_turn(&self, user: &UserId) -> Turn<'_> {
        let lock = self
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user.clone())
            .or_default()
            .clone();
        Turn {
            calls: self,
            user: user.clone(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut turns = self
            .calls
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map holds it: nobody is waiting.
        if turns
            .get(&self.user)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            turns.remove(&self.user);
        }
    }
}
