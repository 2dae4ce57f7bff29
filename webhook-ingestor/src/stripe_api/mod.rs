//! The calls this service makes to Stripe, and what their failures mean for a retry.
//! Writes go through async-stripe's typed requests (with our idempotency keys); reads
//! for reconciliation and catch-up ([`reads`]) take Stripe's JSON as it is, so an object
//! or event from any API version is understood the way a webhook is.

pub mod reads;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::{ApiErrorsCode, IdempotencyKey, RequestStrategy, StripeError, StripeRequest as _};
use stripe_core::{
    PaymentIntentStatus,
    payment_intent::{CancelPaymentIntent, RetrievePaymentIntent},
};

/// What a call's result asks of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    Done,
    /// Worth trying again later (network, 429, 5xx).
    Retry(String),
    /// Trying again cannot help (Stripe refused the request itself).
    Permanent(String),
}

#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
    reader: reads::Reader,
}

impl StripeApi {
    pub fn new(base: &str, key: &SecretString, timeout: Duration) -> Result<Self, StripeError> {
        let client = stripe::ClientBuilder::new(key.expose_secret())
            .url(base)
            .timeout(timeout)
            .build()?;
        let reader = reads::Reader::new(base, key.clone(), timeout)
            .map_err(|e| StripeError::ConfigError(e.to_string()))?;
        Ok(StripeApi { client, reader })
    }

    pub fn reader(&self) -> &reads::Reader {
        &self.reader
    }

    /// Cancels a PaymentIntent (releasing a card-validation hold). The idempotency key
    /// makes a repeated call after a lost answer harmless; a PaymentIntent that is
    /// already canceled counts as done.
    #[tracing::instrument(
        name = "stripe",
        skip_all,
        fields(otel.kind = "client", stripe.operation = "cancel_payment_intent", stripe.object = id)
    )]
    pub async fn cancel_payment_intent(&self, id: &str, idempotency_key: &str) -> CallResult {
        let key = match IdempotencyKey::new(idempotency_key) {
            Ok(key) => key,
            Err(e) => return CallResult::Permanent(format!("bad idempotency key: {e}")),
        };
        let sent = CancelPaymentIntent::new(id)
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await;
        let err = match sent {
            Ok(_) => return CallResult::Done,
            Err(err) => err,
        };
        match unexpected_state(&err) {
            Some(Some(PaymentIntentStatus::Canceled)) => CallResult::Done,
            // The error did not carry the object: ask for it.
            Some(None) => self.done_if_canceled(id, &err).await,
            Some(Some(status)) => CallResult::Permanent(format!(
                "cannot cancel: the PaymentIntent is {}",
                status.as_str()
            )),
            None => classify(&err),
        }
    }

    async fn done_if_canceled(&self, id: &str, original: &StripeError) -> CallResult {
        match RetrievePaymentIntent::new(id).send(&self.client).await {
            Ok(pi) if pi.status == PaymentIntentStatus::Canceled => CallResult::Done,
            Ok(pi) => CallResult::Permanent(format!(
                "cannot cancel: the PaymentIntent is {}",
                pi.status.as_str()
            )),
            Err(e) => match classify(&e) {
                CallResult::Retry(why) => CallResult::Retry(why),
                _ => classify(original),
            },
        }
    }
}

/// `Some(status)` when Stripe said `payment_intent_unexpected_state` (with the object's
/// status if the error carried the object).
fn unexpected_state(err: &StripeError) -> Option<Option<PaymentIntentStatus>> {
    match err {
        StripeError::Stripe(api, 400)
            if api.code == Some(ApiErrorsCode::PaymentIntentUnexpectedState) =>
        {
            Some(api.payment_intent.as_ref().map(|pi| pi.status.clone()))
        }
        _ => None,
    }
}

/// Whether an error is worth a retry: Stripe's own 4xx refusals are not (except 409
/// and 429, which are about timing), everything else is.
pub fn classify(err: &StripeError) -> CallResult {
    let why = describe(err);
    match err {
        StripeError::Stripe(_, status)
            if (400..500).contains(status) && ![409, 429].contains(status) =>
        {
            CallResult::Permanent(why)
        }
        StripeError::ConfigError(_) => CallResult::Permanent(why),
        _ => CallResult::Retry(why),
    }
}

/// A one-line description (the error's own Display is a multi-line dump).
fn describe(err: &StripeError) -> String {
    match err {
        StripeError::Stripe(api, status) => format!(
            "Stripe answered {status}: {} ({})",
            api.message.as_deref().unwrap_or("no message"),
            api.code.as_ref().map_or("no code", |c| c.as_str())
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_trouble_is_retried_and_config_errors_are_not() {
        assert!(matches!(
            classify(&StripeError::ClientError("connection refused".into())),
            CallResult::Retry(_)
        ));
        assert!(matches!(
            classify(&StripeError::Timeout),
            CallResult::Retry(_)
        ));
        assert!(matches!(
            classify(&StripeError::ConfigError("bad url".into())),
            CallResult::Permanent(_)
        ));
    }
}
