//! Reconciliation: instead of being told by an event, we read a transaction's
//! PaymentIntent or Invoice back from Stripe and apply the state it is in through the
//! same [`settle::apply`] as an event, with [`Cause::Reconciliation`]. The ingestor's
//! sweeper and the operator's `ReconcileTransaction` both end here; each fetches the
//! object with its own Stripe client.

use serde_json::Value;
use sqlx::PgConnection;

use crate::{
    Transaction, TransactionStatus,
    settle::{self, Cause, Context, Outcome},
    store::StoreError,
    stripe_object,
};

/// The Stripe object that holds a transaction's truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef<'a> {
    /// Coupons are paid through an invoice.
    Invoice(&'a str),
    PaymentIntent(&'a str),
}

/// The object to read back, or None when the request never reached Stripe (or its
/// answer was not recorded): there is nothing to reconcile against.
pub fn object_ref(tx: &Transaction) -> Option<ObjectRef<'_>> {
    match (&tx.stripe_invoice_id, &tx.stripe_payment_intent_id) {
        (Some(invoice), _) => Some(ObjectRef::Invoice(invoice)),
        (None, Some(pi)) => Some(ObjectRef::PaymentIntent(pi)),
        (None, None) => None,
    }
}

/// What reconciling one transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The object's state moved the transaction (or its money).
    Applied {
        from: TransactionStatus,
        to: TransactionStatus,
    },
    /// Nothing new: the object waits on the customer, or says what we already know.
    Unchanged,
    /// The state cannot be applied yet (a refund before its success).
    Deferred(String),
    /// Applying it would break a rule (another currency, say): left for an operator.
    Flagged(String),
}

impl Reconciled {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Reconciled::Applied { .. } => "applied",
            Reconciled::Unchanged => "unchanged",
            Reconciled::Deferred(_) => "deferred",
            Reconciled::Flagged(_) => "flagged",
        }
    }
}

/// Applies what `object` (the transaction's PaymentIntent or Invoice as Stripe returns
/// it now) says to `tx`, which the caller has locked, in the caller's database
/// transaction.
pub async fn apply_object(
    conn: &mut PgConnection,
    tx: &Transaction,
    object: &Value,
) -> Result<Reconciled, StoreError> {
    let Some(signal) = stripe_object::signal(object) else {
        return Ok(Reconciled::Unchanged);
    };
    let context = Context {
        currency: stripe_object::currency(object),
        charge: stripe_object::charge(object),
    };
    let outcome = settle::apply(conn, tx, &signal, Cause::Reconciliation, context).await?;
    Ok(match outcome {
        Outcome::Applied(updated) => Reconciled::Applied {
            from: tx.status,
            to: updated.status,
        },
        Outcome::Stale => Reconciled::Unchanged,
        Outcome::Deferred(why) => Reconciled::Deferred(why.to_owned()),
        Outcome::Flagged(why) => Reconciled::Flagged(why),
    })
}
