use payments_core::{Currency, Signal, TransactionId};
use stripe::StripeRequest;
use stripe_core::{
    PaymentIntent, PaymentIntentCaptureMethod, PaymentIntentStatus,
    payment_intent::CreatePaymentIntent,
};

use super::{Observed, Stripe, StripeFailure, idempotent, transaction_metadata};

/// A PaymentIntent to create and confirm for a transaction.
#[derive(Debug, Clone)]
pub struct IntentRequest<'a> {
    pub transaction_id: TransactionId,
    pub amount: i64,
    pub currency: Currency,
    pub customer: &'a str,
    pub payment_method: &'a str,
    /// A card validation holds the amount (`capture_method=manual`) and releases it.
    pub manual_capture: bool,
}

/// What Stripe's synchronous answer says about the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentOutcome {
    pub payment_intent_id: String,
    pub client_secret: Option<String>,
    /// The change the answer implies; `None` when it implies none.
    pub signal: Option<Signal>,
}

impl Stripe {
    /// Creates and confirms the PaymentIntent of a transaction. The idempotency key is
    /// the transaction's, so a retry never makes a second PaymentIntent.
    pub async fn create_payment_intent(
        &self,
        req: &IntentRequest<'_>,
    ) -> Result<IntentOutcome, StripeFailure> {
        let currency: stripe_types::Currency = req
            .currency
            .as_str()
            .parse()
            .unwrap_or_else(|never| match never {});
        let mut create = CreatePaymentIntent::new(req.amount, currency)
            .customer(req.customer)
            .payment_method(req.payment_method)
            .confirm(true)
            .metadata(transaction_metadata(&req.transaction_id.to_string()));
        if req.manual_capture {
            create = create.capture_method(PaymentIntentCaptureMethod::Manual);
        }
        // This client version has no `payment_method_types` parameter; cards only.
        let mut request = create.build();
        let body = request.body.take().unwrap_or_default();
        request.body = Some(format!("{body}&payment_method_types%5B0%5D=card"));
        let intent: PaymentIntent = request
            .customize()
            .request_strategy(idempotent(&format!("pi-create-{}", req.transaction_id))?)
            .send(&self.client)
            .observed(&self.metrics, "create_payment_intent")
            .await?;
        Ok(outcome(&intent))
    }
}

/// Reads the answer. Only the ingestor settles money, so even a synchronous
/// `succeeded` (or a validation's `requires_capture`) only says "processing".
fn outcome(intent: &PaymentIntent) -> IntentOutcome {
    let signal = match &intent.status {
        PaymentIntentStatus::RequiresAction => Some(Signal::RequiresAction),
        PaymentIntentStatus::Processing
        | PaymentIntentStatus::Succeeded
        | PaymentIntentStatus::RequiresCapture => Some(Signal::Processing),
        PaymentIntentStatus::Canceled => Some(Signal::Canceled),
        PaymentIntentStatus::RequiresPaymentMethod => {
            intent.last_payment_error.as_ref().map(|e| Signal::Failed {
                code: e
                    .decline_code
                    .clone()
                    .or_else(|| e.code.as_ref().map(|c| c.as_str().to_owned()))
                    .unwrap_or_else(|| "payment_failed".into()),
                message: e.message.clone().unwrap_or_default(),
            })
        }
        _ => None,
    };
    IntentOutcome {
        payment_intent_id: intent.id.to_string(),
        client_secret: intent.client_secret.clone(),
        signal,
    }
}
