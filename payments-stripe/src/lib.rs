//! The Stripe client payments-api and webhook-ingestor share. What a Stripe object
//! *means* is payments-core's ([`payments_core::stripe_object`]); this crate is how we
//! talk to Stripe:
//!
//! - [`StripeClient`] (in [`client`]): async-stripe's client with our configuration,
//!   sending every request at the one pinned API version ([`api_version`]), each in a
//!   `stripe` span, timed for whoever observes the calls ([`CallObserver`]).
//! - [`StripeFailure`] (in [`failure`]): the one classification of what went wrong,
//!   including whether asking again can help ([`StripeFailure::is_retryable`]).
//! - [`reader`]: objects and events read back as JSON — the reconciliation reader
//!   (payments-core's [`StripeReader`](payments_core::reconcile::StripeReader)) and
//!   the event list of the catch-up pass.
//!
//! The same code talks to stripe-sim and to real Stripe: only [`StripeConfig`]
//! differs.

pub mod client;
pub mod failure;
pub mod reader;

pub use client::{CallObserver, StripeClient, idempotent};
pub use failure::StripeFailure;

use std::time::Duration;

use secrecy::SecretString;

/// Stripe's production API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How to reach Stripe.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `STRIPE_API_BASE`: [`DEFAULT_API_BASE`] unless pointed at stripe-sim.
    pub api_base: String,
    /// `STRIPE_SECRET_KEY` (`sk_…` or `rk_…`).
    pub secret_key: SecretString,
    /// Per-attempt timeout of a request.
    pub timeout: Duration,
}

impl StripeConfig {
    /// The mode of the key (`sk_live_…` or `rk_live_…`: live): only that mode's
    /// events are applied. A key of no known prefix counts as test mode; the
    /// services refuse such a key at start.
    pub fn mode(&self) -> payments_core::StripeMode {
        use secrecy::ExposeSecret;
        payments_core::StripeMode::of_key(self.secret_key.expose_secret())
            .unwrap_or(payments_core::StripeMode::Test)
    }
}

/// The Stripe API version every request is sent at (`Stripe-Version`), whatever the
/// account's default: the version async-stripe's typed models were generated from,
/// pinned with the crate (`=1.0.0-rc.10`). Events reach us at the webhook endpoint's
/// version; payments-core reads objects of any version.
pub fn api_version() -> &'static str {
    static VERSION: stripe_client_core::ApiVersion = stripe_client_core::VERSION;
    VERSION.as_str()
}
