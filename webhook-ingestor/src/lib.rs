//! The webhook ingestor: receives Stripe webhooks, verifies their signature on the raw
//! body, stores each event in the `stripe_events` inbox and, in the same database
//! transaction, commits what it means for our transaction (status, audit trail,
//! ledger, trial, outbox) exactly once. The rules themselves live in payments-core;
//! this crate is transport and background work around them.
//!
//! - [`config`]: the typed configuration, read from the environment once.
//! - [`signature`]: pure, clock-injected verification of `Stripe-Signature`.
//! - [`inbox`]: store-then-apply in one database transaction, with a savepoint so an
//!   event that fails to apply is still stored and retried.
//! - [`http`]: the webhook route, `/healthz`, `/readyz`, `/metrics` and gRPC health,
//!   with the error-to-status mapping in one place.
//! - [`workers`]: retrying unmatched and deferred events, sending the outbox,
//!   reconciling stale transactions, catching up on missed events.
//! - [`stripe_api`]: the calls we make to Stripe and how their failures are retried;
//!   [`stripe_object`]: what a PaymentIntent or Invoice read back from Stripe says.
//! - [`store_ext`]: queries not (yet) in the shared store.
//! - [`metrics`]: a small Prometheus-text registry.
//! - [`startup`]: [`App`], which binds in `build` and serves in `run_until_stopped`.

pub mod config;
pub mod http;
pub mod inbox;
pub mod metrics;
pub mod retry;
pub mod signature;
pub mod startup;
pub mod store_ext;
pub mod stripe_api;
pub mod stripe_object;
pub mod telemetry;
pub mod workers;

pub use config::{Config, ConfigError};
pub use metrics::Metrics;
pub use retry::RetryPolicy;
pub use startup::App;

/// An error and its causes on one line, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
