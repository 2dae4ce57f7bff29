//! The reconciliation sweeper: a transaction still unsettled after `after` may have
//! missed its webhook, so it goes through payments-core's one reconciliation sequence
//! (`payments_core::reconcile`): its PaymentIntent or Invoice is read back from Stripe
//! and the state it is in applied through `settle::apply`, with
//! `Cause::Reconciliation`. The sweep pages by `(updated_at, id)`; a transaction
//! settled meanwhile, or whose row another writer holds (`SKIP LOCKED`), is skipped.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use payments_core::{
    Signal, Transaction, TransactionId, TransactionKind, TransactionStatus,
    reconcile::{self, ReconcileError, Reconciled, Scope},
    settle::{self, Cause, Context},
    store::{self, OutboxKind, StoreError, SweepCursor},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{metrics::Metrics, stripe_api::StripeApi};

const PAGE: i64 = 50;

#[derive(Clone)]
pub struct Reconciler {
    pub pool: PgPool,
    pub stripe: StripeApi,
    pub metrics: Arc<Metrics>,
    /// Transactions untouched for this long are read back.
    pub after: Duration,
    /// CREATED or REQUIRES_ACTION this long after creation: abandoned, and canceled.
    pub abandon_after: Duration,
}

/// The longest a transaction Stripe keeps answering the same way about waits between reads.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

impl Reconciler {
    /// One sweep over every stale unsettled transaction.
    pub async fn pass(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let cutoff = Utc::now() - chrono::Duration::from_std(self.after).unwrap_or_default();
        let mut cursor: Option<SweepCursor> = None;
        while !shutdown.is_cancelled() {
            let mut conn = self.pool.acquire().await.context("reconciliation page")?;
            let page = store::unsettled_page(&mut conn, cutoff, cursor, PAGE).await?;
            drop(conn);
            for candidate in &page {
                if shutdown.is_cancelled() {
                    break;
                }
                let id = TransactionId::from(candidate.id);
                match self.reconcile(id).await {
                    Ok(outcome) => self.metrics.reconciled(outcome),
                    Err(e) if e.is_unavailable() => {
                        return Err(e).context("reconciling a transaction");
                    }
                    Err(e) => {
                        self.metrics.reconciled("error");
                        tracing::error!(transaction_id = %id, error = %crate::error_chain(&e), "reconciliation failed");
                    }
                }
            }
            cursor = page.last().copied();
            if page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(())
    }

    /// Reconciles one transaction; returns a label for the metric.
    #[tracing::instrument(name = "reconcile", skip_all, fields(transaction_id = %id, outcome = tracing::field::Empty))]
    async fn reconcile(&self, id: TransactionId) -> Result<&'static str, StoreError> {
        let reader = self.stripe.reader();
        let label = match reconcile::reconcile(&self.pool, id, reader, Scope::Unsettled).await {
            Ok(done) => {
                if self.is_abandoned(&done.transaction) {
                    let label = self.abandon(id).await?;
                    tracing::Span::current().record("outcome", label);
                    return Ok(label);
                }
                if matches!(
                    done.outcome,
                    Reconciled::Unchanged | Reconciled::NotAtStripe
                ) {
                    self.back_off(id).await?;
                }
                match &done.outcome {
                    Reconciled::Applied { from, to } => tracing::info!(
                        transaction_id = %id, from = from.as_str(), to = to.as_str(),
                        "reconciled from Stripe"
                    ),
                    Reconciled::Flagged(why) => {
                        tracing::warn!(transaction_id = %id, why, "reconciliation flagged the transaction");
                    }
                    _ => {}
                }
                done.outcome.label()
            }
            // Stripe could not be asked, or refused: the next sweep asks again.
            Err(ReconcileError::Stripe(e)) => {
                tracing::warn!(transaction_id = %id, error = %crate::error_chain(&e), "cannot read the Stripe object back");
                self.back_off(id).await?;
                "unreadable"
            }
            // Listed by the page a moment ago: deleted rows do not happen.
            Err(ReconcileError::NotFound(_)) => "skipped",
            Err(ReconcileError::Store(e)) => return Err(e),
        };
        tracing::Span::current().record("outcome", label);
        Ok(label)
    }
}

impl Reconciler {
    /// Still waiting on a customer (or on a request that never reached Stripe) long
    /// after it began.
    fn is_abandoned(&self, tx: &Transaction) -> bool {
        let age = chrono::Duration::from_std(self.abandon_after).unwrap_or(chrono::Duration::MAX);
        matches!(
            tx.status,
            TransactionStatus::Created | TransactionStatus::RequiresAction
        ) && tx.created_at < Utc::now() - age
    }

    /// Ends an abandoned transaction. A PaymentIntent is canceled at Stripe through the
    /// outbox, and its `canceled` state (the event, or the next read) ends the
    /// transaction CANCELED: if the customer finished meanwhile, the cancel is refused
    /// and the success still counts. With nothing at Stripe that could still be paid
    /// (no PaymentIntent, or a coupon's draft invoice, which only we would finalize) it
    /// is canceled here, and a coupon's draft is deleted through the outbox.
    async fn abandon(&self, id: TransactionId) -> Result<&'static str, StoreError> {
        let mut db = store::begin(&self.pool, "abandon").await?;
        let Some(tx) = store::claim_unsettled(&mut db, id).await? else {
            db.rollback().await?;
            return Ok("skipped");
        };
        match (&tx.stripe_payment_intent_id, tx.kind) {
            (Some(pi), TransactionKind::Payment | TransactionKind::CardValidation) => {
                let key = format!("abandon-{}", tx.id);
                store::enqueue(&mut db, OutboxKind::CancelPaymentIntent, tx.id, pi, &key).await?;
            }
            _ => {
                let cause = Cause::Reconciliation;
                settle::apply(&mut db, &tx, &Signal::Canceled, cause, Context::default()).await?;
            }
        }
        store::back_off_reconciliation(&mut db, id, self.after, MAX_BACKOFF).await?;
        db.commit().await?;
        tracing::info!(transaction_id = %id, status = tx.status.as_str(), "abandoned transaction canceled");
        Ok("abandoned")
    }

    async fn back_off(&self, id: TransactionId) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        store::back_off_reconciliation(&mut conn, id, self.after, MAX_BACKOFF).await
    }
}
