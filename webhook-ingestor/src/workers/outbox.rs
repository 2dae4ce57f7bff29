//! Sends the calls to Stripe that transitions queued in the `outbox` table: cancelling
//! a card-validation PaymentIntent to release its hold, and voiding (or deleting, for a
//! draft) the invoice of a coupon attempt that failed or was canceled, after recording
//! the real reason of its failure from the invoice's payment. A row is leased
//! (claimed with `SKIP LOCKED` and pushed past the lease in one short statement, so no
//! lock is held during the call), called with its own idempotency key, then completed
//! or rescheduled with backoff; past the retry budget it is dead and logged. Each call is
//! an `outbox.call` span.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use payments_core::{
    TransactionId,
    reconcile::{self, Reconciled},
    store::{self, OutboxKind, OutboxRow, StoreError},
};
use sqlx::{PgConnection, PgPool};
use tracing::{Instrument as _, Span, field::Empty};

use crate::{
    metrics::Metrics,
    retry::RetryPolicy,
    stripe_api::{CallResult, StripeApi},
};

/// Rows claimed at once.
const BATCH: i64 = 5;

#[derive(Clone)]
pub struct OutboxWorker {
    pub pool: PgPool,
    pub stripe: StripeApi,
    pub metrics: Arc<Metrics>,
    pub retry: RetryPolicy,
    /// How long a claimed row is left to this worker: longer than a Stripe call can take.
    pub lease: Duration,
}

impl OutboxWorker {
    pub async fn pass(&self) -> anyhow::Result<()> {
        while self.send_batch().await.context("sending the outbox")? == BATCH {}
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("reading the outbox depth")?;
        let depth = store::outbox_depth(&mut conn).await?;
        self.metrics.set_outbox_depth(depth);
        Ok(())
    }

    /// Sends one batch of due rows; returns how many were claimed. The rows are leased,
    /// not locked: no connection is held while Stripe answers, and each outcome is
    /// recorded on a connection taken for that statement alone.
    async fn send_batch(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = store::claim_outbox(&mut conn, BATCH, self.lease).await?;
        drop(conn);
        let mut results = Vec::with_capacity(rows.len());
        for row in &rows {
            let span = tracing::info_span!(
                "outbox.call",
                outbox_id = row.id,
                outbox_kind = %row.kind,
                stripe_object = %row.target,
                attempt = row.attempts.saturating_add(1),
                result = Empty,
            );
            let call = async {
                let result = self.call(row).await;
                Span::current().record("result", label(&result));
                let mut conn = self.pool.acquire().await?;
                settle_row(&mut conn, row, &result, &self.retry).await?;
                Ok::<_, StoreError>(result)
            };
            results.push(call.instrument(span).await?);
        }
        for result in &results {
            self.metrics.outbox_call(label(result));
        }
        Ok(i64::try_from(rows.len()).unwrap_or(BATCH))
    }

    async fn call(&self, row: &OutboxRow) -> CallResult {
        match row.kind {
            OutboxKind::CancelPaymentIntent => {
                self.stripe
                    .cancel_payment_intent(&row.target, &row.idempotency_key)
                    .await
            }
            OutboxKind::VoidInvoice => self.void_invoice(row).await,
        }
    }

    /// Reads the invoice with its payments, records why its payment failed if the
    /// transaction does not know yet (in a database transaction of its own, between the
    /// two Stripe calls), then voids it. If recording fails, the call is retried before
    /// anything is voided.
    async fn void_invoice(&self, row: &OutboxRow) -> CallResult {
        let invoice = match self
            .stripe
            .reader()
            .invoice_with_payments(&row.target)
            .await
        {
            Ok(invoice) => invoice,
            Err(e) if e.is_missing() => return CallResult::Done,
            Err(e) => return e.into(),
        };
        let id = TransactionId::from(row.transaction_id);
        match reconcile::record_payment_error(&self.pool, id, &invoice).await {
            Ok(Reconciled::Flagged(why)) => tracing::warn!(
                transaction_id = %id, reason = %why,
                "the invoice's payment error was not recorded: left for an operator"
            ),
            Ok(recorded) => tracing::debug!(
                transaction_id = %id, outcome = recorded.label(), "read the invoice's payment error"
            ),
            Err(e) => {
                return CallResult::Retry(format!(
                    "recording the invoice's payment error: {}",
                    crate::error_chain(&e)
                ));
            }
        }
        self.stripe
            .void_invoice(&row.target, &invoice, &row.idempotency_key)
            .await
    }
}

/// The result as counted in `payments_outbox_calls_total` and put on the call's span.
fn label(result: &CallResult) -> &'static str {
    match result {
        CallResult::Done => "done",
        CallResult::Retry(_) => "retry",
        CallResult::Permanent(_) => "failed",
    }
}

async fn settle_row(
    conn: &mut PgConnection,
    row: &OutboxRow,
    result: &CallResult,
    retry: &RetryPolicy,
) -> Result<(), StoreError> {
    let attempts = u32::try_from(row.attempts.saturating_add(1)).unwrap_or(u32::MAX);
    let (why, next) = match result {
        CallResult::Done => return store::complete_outbox(conn, row.id).await,
        CallResult::Retry(why) => (why, retry.next_attempt_at(attempts, Utc::now())),
        CallResult::Permanent(why) => (why, None),
    };
    if next.is_none() {
        tracing::warn!(
            outbox_id = row.id, kind = %row.kind, target = %row.target, attempts, error = %why,
            "outbox call dead-lettered"
        );
    } else {
        tracing::info!(outbox_id = row.id, attempts, error = %why, "outbox call will be retried");
    }
    store::fail_outbox(conn, row.id, why, next).await
}
