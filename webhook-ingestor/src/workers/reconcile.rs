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
    settle::{self, Cause, Context, Outcome},
    store::{self, StoreError},
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    store_ext::{self, SweepCursor},
    stripe_api::StripeApi,
    stripe_object,
};

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
            let page = store_ext::unsettled_page(&mut conn, cutoff, cursor, PAGE).await?;
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
    async fn reconcile(&self, id: TransactionId) -> Result<&'static str, StoreError> {
        let mut db = self.pool.begin().await?;
        if !store_ext::claim_unsettled(&mut db, id).await? {
            return Ok("skipped");
        }
        let Some(tx) = store::lock_transaction(&mut db, id).await? else {
            return Ok("skipped");
        };
        let Some(object) = self.fetch(&tx).await else {
            return Ok("unreadable");
        };
        let label = apply(&mut db, &tx, &object).await?;
        db.commit().await?;
        Ok(label)
    }

    /// The transaction's Stripe object, or None (logged) when there is none to read.
    async fn fetch(&self, tx: &Transaction) -> Option<serde_json::Value> {
        let reader = self.stripe.reader();
        let read = match (&tx.stripe_invoice_id, &tx.stripe_payment_intent_id) {
            (Some(invoice), _) => reader.invoice(invoice).await,
            (None, Some(pi)) => reader.payment_intent(pi).await,
            (None, None) => {
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

async fn apply(
    conn: &mut PgConnection,
    tx: &Transaction,
    object: &serde_json::Value,
) -> Result<&'static str, StoreError> {
    let Some(signal) = stripe_object::signal(object) else {
        return Ok("unchanged");
    };
    let context = Context {
        currency: stripe_object::currency(object),
        charge: stripe_object::charge(object),
    };
    let outcome = settle::apply(conn, tx, &signal, Cause::Reconciliation, context).await?;
    Ok(match outcome {
        Outcome::Applied(updated) => {
            tracing::info!(
                transaction_id = %tx.id, from = tx.status.as_str(), to = updated.status.as_str(),
                "reconciled from Stripe"
            );
            "applied"
        }
        Outcome::Stale => "unchanged",
        Outcome::Deferred(_) => "deferred",
        Outcome::Flagged(why) => {
            tracing::warn!(transaction_id = %tx.id, why, "reconciliation flagged the transaction");
            "flagged"
        }
    })
}
