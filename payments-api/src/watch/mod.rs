//! WatchTransaction's hub: one LISTEN connection per instance fans the
//! `transaction_changed` doorbell out to every watcher, which then reads the row.
//!
//! - [`hub`]: the hub, its subscriptions and the batched re-reads.
//! - [`listener`]: the listening connection and the doorbell parser.
//! - [`stream`]: one watcher's stream, from the snapshot until settled.

mod hub;
mod listener;
mod stream;

pub use hub::{WatchConfig, WatchHub};
pub use stream::Watch;

#[cfg(test)]
mod tests;
