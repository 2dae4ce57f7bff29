//! The calls this service makes to Stripe, all through payments-stripe's shared client
//! (the pinned API version, the one classification of failures): the outbox's calls,
//! here, and the reads of reconciliation and catch-up, which the shared client makes
//! as JSON for payments-core to read ([`StripeApi::reader`]).

use payments_core::StripeObject;
use payments_stripe::{StripeClient, StripeConfig, StripeFailure, idempotent};
use stripe::StripeRequest as _;
use stripe_billing::invoice::{DeleteInvoice, VoidInvoiceInvoice};
use stripe_core::payment_intent::CancelPaymentIntent;

/// What a call's result asks of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    Done,
    /// Worth trying again later (network, 409, 429, 5xx).
    Retry(String),
    /// Trying again cannot help (Stripe refused the request itself).
    Permanent(String),
}

impl From<StripeFailure> for CallResult {
    fn from(failure: StripeFailure) -> Self {
        match failure.is_retryable() {
            true => CallResult::Retry(failure.to_string()),
            false => CallResult::Permanent(failure.to_string()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StripeApi {
    client: StripeClient,
}

impl StripeApi {
    pub fn new(config: &StripeConfig) -> Result<Self, StripeFailure> {
        Ok(StripeApi {
            client: StripeClient::new(config)?,
        })
    }

    /// Objects and events read back as JSON (reconciliation, catch-up).
    pub fn reader(&self) -> &StripeClient {
        &self.client
    }

    /// Cancels a PaymentIntent (releasing a card-validation hold). The idempotency key
    /// makes a repeated call after a lost answer harmless; a PaymentIntent that is
    /// already canceled counts as done.
    pub async fn cancel_payment_intent(&self, id: &str, idempotency_key: &str) -> CallResult {
        let strategy = match idempotent(idempotency_key) {
            Ok(strategy) => strategy,
            Err(e) => return CallResult::Permanent(e.to_string()),
        };
        let request = CancelPaymentIntent::new(id)
            .customize()
            .request_strategy(strategy);
        match self.client.send("cancel_payment_intent", request).await {
            Ok(_) => CallResult::Done,
            Err(e) if e.is_rejected_with("payment_intent_unexpected_state") => {
                self.done_if_canceled(id, e).await
            }
            Err(e) => e.into(),
        }
    }

    /// Leaves nothing payable behind a coupon attempt that ended without success:
    /// `invoice` (as just read from Stripe) is voided if open, deleted if a draft (Stripe
    /// voids only finalized invoices). One already void, deleted, paid or uncollectible
    /// needs nothing: a paid one is the late success the invoice's own events report.
    pub async fn void_invoice(
        &self,
        id: &str,
        invoice: &serde_json::Value,
        idempotency_key: &str,
    ) -> CallResult {
        if invoice.get("deleted").and_then(serde_json::Value::as_bool) == Some(true) {
            return CallResult::Done;
        }
        let strategy = match idempotent(idempotency_key) {
            Ok(strategy) => strategy,
            Err(e) => return CallResult::Permanent(e.to_string()),
        };
        let sent = match StripeObject::new(invoice).status() {
            Some("draft") => {
                let request = DeleteInvoice::new(id)
                    .customize()
                    .request_strategy(strategy);
                self.client.send("delete_invoice", request).await.map(drop)
            }
            Some("open") => {
                let request = VoidInvoiceInvoice::new(id)
                    .build()
                    .customize()
                    .request_strategy(strategy);
                self.client
                    .send_json("void_invoice", request)
                    .await
                    .map(drop)
            }
            _ => return CallResult::Done,
        };
        match sent {
            Ok(_) => CallResult::Done,
            Err(e) if e.is_missing() => CallResult::Done,
            // Its state moved between the read and the call: read it again next time.
            Err(e) if e.is_rejected_with("invoice_unexpected_state") => {
                CallResult::Retry(e.to_string())
            }
            Err(e) => e.into(),
        }
    }

    /// Stripe would not cancel: done if the PaymentIntent is canceled already.
    async fn done_if_canceled(&self, id: &str, original: StripeFailure) -> CallResult {
        let intent = match self.client.payment_intent(id).await {
            Ok(intent) => intent,
            Err(e) if e.is_retryable() => return e.into(),
            Err(_) => return original.into(),
        };
        match StripeObject::new(&intent).status() {
            Some("canceled") => CallResult::Done,
            status => CallResult::Permanent(format!(
                "cannot cancel: the PaymentIntent is {}",
                status.unwrap_or("in no known status")
            )),
        }
    }
}
