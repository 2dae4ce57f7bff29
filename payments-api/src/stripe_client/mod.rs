//! The Stripe calls the RPCs make, each through payments-stripe's shared client (the
//! pinned API version, the one classification of failures in [`StripeFailure`]) and
//! counted in this service's metrics.
//!
//! Every call that creates something carries an `Idempotency-Key` derived from our
//! own ids, so a retried RPC replays Stripe's first answer instead of acting twice.
//! What an answer means is read by payments-core's `StripeObject`.
//!
//! - [`payment_intents`]: creating and confirming a card transaction's PaymentIntent.
//! - [`coupons`]: finding a redeemable code and the zero-total invoice that credits it.
//! - [`customers`] and [`payment_methods`]: the user's Stripe customer and cards.

mod coupons;
mod customers;
mod payment_intents;
mod payment_methods;

pub use coupons::{CouponInvoice, CouponProblem, Discount, Redeemable, Redeemer};
pub use payment_intents::{IntentOutcome, IntentRequest};
pub use payments_stripe::StripeFailure;

use std::{sync::Arc, time::Duration};

use payments_stripe::{CallObserver, StripeClient};

use crate::{config::StripeConfig, metrics::Metrics};

/// A Stripe client for this service's calls. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Stripe {
    client: StripeClient,
}

impl Stripe {
    pub fn new(config: &StripeConfig, metrics: Arc<Metrics>) -> Result<Self, StripeFailure> {
        let client = StripeClient::new(config)?.observed_by(Arc::new(Counted(metrics)));
        Ok(Stripe { client })
    }

    /// The shared client: also payments-core's reconciliation reader.
    pub fn client(&self) -> &StripeClient {
        &self.client
    }
}

/// Every Stripe call is timed and counted by operation and failure class.
struct Counted(Arc<Metrics>);

impl CallObserver for Counted {
    fn stripe_call(
        &self,
        operation: &'static str,
        elapsed: Duration,
        failure: Option<&StripeFailure>,
    ) {
        self.0
            .stripe_call(operation, elapsed, failure.map(StripeFailure::class));
    }
}

/// async-stripe's name for the currency of `money`.
fn stripe_currency(money: payments_core::Money) -> stripe_types::Currency {
    money
        .currency()
        .as_str()
        .parse()
        .unwrap_or_else(|never| match never {})
}

/// `metadata[transaction_id]`, which lets the ingestor match Stripe's objects to ours.
fn transaction_metadata(
    transaction_id: payments_core::TransactionId,
) -> std::collections::HashMap<String, String> {
    let key = payments_core::stripe_object::TRANSACTION_METADATA_KEY;
    [(key.to_owned(), transaction_id.to_string())].into()
}
