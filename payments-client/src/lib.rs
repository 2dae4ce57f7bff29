//! `payments-client`: the Rust client of `payments.v1` that backend services use.
//!
//! ```no_run
//! # async fn example() -> Result<(), payments_client::Error> {
//! use payments_client::{Connection, Endpoint, IdempotencyKey, SigningKey, pb};
//!
//! let payments = Connection::connect(
//!     &Endpoint::new("https://payments.internal:50051").ca_file("/etc/payments/ca.pem")?,
//!     SigningKey::hs256("the shared secret").service("checkout"),
//! )
//! .await?
//! .payments();
//! let key = IdempotencyKey::new(); // keep it with the user's intent, reuse it on retry
//! let started = payments
//!     .create_payment(pb::CreatePaymentRequest {
//!         user_id: "u1".into(),
//!         payment_method_id: "pm_card_visa".into(),
//!         amount: 2_500,
//!         currency: "usd".into(),
//!         idempotency_key: key.to_string(),
//!     })
//!     .await?;
//! let settled = payments.await_transaction(&started.transaction.id).await?;
//! # Ok(()) }
//! ```
//!
//! - [`endpoint`]: the address, TLS (a CA file, or the public roots) and timeouts.
//! - [`auth`]: the [`TokenProvider`] asked before every call: a [`StaticToken`], or
//!   [`SigningKey`] minting HS256/RS256 tokens for a user or a service.
//! - [`client`]: [`Connection`], [`PaymentsClient`] (every PaymentsService RPC) and
//!   [`AdminClient`] (PaymentsAdmin).
//! - [`retry`]: UNAVAILABLE is retried with the same message, so the same idempotency
//!   key, with backoff and jitter, or after the server's RetryInfo delay.
//! - [`watch`]: `await_transaction` and a WatchTransaction that reconnects and never
//!   goes back in versions.
//! - [`error`]: [`Error`], with the `google.rpc.ErrorInfo` reason as an [`ErrorReason`]
//!   (the contract's enum).

pub mod auth;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod retry;
pub mod watch;

use std::fmt;

pub use auth::{MintedToken, SigningKey, StaticToken, TokenError, TokenProvider};
pub use client::{AdminClient, Connection, PaymentsClient, Started};
pub use endpoint::Endpoint;
pub use error::{Error, ErrorDetail, ErrorReason, RpcError};
/// The generated messages of `payments.v1`.
pub use payments_proto::payments::v1 as pb;
pub use retry::RetryPolicy;
/// gRPC status codes, as [`RpcError::code`] holds them.
pub use tonic::Code;
pub use watch::TransactionWatch;

/// An idempotency key: one per user intent (a click on "Pay"), kept with it and sent
/// again on every retry of that intent, so the retry returns the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A new random key (a UUID).
    #[allow(clippy::new_without_default)]
    pub fn new() -> IdempotencyKey {
        IdempotencyKey(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for IdempotencyKey {
    fn from(key: String) -> IdempotencyKey {
        IdempotencyKey(key)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> String {
        key.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
