//! Driving a card transaction (a top-up or a card validation) to Stripe: create and
//! confirm its PaymentIntent, then record what the answer implies.

use payments_core::{
    Signal, Transaction, TransactionKind, TransactionStatus,
    settle::{self, Cause, Context, Outcome},
    store::{self, StripeRefs},
};
use sqlx::PgConnection;

use super::{AppState, customers::ensure_customer};
use crate::{
    error::{ApiError, ApiResult},
    stripe_client::{IntentRequest, StripeFailure},
};

/// Whether the transaction still waits for its PaymentIntent: created, and no
/// PaymentIntent recorded (a first call, or a retry after Stripe could not be reached).
fn awaits_intent(tx: &Transaction) -> bool {
    tx.status == TransactionStatus::Created && tx.stripe_payment_intent_id.is_none()
}

/// Creates the PaymentIntent of a transaction that has none yet and records the
/// answer; otherwise returns the transaction as it is. No database connection or row
/// lock is held while Stripe answers, so the pool bounds database work, not Stripe's
/// latency. Concurrent calls for one transaction are safe without one: they send the
/// same Stripe idempotency key (the transaction's), so Stripe creates one PaymentIntent
/// and gives both the same answer (or refuses the second with 409, which is
/// `UNAVAILABLE` here and changes nothing), and recording an answer twice, or after a
/// webhook has moved the transaction on, is a no-op of the state machine.
#[tracing::instrument(skip_all, fields(transaction_id = %tx.id))]
pub async fn drive(state: &AppState, tx: Transaction) -> ApiResult<Transaction> {
    if !awaits_intent(&tx) {
        return Ok(tx);
    }
    let customer = ensure_customer(state, &tx.user_id).await?;
    let payment_method = tx.payment_method_id.clone().ok_or_else(|| {
        ApiError::internal(
            "card transaction without a payment method",
            tx.id.to_string(),
        )
    })?;
    let answer = state
        .stripe
        .create_payment_intent(&IntentRequest {
            transaction_id: tx.id,
            amount: tx.amount,
            customer: &customer,
            payment_method: &payment_method,
            manual_capture: tx.kind == TransactionKind::CardValidation,
        })
        .await;
    let (refs, signal) = match answer {
        Ok(outcome) => (
            (Some(outcome.payment_intent_id), outcome.client_secret),
            outcome.signal,
        ),
        Err(failure) => {
            let (payment_intent, signal) = refused(failure)?;
            ((payment_intent, None), Some(signal))
        }
    };
    let refs = StripeRefs {
        payment_intent_id: refs.0.as_deref(),
        invoice_id: None,
        client_secret: refs.1.as_deref(),
    };
    let mut db = store::begin(&state.pool, "create_payment").await?;
    store::set_stripe_refs(&mut db, tx.id, &refs).await?;
    let updated = record(&mut db, &tx, signal.as_ref()).await?;
    db.commit().await?;
    tracing::info!(status = %updated.status, "recorded Stripe's answer");
    Ok(updated)
}

/// A Stripe failure that is an answer about the payment (a decline, a refused
/// request) becomes a failure signal; one that is not (Stripe unreachable) is an
/// error, and the transaction stays as it was for a retry or reconciliation.
pub fn refused(failure: StripeFailure) -> ApiResult<(Option<String>, Signal)> {
    match failure {
        StripeFailure::Declined {
            code,
            message,
            payment_intent,
        } => Ok((payment_intent, Signal::Failed { code, message })),
        StripeFailure::Rejected { code, message, .. } => {
            Ok((None, Signal::Failed { code, message }))
        }
        other => Err(other.into()),
    }
}

/// Locks the transaction again inside the caller's database transaction.
pub async fn lock(db: &mut PgConnection, tx: &Transaction) -> ApiResult<Transaction> {
    store::lock_transaction(db, tx.id)
        .await?
        .ok_or_else(|| ApiError::internal("transaction vanished", tx.id.to_string()))
}

/// Applies what Stripe's answer implies (if anything) and returns the row as it now is.
pub async fn record(
    db: &mut PgConnection,
    tx: &Transaction,
    signal: Option<&Signal>,
) -> ApiResult<Transaction> {
    let current = lock(db, tx).await?;
    let Some(signal) = signal else {
        return Ok(current);
    };
    match settle::apply(db, &current, signal, Cause::Request, Context::default()).await? {
        Outcome::Applied(updated) => Ok(updated),
        Outcome::Stale | Outcome::Deferred(_) | Outcome::Flagged(_) => lock(db, tx).await,
    }
}
