//! One watcher's stream: the snapshot, then every newer version, until settled.

use std::sync::Arc;

use futures::Stream;
use payments_core::{Transaction, TransactionStatus};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hub::Subscription;

/// Why an open stream ended before its transaction settled; the client watches again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WatchEnd {
    /// The instance is shutting down.
    #[error("this instance is shutting down; watch again")]
    ShuttingDown,
    /// The stream reached `WatchConfig::max_lifetime`.
    #[error("the stream reached its maximum lifetime; watch again")]
    LifetimeReached,
}

/// A subscribed watcher. Dropping it (or its stream) frees everything it held.
pub struct Watch {
    snapshot: Arc<Transaction>,
    subscription: Subscription,
    await_status: Option<TransactionStatus>,
    shutdown: CancellationToken,
    deadline: Instant,
}

struct State {
    subscription: Subscription,
    last_version: i64,
    done: bool,
    await_status: Option<TransactionStatus>,
    shutdown: CancellationToken,
    deadline: Instant,
    first: Option<Arc<Transaction>>,
}

impl Watch {
    pub(super) fn new(
        snapshot: Arc<Transaction>,
        subscription: Subscription,
        await_status: Option<TransactionStatus>,
        shutdown: CancellationToken,
        deadline: Instant,
    ) -> Self {
        Watch {
            snapshot,
            subscription,
            await_status,
            shutdown,
            deadline,
        }
    }

    /// The state when the watch began: the first message.
    pub fn snapshot(&self) -> &Transaction {
        &self.snapshot
    }

    /// The snapshot first, then each newer committed version (intermediate versions
    /// may be coalesced; the latest always arrives). Ends after a settled status or
    /// `await_status`. At shutdown, or at its deadline, it ends with a [`WatchEnd`],
    /// which the transport maps to a status the client retries on.
    pub fn into_stream(self) -> impl Stream<Item = Result<Transaction, WatchEnd>> + Send + 'static {
        let state = State {
            last_version: 0,
            first: Some(self.snapshot),
            subscription: self.subscription,
            done: false,
            await_status: self.await_status,
            shutdown: self.shutdown,
            deadline: self.deadline,
        };
        futures::stream::unfold(state, next)
    }
}

pub(super) fn finished(tx: &Transaction, await_status: Option<TransactionStatus>) -> bool {
    tx.status.is_settled() || Some(tx.status) == await_status
}

async fn next(mut s: State) -> Option<(Result<Transaction, WatchEnd>, State)> {
    if s.done {
        return None;
    }
    if let Some(first) = s.first.take() {
        return Some(s.emit(first));
    }
    loop {
        let newer = s
            .subscription
            .rx
            .borrow_and_update()
            .clone()
            .filter(|t| t.version > s.last_version);
        if let Some(tx) = newer {
            return Some(s.emit(tx));
        }
        tokio::select! {
            changed = s.subscription.rx.changed() => {
                if changed.is_err() {
                    // The hub dropped the slot: only at shutdown.
                    s.done = true;
                    return Some((Err(WatchEnd::ShuttingDown), s));
                }
            }
            () = s.shutdown.cancelled() => {
                s.done = true;
                return Some((Err(WatchEnd::ShuttingDown), s));
            }
            () = tokio::time::sleep_until(s.deadline) => {
                s.done = true;
                return Some((Err(WatchEnd::LifetimeReached), s));
            }
        }
    }
}

impl State {
    fn emit(mut self, tx: Arc<Transaction>) -> (Result<Transaction, WatchEnd>, State) {
        self.last_version = tx.version;
        self.done = finished(&tx, self.await_status);
        (Ok(Transaction::clone(&tx)), self)
    }
}
