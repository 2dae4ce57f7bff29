//! The payments domain and its Postgres store, shared by `payments-api` and
//! `webhook-ingestor`. No transport lives here (no tonic, axum or hyper).
//!
//! - [`money`] and [`ids`]: values that cannot be invalid (`Money`, `Currency`,
//!   `TransactionId`, `UserId`, Stripe ids).
//! - [`text`]: the one mechanism for values stored as text (enums, ids, currency).
//! - [`transaction`]: the transaction record, its kind and status, and the sets of
//!   statuses the queries filter on.
//! - [`state_machine`]: the pure transition function every writer goes through.
//! - [`stripe_object`]: reading a Stripe object, whoever got it (an event, a read-back,
//!   the answer to our own request): ids, amounts, the charge, a failure, its signal.
//! - [`stripe_event`]: the Stripe event envelope and what each event type means, and
//!   the mode (test or live) a key or an event belongs to.
//! - [`binding`]: whether a Stripe object is the transaction's own (kind, recorded id,
//!   amount), or may be adopted as it.
//! - [`store`]: the SQL, each query taking a connection so callers compose them
//!   into one database transaction.
//! - [`settle`]: applying a signal to a locked transaction — status, audit trail,
//!   ledger, outbox — in the caller's database transaction.
//! - [`inbox`]: storing a verified event and applying it in one database transaction.
//! - [`reconcile`]: the one reconciliation sequence (read the object back from Stripe
//!   through a [`StripeReader`](reconcile::StripeReader), apply it through `settle`).
//! - [`retry`]: the backoff and budget of stored events and outbox calls.
//! - [`testing`] (feature `testing`): a fresh database per test, dropped afterwards.

pub mod binding;
pub mod ids;
pub mod inbox;
pub mod money;
pub mod reconcile;
pub mod retry;
pub mod settle;
pub mod state_machine;
pub mod store;
pub mod stripe_event;
pub mod stripe_object;
pub mod text;
pub mod transaction;

#[cfg(feature = "testing")]
pub mod testing;

use payments_service_kit::error_chain;

pub use ids::{IdError, PaymentMethodId, StripeEventId, TransactionId, UserId};
pub use money::{Currency, Money, MoneyError, STRIPE_MAX_AMOUNT};
pub use retry::RetryPolicy;
pub use state_machine::{
    Current, Decision, Effect, Moved, Refund, Release, Signal, Step, Transition,
    UNEXPLAINED_FAILURE, decide, transitions,
};
pub use stripe_event::{EventError, Meaning, StripeEvent, StripeMode};
pub use stripe_object::{CardDetails, StripeObject, Target};
pub use transaction::{Transaction, TransactionKind, TransactionStatus};

/// The channel the `transactions` trigger notifies with `"{id}:{version}"`.
pub const TRANSACTION_CHANNEL: &str = "transaction_changed";
