//! A stateful local Stripe for tests, benchmarks and the demo.
//!
//! It speaks Stripe's wire format (form-encoded requests with bracket notation, JSON objects
//! in Stripe's shapes, Stripe's error envelope, `Idempotency-Key`), keeps customers, payment
//! methods, payment intents, charges, refunds, disputes, coupons, promotion codes, invoices and
//! events in memory, and delivers signed webhooks with retries and seeded chaos (drops,
//! duplicates, reordering, delay). async-stripe and Stripe's official SDKs point at it by base URL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = stripe_sim::StripeSim::builder()
//!     .webhook_url("http://127.0.0.1:8080/v1/stripe-webhook")
//!     .webhook_secret("whsec_test")
//!     .seed(42)
//!     .start()
//!     .await?;
//! let client = format!("{}/v1/customers", sim.base_url());
//! # let _ = client;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `sim.rs` (builder and handle), `config.rs` and `cli.rs` (configuration),
//! `http/` (the `/v1/*` routes and what every request goes through, the `/test/*`
//! helpers), `idempotency.rs` (`Idempotency-Key` replay), `faults.rs` (injected failures
//! and delays), `params.rs` and `form.rs` (request parsing), `store.rs` (state, ids,
//! events, pagination), `resources/` (one module per Stripe object), `webhooks/`
//! (delivery, signing, chaos), `error.rs` (Stripe's error envelope).

// Stripe objects are large `json!` literals.
#![recursion_limit = "256"]

pub mod cli;
mod config;
mod error;
mod faults;
mod form;
mod http;
mod idempotency;
mod params;
mod resources;
mod sim;
mod store;
mod webhooks;

pub use config::{Chaos, Config, ConfigError, WebhookSecret, doubling};
pub use error::{ApiError, ErrorType};
pub use faults::Faults;
pub use sim::{StartError, StripeSim, StripeSimBuilder};
pub use store::API_VERSION;
pub use webhooks::signing::{header as signature_header, sign};
pub use webhooks::{DeliveryStats, EventFate};
