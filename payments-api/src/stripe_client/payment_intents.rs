//! Creating and confirming a card transaction's PaymentIntent, and what Stripe's
//! synchronous answer says about it (read by payments-core, as a webhook's object is).

use payments_core::{Money, Signal, StripeObject, TransactionId};
use payments_stripe::idempotent;
use stripe::StripeRequest;
use stripe_core::{PaymentIntentCaptureMethod, payment_intent::CreatePaymentIntent};

use super::{Stripe, StripeFailure, stripe_currency, transaction_metadata};

/// A PaymentIntent to create and confirm for a transaction.
#[derive(Debug, Clone)]
pub struct IntentRequest<'a> {
    pub transaction_id: TransactionId,
    pub amount: Money,
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
        let mut create = CreatePaymentIntent::new(req.amount.minor(), stripe_currency(req.amount))
            .customer(req.customer)
            .payment_method(req.payment_method)
            .confirm(true)
            .metadata(transaction_metadata(req.transaction_id));
        if req.manual_capture {
            create = create.capture_method(PaymentIntentCaptureMethod::Manual);
        }
        // This client version has no `payment_method_types` parameter; cards only.
        let mut request = create.build();
        let body = request.body.take().unwrap_or_default();
        request.body = Some(format!("{body}&payment_method_types%5B0%5D=card"));
        let request = request
            .customize()
            .request_strategy(idempotent(&format!("pi-create-{}", req.transaction_id))?);
        let intent = self
            .client
            .send_json("create_payment_intent", request)
            .await?;
        outcome(StripeObject::new(&intent))
    }
}

fn outcome(intent: StripeObject<'_>) -> Result<IntentOutcome, StripeFailure> {
    let payment_intent_id = intent
        .id()
        .ok_or_else(|| StripeFailure::Unexpected("a PaymentIntent without an id".into()))?;
    Ok(IntentOutcome {
        payment_intent_id: payment_intent_id.to_owned(),
        client_secret: intent.client_secret().map(str::to_owned),
        signal: intent.answer(),
    })
}
