//! The reconciliation sweeper: a transaction still unsettled after `after` may have
//! missed its webhook, so its PaymentIntent or Invoice is read back from Stripe and
//! the state it is in is applied through the same `settle::apply` as an event, with
//! `Cause::Reconciliation`. Each transaction is locked (`SKIP LOCKED`) in its own
//! database transaction while Stripe is asked, so instances never both apply it.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use payments_core::{
    Transaction, TransactionId,
    reconcile::{self, ObjectRef, Reconciled},
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

    async fn reconcile_one(&self, id: TransactionId) -> Result<&'static str, StoreError> {
        let mut db = store::begin(&self.pool, "reconcile").await?;
        let Some(tx) = store::claim_unsettled(&mut db, id).await? else {
            return Ok("skipped");
        };
        let Some(object) = self.fetch(&tx).await else {
            return Ok("unreadable");
        };
        let reconciled = reconcile::apply_object(&mut db, &tx, &object).await?;
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

    /// The transaction's Stripe object, or None (logged) when there is none to read.
    async fn fetch(&self, tx: &Transaction) -> Option<serde_json::Value> {
        let reader = self.stripe.reader();
        let read = match reconcile::object_ref(tx) {
            Some(ObjectRef::Invoice(invoice)) => reader.invoice(invoice).await,
            Some(ObjectRef::PaymentIntent(pi)) => reader.payment_intent(pi).await,
            None => {
                // The request never reached Stripe, or its answer was not recorded.
                tracing::debug!(transaction_id = %tx.id, "no Stripe object recorded to reconcile");
                return None;
            }
        };
        read.map_err(|e| {
            tracing::warn!(transaction_id = %tx.id, error = %crate::error_chain(&e), "cannot read the Stripe object back");
        })
        .ok()
    }
}
