//! Reconciliation: instead of being told by an event, we read a transaction's
//! PaymentIntent or Invoice back from Stripe and apply the state it is in through the
//! same [`settle::apply`] as an event, with [`Cause::Reconciliation`]. The ingestor's
//! sweeper and the operator's `ReconcileTransaction` both end here; each fetches the
//! object with its own Stripe client.

use serde_json::Value;
use sqlx::PgConnection;

use crate::{
    Transaction, TransactionKind, TransactionStatus,
    settle::{self, Cause, Context, Outcome},
    store::{self, StoreError, StripeRefs},
    stripe_object::StripeObject,
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

/// The kind of object a transaction is paid through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    PaymentIntent,
    Invoice,
}

impl ObjectKind {
    pub fn of(tx: &Transaction) -> ObjectKind {
        match tx.kind {
            TransactionKind::Coupon => ObjectKind::Invoice,
            TransactionKind::Payment | TransactionKind::CardValidation => ObjectKind::PaymentIntent,
        }
    }
}

/// The Stripe search query that finds what we created for `tx` when its id was never
/// recorded (our request reached Stripe but its answer was lost, and so was every
/// webhook): everything we create carries `metadata[transaction_id]`.
pub fn search_query(tx: &Transaction) -> String {
    format!("metadata['transaction_id']:'{}'", tx.id)
}

/// Records the id of an object found by [`search_query`] on `tx` (locked by the
/// caller) and returns the row as it now is, ready for [`apply_object`]. Ids already
/// recorded are kept.
pub async fn adopt(
    conn: &mut PgConnection,
    tx: &Transaction,
    kind: ObjectKind,
    object: &Value,
) -> Result<Transaction, StoreError> {
    let object = StripeObject::new(object);
    let id = object.id();
    let refs = StripeRefs {
        payment_intent_id: id.filter(|_| kind == ObjectKind::PaymentIntent),
        invoice_id: id.filter(|_| kind == ObjectKind::Invoice),
        client_secret: object.client_secret(),
    };
    store::set_stripe_refs(conn, tx.id, &refs).await?;
    store::get_transaction(conn, tx.id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("transaction {} vanished", tx.id)))
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
    let object = StripeObject::new(object);
    let Some(signal) = object.signal() else {
        return Ok(Reconciled::Unchanged);
    };
    let context = Context {
        currency: object.currency(),
        charge: object.charge(),
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
