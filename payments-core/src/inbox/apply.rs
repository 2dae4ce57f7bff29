//! What one event does, decided by payments-core and written in the caller's database
//! transaction: find the transaction (or customer) it is about and apply its signal.
//! Nothing here commits, and nothing here decides a state rule.

use sqlx::PgConnection;

use crate::{
    CardDetails, Meaning, Signal, StripeEvent, Target, Transaction, TransactionId,
    TransactionStatus,
    settle::{self, Cause, Context, Outcome},
    store::{self, EventState, StoreError, StripeRefs, Upserted},
};

/// What one processing attempt found, before it is recorded on the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub state: EventState,
    pub transaction_id: Option<TransactionId>,
    /// Why the event ended in this state, when that needs saying (kept as `last_error`).
    pub note: Option<String>,
    /// The status change committed, if any (from, to).
    pub transition: Option<(TransactionStatus, TransactionStatus)>,
}

impl Handled {
    fn new(state: EventState) -> Self {
        Handled {
            state,
            transaction_id: None,
            note: None,
            transition: None,
        }
    }

    fn because(state: EventState, note: impl Into<String>) -> Self {
        Handled {
            note: Some(note.into()),
            ..Handled::new(state)
        }
    }

    /// The attempt failed with an error that is not the database being away: the event
    /// stays stored (state received) and is retried.
    pub fn failed(error: impl Into<String>) -> Self {
        Handled::because(EventState::Received, error)
    }
}

/// Applies `event`. Errors are the store's; a missing transaction or customer is an
/// outcome (unmatched), not an error.
pub async fn apply(conn: &mut PgConnection, event: &StripeEvent) -> Result<Handled, StoreError> {
    let meaning = match event.meaning() {
        Ok(meaning) => meaning,
        // The type is one we act on but the object lacks what the rule needs: retrying
        // cannot help, an operator must look.
        Err(e) => return Ok(Handled::because(EventState::Flagged, e.to_string())),
    };
    match meaning {
        Meaning::Transaction {
            target,
            signal,
            currency,
            charge,
            payment_method: _,
        } => {
            let found = store::lock_by_target(conn, &target).await?;
            let Some(tx) = found else {
                return Ok(Handled::because(
                    EventState::Unmatched,
                    "no transaction matches the event yet",
                ));
            };
            let tx = record_stripe_refs(conn, tx, &target).await?;
            let context = Context {
                currency: currency.as_deref(),
                charge: charge.as_deref(),
            };
            settle_transaction(conn, event, &tx, &signal, context).await
        }
        Meaning::PaymentMethodAttached(card) => attach(conn, &card).await,
        Meaning::PaymentMethodDetached { payment_method_id } => {
            match store::mark_detached(conn, &payment_method_id).await? {
                Some(_) => Ok(Handled::new(EventState::Applied)),
                // The attach may still be on its way (events are not delivered in order).
                None => Ok(Handled::because(
                    EventState::Unmatched,
                    "payment method not known yet",
                )),
            }
        }
        Meaning::Nothing => Ok(Handled::new(EventState::Ignored)),
    }
}

/// When the event found the transaction through our metadata id and Stripe's ids are
/// not recorded yet (the webhook beat payments-api's own write), records them, so
/// later events without metadata (refunds, disputes) and the outbox find them.
async fn record_stripe_refs(
    conn: &mut PgConnection,
    tx: Transaction,
    target: &Target,
) -> Result<Transaction, StoreError> {
    let via_metadata = target.transaction_id == Some(tx.id);
    let pi = target
        .payment_intent
        .as_deref()
        .filter(|_| tx.stripe_payment_intent_id.is_none());
    let invoice = target
        .invoice
        .as_deref()
        .filter(|_| tx.stripe_invoice_id.is_none());
    if !via_metadata || (pi.is_none() && invoice.is_none()) {
        return Ok(tx);
    }
    let refs = StripeRefs {
        payment_intent_id: pi,
        invoice_id: invoice,
        client_secret: None,
    };
    store::set_stripe_refs(conn, tx.id, &refs).await?;
    store::get_transaction(conn, tx.id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("transaction {} vanished", tx.id)))
}

async fn settle_transaction(
    conn: &mut PgConnection,
    event: &StripeEvent,
    tx: &Transaction,
    signal: &Signal,
    context: Context<'_>,
) -> Result<Handled, StoreError> {
    let cause = Cause::StripeEvent(event.id.as_str());
    let outcome = settle::apply(conn, tx, signal, cause, context).await?;
    let handled = match outcome {
        Outcome::Applied(updated) => Handled {
            transition: Some((tx.status, updated.status)),
            ..Handled::new(EventState::Applied)
        },
        Outcome::Stale => Handled::new(EventState::Stale),
        Outcome::Deferred(why) => Handled::because(EventState::Deferred, why),
        Outcome::Flagged(why) => Handled::because(EventState::Flagged, why),
    };
    Ok(Handled {
        transaction_id: Some(tx.id),
        ..handled
    })
}

async fn attach(conn: &mut PgConnection, card: &CardDetails) -> Result<Handled, StoreError> {
    let user = match &card.customer {
        Some(customer) => store::user_for_customer(conn, customer).await?,
        None => None,
    };
    // The customer row may not be committed yet (payments-api creates it around the
    // same time), so this is retried like any unmatched event.
    let Some(user) = user else {
        return Ok(Handled::because(
            EventState::Unmatched,
            "no user for the payment method's customer yet",
        ));
    };
    match store::upsert_payment_method(conn, &user, card).await? {
        Upserted::Recorded(_) => Ok(Handled::new(EventState::Applied)),
        Upserted::OwnedByAnotherUser => Ok(Handled::because(
            EventState::Flagged,
            "the payment method is recorded for another user",
        )),
    }
}
