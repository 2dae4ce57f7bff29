//! WatchTransaction's hub: one LISTEN connection per instance hears the
//! `transaction_changed` doorbell (`id:version`), the changed rows are re-read in
//! batches, and each row goes out to all of its watchers at once.
//!
//! - [`hub`]: the hub, its subscriptions, and which doorbells are worth a read.
//! - [`listener`]: the listening connection and the doorbell parser.
//! - [`reader`]: the batched re-reads, at most one per coalescing window.
//! - [`sweep`]: the safety pass for lost doorbells, comparing versions only.
//! - [`stream`]: one watcher's stream, from the snapshot until settled or its deadline.
//! - [`limits`]: the caps on open streams, per user and per instance.

mod hub;
mod limits;
mod listener;
mod reader;
mod stream;
mod sweep;

pub use hub::{WatchConfig, WatchHub};
pub use limits::{LimitHit, WatchLimits, WatchPermit};
pub use stream::{Watch, WatchEnd};

#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod tests;
