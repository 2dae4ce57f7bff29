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
    TransactionId,
    reconcile::{self, ReconcileError, Reconciled, Scope},
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

    /// Reconciles one transaction; returns a label for the metric.
    #[tracing::instrument(name = "reconcile", skip_all, fields(transaction_id = %id, outcome = tracing::field::Empty))]
    async fn reconcile(&self, id: TransactionId) -> Result<&'static str, StoreError> {
        let reader = self.stripe.reader();
        let label = match reconcile::reconcile(&self.pool, id, reader, Scope::Unsettled).await {
            Ok(done) => {
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
