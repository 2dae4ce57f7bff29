//! The webhook ingestor: receives Stripe webhooks, verifies their signature on the raw
//! body, stores each event in the `stripe_events` inbox and, in the same database
//! transaction, commits what it means for our transaction (status, audit trail,
//! ledger, trial, outbox) exactly once. The rules themselves live in payments-core;
//! this crate is transport and background work around them.
//!
//! - [`config`]: the typed configuration, read from the environment once.
//! - [`signature`]: pure, clock-injected verification of `Stripe-Signature`.
//! - [`inbox`]: payments-core's store-then-apply, counted in this service's metrics.
//! - [`group_commit`]: webhooks that arrive together stored and applied in one
//!   database transaction (when turned on), each answered after that commit.
//! - [`http`]: the webhook route, `/healthz`, `/readyz`, `/metrics` and gRPC health,
//!   with the error-to-status mapping in one place.
//! - [`workers`]: retrying unmatched and deferred events, sending the outbox,
//!   reconciling stale transactions, catching up on missed events.
//! - [`stripe_api`]: the calls we make to Stripe, through payments-stripe's shared
//!   client (one pinned API version, one classification of failures).
//! - [`metrics`]: this service's metrics, in the shared registry of `payments-telemetry`.
//! - [`startup`]: [`App`], which binds in `build` and serves in `run_until_stopped`.

pub mod config;
pub mod group_commit;
pub mod http;
pub mod inbox;
pub mod metrics;
pub mod signature;
pub mod startup;
pub mod stripe_api;
pub mod workers;

pub use config::{Config, ConfigError};
pub use metrics::Metrics;
pub use payments_core::{RetryPolicy, retry};
pub use payments_service_kit::error_chain;
pub use startup::App;
