//! The `payments.v1` gRPC service (also served as grpc-web to browsers): every
//! Stripe side effect of a wallet — top-ups, coupons, card validations, trials —
//! starts as a transaction row, then calls Stripe with an idempotency key derived
//! from that row, so retries and crashes never charge twice. Money only moves when
//! the webhook-ingestor applies Stripe's events; this service only records what
//! Stripe's synchronous answers imply, through `payments_core::settle`.
//!
//! - [`config`]: the typed configuration, read once from the environment.
//! - [`startup`]: [`App`], which binds the listener and serves until shutdown.
//! - [`admin`]: the operator service (`PaymentsAdmin`), service tokens only.
//! - [`auth`]: bearer-token verification and the authorization rules.
//! - [`error`]: the one error type and its mapping to gRPC statuses.
//! - [`service`]: the RPC handlers, one module per concern.
//! - [`stripe_client`]: the Stripe calls the RPCs make, through payments-stripe's
//!   shared client.
//! - [`watch`]: the hub that streams transaction changes to watchers.
//! - [`metrics`]: the Prometheus metrics served at `GET /metrics`.
//! - [`rate_limit`]: the per-user rate limit on mutations (a tower layer).

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod rate_limit;
pub mod service;
pub mod startup;
pub mod stripe_client;
pub mod watch;

pub use config::{Config, ConfigError};
pub use startup::App;
