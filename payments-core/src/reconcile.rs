//! Reconciliation: instead of being told by an event, we read a transaction's
//! PaymentIntent or Invoice back from Stripe and apply the state it is in through the
//! same [`settle::apply`] as an event, with [`Cause::Reconciliation`].
//!
//! [`reconcile`] is the one sequence, for the ingestor's sweeper and the operator's
//! `ReconcileTransaction` alike: read the transaction, find its object at Stripe
//! (fetch it by the id we recorded, or search for it by our metadata when the answer
//! that carried the id was lost), then lock the row, check that the object is the
//! transaction's own ([`binding`]: a search finds anything carrying our id), adopt
//! what a search found, apply and commit. Stripe is asked with no row lock and no connection held, so a slow
//! Stripe ties up neither the pool nor the webhooks of that transaction; the state
//! machine orders what it is told, so an answer overtaken by a webhook is only stale.
//! Stripe is reached through [`StripeReader`], which `payments-stripe` implements.
//!
//! [`record_payment_error`] is the same read-back for one thing an event cannot say:
//! why an invoice's payment failed, read from its payment before the failed coupon
//! attempt's invoice is voided.

use std::future::Future;

use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::{
    Transaction, TransactionId, TransactionKind, TransactionStatus,
    binding::{self, Binding},
    settle::{self, Cause, Context, Outcome},
    store::{self, StoreError, StripeRefs},
    stripe_object::{StripeObject, TRANSACTION_METADATA_KEY},
};

/// Reads a transaction's object back from Stripe, as JSON of the pinned API version.
pub trait StripeReader: Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The object as Stripe holds it now.
    fn retrieve(
        &self,
        object: ObjectRef<'_>,
    ) -> impl Future<Output = Result<Value, Self::Error>> + Send;

    /// The objects of `kind` matching a Stripe search `query`, newest first.
    fn search(
        &self,
        kind: ObjectKind,
        query: &str,
    ) -> impl Future<Output = Result<Vec<Value>, Self::Error>> + Send;
}

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
    format!("metadata['{TRANSACTION_METADATA_KEY}']:'{}'", tx.id)
}

/// Which transactions a reconciliation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The sweeper's: only a transaction still unsettled, and only if no other writer
    /// holds its row (`SKIP LOCKED`): it comes round again on the next sweep.
    Unsettled,
    /// The operator's: whatever its status; waits for the row.
    Any,
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
    /// Stripe holds no object for the transaction: our request never reached it.
    NotAtStripe,
    /// Out of scope by the time its row was taken (settled meanwhile, or held by
    /// another writer): nothing was applied.
    Skipped,
}

impl Reconciled {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Reconciled::Applied { .. } => "applied",
            Reconciled::Unchanged => "unchanged",
            Reconciled::Deferred(_) => "deferred",
            Reconciled::Flagged(_) => "flagged",
            Reconciled::NotAtStripe => "not_at_stripe",
            Reconciled::Skipped => "skipped",
        }
    }
}

