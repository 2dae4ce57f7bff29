//! The reconciliation sweeper: a transaction still unsettled after `after` may have
//! missed its webhook, so its PaymentIntent or Invoice is read back from Stripe and
//! the state it is in is applied through the same `settle::apply` as an event, with
//! `Cause::Reconciliation`. No row lock or database transaction is held while Stripe
//! answers: a short lease (`reconcile_leases`) keeps instances from asking about the
//! same transaction at once, and the answer is applied under the row lock afterwards.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use payments_core::{
    Transaction, TransactionId,
    reconcile::{self, ObjectKind, ObjectRef, Reconciled},
    store::{self, StoreError, SweepCursor},
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
    /// How long a transaction is left to this instance while Stripe is asked.
    pub lease: Duration,
}

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

    /// Reads one transaction's object back and applies what it says; returns a label
    /// for the metric.
    #[tracing::instrument(name = "reconcile", skip_all, fields(transaction_id = %id, outcome = tracing::field::Empty))]
    async fn reconcile(&self, id: TransactionId) -> Result<&'static str, StoreError> {
        let outcome = self.reconcile_one(id).await;
        if let Ok(label) = &outcome {
            tracing::Span::current().record("outcome", *label);
        }
        outcome
    }

    /// Leases the transaction, asks Stripe with nothing held, then applies the answer
    /// under the row lock in a short database transaction. A webhook that moved the
    /// transaction meanwhile wins: the state machine finds the answer stale.
    async fn reconcile_one(&self, id: TransactionId) -> Result<&'static str, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let leased = store::lease_unsettled(&mut conn, id, self.lease).await?;
        drop(conn);
        let Some(tx) = leased else {
            return Ok("skipped");
        };
        let answer = match reconcile::object_ref(&tx) {
            Some(recorded) => self
                .fetch(&tx, recorded)
                .await
                .map(|object| (object, false))
                .ok_or("unreadable"),
            // No id recorded: the request never reached Stripe, or its answer was lost.
            // Stripe's search by our metadata tells which.
            None => self
                .search(&tx)
                .await
                .map(|object| (object, true))
                .ok_or("not_at_stripe"),
        };
        let (object, found) = match answer {
            Ok(answer) => answer,
            Err(label) => {
                // Nothing to apply: the next sweep may try again at once.
                let mut conn = self.pool.acquire().await?;
                store::release_lease(&mut conn, id).await?;
                return Ok(label);
            }
        };
        let mut db = store::begin(&self.pool, "reconcile").await?;
        let Some(tx) = store::lock_transaction(&mut db, id).await? else {
            return Ok("skipped");
        };
        let tx = if found {
            let adopted = reconcile::adopt(&mut db, &tx, ObjectKind::of(&tx), &object).await?;
            tracing::info!(
                transaction_id = %tx.id,
                stripe_object = object.get("id").and_then(serde_json::Value::as_str),
                "found the Stripe object whose creation answer was lost"
            );
            adopted
        } else {
            tx
        };
        let reconciled = reconcile::apply_object(&mut db, &tx, &object).await?;
        store::release_lease(&mut db, id).await?;
        db.commit().await?;
        match &reconciled {
            Reconciled::Applied { from, to } => tracing::info!(
                transaction_id = %tx.id, from = from.as_str(), to = to.as_str(),
                "reconciled from Stripe"
            ),
            Reconciled::Flagged(why) => {
                tracing::warn!(transaction_id = %tx.id, why, "reconciliation flagged the transaction");
            }
            Reconciled::Unchanged | Reconciled::Deferred(_) => {}
        }
        Ok(reconciled.label())
    }

    /// The transaction's recorded Stripe object, or None (logged) when it cannot be read.
    async fn fetch(&self, tx: &Transaction, recorded: ObjectRef<'_>) -> Option<serde_json::Value> {
        let reader = self.stripe.reader();
        let read = match recorded {
            ObjectRef::Invoice(invoice) => reader.invoice(invoice).await,
            ObjectRef::PaymentIntent(pi) => reader.payment_intent(pi).await,
        };
        read.map_err(|e| {
            tracing::warn!(transaction_id = %tx.id, error = %crate::error_chain(&e), "cannot read the Stripe object back");
        })
        .ok()
    }

    /// The object Stripe holds for a transaction whose id was never recorded, found by
    /// its metadata; None when Stripe has none (or cannot be asked now).
    async fn search(&self, tx: &Transaction) -> Option<serde_json::Value> {
        let query = reconcile::search_query(tx);
        let found = self
            .stripe
            .reader()
            .search(ObjectKind::of(tx), &query)
            .await
            .map_err(|e| {
                tracing::warn!(transaction_id = %tx.id, error = %crate::error_chain(&e), "cannot search Stripe");
            })
            .ok()?;
        if found.len() > 1 {
            // Our idempotency keys make one object per transaction; more is a bug to see.
            tracing::warn!(transaction_id = %tx.id, found = found.len(), "several Stripe objects carry this transaction id; the newest is used");
        }
        found.into_iter().next()
    }
}
