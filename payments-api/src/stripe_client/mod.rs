//! The Stripe calls the RPCs make, over async-stripe, and what their failures mean.
//!
//! Every call that creates something carries an `Idempotency-Key` derived from our
//! own ids, so a retried RPC replays Stripe's first answer instead of acting twice.
//! Failures are classified once, here: unreachable (retry later), a card decline
//! (a normal outcome), a refusal of the request, or an answer we cannot read.

mod coupons;
mod customers;
mod objects;
mod payment_intents;
mod payment_methods;

pub use coupons::{CouponInvoice, CouponProblem, Discount, Redeemable};
pub use payment_intents::{IntentOutcome, IntentRequest};

use std::{sync::Arc, time::Instant};

use secrecy::ExposeSecret;
use stripe::{IdempotencyKey, RequestStrategy, StripeError};
use tracing::Instrument as _;

use crate::{config::StripeConfig, metrics::Metrics};

/// A Stripe client for this service's calls. Cheap to clone.
#[derive(Clone)]
pub struct Stripe {
    client: stripe::Client,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").finish_non_exhaustive()
    }
}

/// Why a Stripe call did not give the object we asked for.
#[derive(Debug, thiserror::Error)]
pub enum StripeFailure {
    /// Not reached, timed out, rate limited or a Stripe-side error: retry later.
    #[error("Stripe could not be reached: {0}")]
    Unavailable(String),
    /// The card was declined (HTTP 402). `payment_intent` is the PaymentIntent the
    /// decline belongs to, when Stripe says.
    #[error("card declined ({code}): {message}")]
    Declined {
        code: String,
        message: String,
        payment_intent: Option<String>,
    },
    /// Stripe refused the request itself (another 4xx).
    #[error("Stripe refused the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
        param: Option<String>,
    },
    /// An answer we could not read, or a client misconfiguration.
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
}

impl StripeFailure {
    /// Whether Stripe says the object does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, StripeFailure::Rejected { status: 404, .. })
            || matches!(self, StripeFailure::Rejected { code, .. } if code == "resource_missing")
    }
}

impl From<StripeError> for StripeFailure {
    fn from(e: StripeError) -> Self {
        match e {
            StripeError::Stripe(err, status) => {
                let message = err.message.clone().unwrap_or_else(|| "no message".into());
                let code = err.code.as_ref().map(|c| c.as_str().to_owned());
                let card_error = matches!(err.type_, stripe::ApiErrorsType::CardError);
                if status == 402 || card_error {
                    return StripeFailure::Declined {
                        code: err
                            .decline_code
                            .clone()
                            .or(code)
                            .unwrap_or_else(|| "card_declined".into()),
                        message,
                        payment_intent: err.payment_intent.as_ref().map(|pi| pi.id.to_string()),
                    };
                }
                if status == 401 || status == 403 {
                    return StripeFailure::Unexpected(format!(
                        "Stripe refused our credentials (HTTP {status}): {message}"
                    ));
                }
                if status == 409 || status == 429 || status >= 500 {
                    return StripeFailure::Unavailable(format!("HTTP {status}: {message}"));
                }
                StripeFailure::Rejected {
                    status,
                    code: code.unwrap_or_else(|| err.type_.as_str().to_owned()),
                    message,
                    param: err.param.clone(),
                }
            }
            StripeError::ClientError(e) => StripeFailure::Unavailable(e),
            StripeError::Timeout => StripeFailure::Unavailable("timed out".into()),
            StripeError::JSONDeserialize(e) => StripeFailure::Unexpected(e),
            StripeError::ConfigError(e) => StripeFailure::Unexpected(e),
        }
    }
}

impl Stripe {
    pub fn new(config: &StripeConfig, metrics: Arc<Metrics>) -> Result<Self, StripeError> {
        let client = stripe::ClientBuilder::new(config.secret_key.expose_secret())
            .url(config.api_base.as_str())
            .timeout(config.timeout)
            .request_strategy(RequestStrategy::Once)
            .build()?;
        Ok(Stripe { client, metrics })
    }
}

/// The strategy that sends `key` as the `Idempotency-Key` header.
fn idempotent(key: &str) -> Result<RequestStrategy, StripeFailure> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeFailure::Unexpected(format!("idempotency key {key:?}: {e}")))
}

/// `metadata[transaction_id]`, which lets the ingestor match Stripe's objects to ours.
fn transaction_metadata(transaction_id: &str) -> std::collections::HashMap<String, String> {
    [("transaction_id".to_owned(), transaction_id.to_owned())].into()
}

/// The failure class a metric counts a Stripe error under.
fn failure_class(e: &StripeError) -> &'static str {
    match e {
        StripeError::Stripe(_, 402) => "declined",
        StripeError::Stripe(_, status) if *status == 409 || *status == 429 || *status >= 500 => {
            "unavailable"
        }
        StripeError::Stripe(..) => "rejected",
        StripeError::ClientError(_) | StripeError::Timeout => "unavailable",
        StripeError::JSONDeserialize(_) | StripeError::ConfigError(_) => "unexpected",
    }
}

/// Every Stripe call runs in its own span and is timed and counted by operation.
pub(crate) trait Observed<T>:
    std::future::Future<Output = Result<T, StripeError>> + Sized
{
    fn observed(
        self,
        metrics: &Arc<Metrics>,
        operation: &'static str,
    ) -> impl std::future::Future<Output = Result<T, StripeError>> {
        let metrics = metrics.clone();
        let span =
            tracing::info_span!("stripe", otel.kind = "client", stripe.operation = operation);
        async move {
            let started = Instant::now();
            let result = self.await;
            metrics.stripe_call(
                operation,
                started.elapsed(),
                result.as_ref().err().map(failure_class),
            );
            result
        }
        .instrument(span)
    }
}

impl<T, F: std::future::Future<Output = Result<T, StripeError>>> Observed<T> for F {}