/// What [`reconcile`] did, and the transaction as it now is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub outcome: Reconciled,
    pub transaction: Transaction,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError<E: std::error::Error + 'static> {
    #[error("transaction {0} not found")]
    NotFound(TransactionId),
    /// Stripe could not be asked, or refused: nothing was written.
    #[error("reading the transaction's object from Stripe")]
    Stripe(#[source] E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads transaction `id`'s object back from Stripe and applies the state it is in.
pub async fn reconcile<R: StripeReader>(
    pool: &PgPool,
    id: TransactionId,
    reader: &R,
    scope: Scope,
) -> Result<Reconciliation, ReconcileError<R::Error>> {
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    let tx = store::get_transaction(&mut conn, id)
        .await?
        .ok_or(ReconcileError::NotFound(id))?;
    drop(conn);
    let done = |outcome, transaction| {
        Ok(Reconciliation {
            outcome,
            transaction,
        })
    };
    if scope == Scope::Unsettled && tx.status.is_settled() {
        return done(Reconciled::Skipped, tx);
    }
    let found = find_object(reader, &tx)
        .await
        .map_err(ReconcileError::Stripe)?;
    if found.is_empty() {
        return done(Reconciled::NotAtStripe, tx);
    }

    let mut db = store::begin(pool, "reconcile").await?;
    let locked = match scope {
        Scope::Unsettled => store::claim_unsettled(&mut db, id).await?,
        Scope::Any => store::lock_transaction(&mut db, id).await?,
    };
    let Some(locked) = locked else {
        db.rollback().await?;
        return match scope {
            Scope::Unsettled => done(Reconciled::Skipped, tx),
            Scope::Any => Err(ReconcileError::NotFound(id)),
        };
    };
    let (locked, object) = match bound(&mut db, locked, &found).await? {
        Ok(bound) => bound,
        Err(why) => {
            db.rollback().await?;
            tracing::warn!(transaction_id = %id, reason = %why, "the object Stripe holds is not the transaction's: nothing applied");
            let transaction = current_outside(pool, id).await?;
            return done(Reconciled::Flagged(why), transaction);
        }
    };
    let outcome = apply_object(&mut db, &locked, object).await?;
    let transaction = current(&mut db, id).await?;
    db.commit().await?;
    done(outcome, transaction)
}

/// Fetches the recorded object, or searches for the ones carrying our metadata
/// (newest first); empty when Stripe holds none.
async fn find_object<R: StripeReader>(
    reader: &R,
    tx: &Transaction,
) -> Result<Vec<Value>, R::Error> {
    if let Some(recorded) = object_ref(tx) {
        return Ok(vec![reader.retrieve(recorded).await?]);
    }
    let found = reader.search(ObjectKind::of(tx), &search_query(tx)).await?;
    if found.len() > 1 {
        // Our idempotency keys make one object per transaction; the others were
        // made by someone else, and binding refuses them.
        tracing::warn!(
            transaction_id = %tx.id, found = found.len(),
            "several Stripe objects carry this transaction id; only one that matches it is adopted"
        );
    }
    Ok(found)
}

/// The transaction and the object found for it, once that object is proven to be
/// its own ([`binding`]); one found by a search is adopted on the way. Otherwise
/// why none is.
async fn bound<'a>(
    conn: &mut PgConnection,
    tx: Transaction,
    found: &'a [Value],
) -> Result<Result<(Transaction, &'a Value), String>, StoreError> {
    let customer = store::stripe_customer(conn, &tx.user_id).await?;
    let mut refused = None;
    for candidate in found {
        let object = StripeObject::new(candidate);
        let signal = object.signal();
        match binding::bind(&tx, object, signal.as_ref(), customer.as_deref()) {
            Binding::Bound => return Ok(Ok((tx, candidate))),
            Binding::Adopt => {
                tracing::info!(
                    transaction_id = %tx.id, stripe_object = object.id(),
                    "adopted the Stripe object whose creation answer was lost"
                );
                let adopted = adopt(conn, &tx, ObjectKind::of(&tx), candidate).await?;
                return Ok(Ok((adopted, candidate)));
            }
            Binding::NotYet(why) => refused = refused.or(Some(why.to_owned())),
            Binding::Mismatch(why) => refused = refused.or(Some(why)),
        }
    }
    Ok(Err(refused.unwrap_or_default()))
}

async fn current_outside(pool: &PgPool, id: TransactionId) -> Result<Transaction, StoreError> {
    let mut conn = pool.acquire().await?;
    current(&mut conn, id).await
}

async fn current(conn: &mut PgConnection, id: TransactionId) -> Result<Transaction, StoreError> {
    store::get_transaction(conn, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("transaction {id} vanished")))
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
    current(conn, tx.id).await
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
        address: None,
    };
    let outcome = settle::apply(conn, tx, &signal, Cause::Reconciliation, context).await?;
    Ok(reconciled(tx, outcome))
}

/// What applying a read-back did to `tx`.
fn reconciled(tx: &Transaction, outcome: Outcome) -> Reconciled {
    match outcome {
        Outcome::Applied(updated) => Reconciled::Applied {
            from: tx.status,
            to: updated.status,
        },
        Outcome::Stale => Reconciled::Unchanged,
        Outcome::Deferred(why) => Reconciled::Deferred(why.to_owned()),
        Outcome::Flagged(why) => Reconciled::Flagged(why),
    }
}

/// Records why transaction `id`'s invoice payment failed, when the event that reported
/// the failure could not say (`invoice.payment_failed` carries no payment error, see
/// [`crate::UNEXPLAINED_FAILURE`]). `invoice` is the transaction's invoice read back
/// with its payments ([`StripeObject::invoice_payment_failure`]); once bound to the
/// transaction like any read-back, its failure goes through [`settle::apply`] in a
/// database transaction of its own, so the state machine decides: only a failure not
/// explained yet is replaced (the audit trail and the doorbell follow), anything else
/// is unchanged. The caller asks Stripe before and after this, never during.
pub async fn record_payment_error(
    pool: &PgPool,
    id: TransactionId,
    invoice: &Value,
) -> Result<Reconciled, StoreError> {
    let object = StripeObject::new(invoice);
    let Some(failure) = object.invoice_payment_failure() else {
        return Ok(Reconciled::Unchanged);
    };
    let mut db = store::begin(pool, "record_payment_error").await?;
    let Some(tx) = store::lock_transaction(&mut db, id).await? else {
        db.rollback().await?;
        return Ok(Reconciled::Skipped);
    };
    let tx = match bound(&mut db, tx, std::slice::from_ref(invoice)).await? {
        Ok((tx, _)) => tx,
        Err(why) => {
            db.rollback().await?;
            return Ok(Reconciled::Flagged(why));
        }
    };
    let context = Context {
        currency: object.currency(),
        charge: None,
        address: None,
    };
    let outcome = settle::apply(&mut db, &tx, &failure, Cause::Reconciliation, context).await?;
    db.commit().await?;
    Ok(reconciled(&tx, outcome))
}
