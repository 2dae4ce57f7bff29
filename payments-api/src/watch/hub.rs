use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use payments_core::{
    Transaction, TransactionId, TransactionStatus,
    store::{self, StoreError},
};
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{listener, stream::Watch};

#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// How often every watched transaction is re-read in one query, as a safety net.
    pub safety_reread: Duration,
    /// How many ids one batched re-read covers at most.
    pub reread_batch: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            safety_reread: Duration::from_secs(5),
            reread_batch: 5_000,
        }
    }
}

type Slot = watch::Sender<Option<Arc<Transaction>>>;

/// The shared state of one instance's watchers.
pub(super) struct Inner {
    pub(super) pool: PgPool,
    pub(super) config: WatchConfig,
    pub(super) shutdown: CancellationToken,
    slots: Mutex<HashMap<Uuid, Slot>>,
    /// Ids whose row must be re-read, filled by doorbells and reconnects.
    pending: Mutex<HashSet<Uuid>>,
    pub(super) wake_reader: Notify,
    open_streams: AtomicUsize,
    reads: AtomicU64,
}

/// Cheap to clone; one per payments-api instance.
#[derive(Clone)]
pub struct WatchHub {
    pub(super) inner: Arc<Inner>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain maps behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WatchHub {
    /// Starts listening (the first LISTEN completes before this returns, so no watcher
    /// can subscribe before the doorbell is wired) and spawns the reader tasks.
    pub async fn start(
        pool: PgPool,
        config: WatchConfig,
        shutdown: CancellationToken,
    ) -> Result<WatchHub, StoreError> {
        let inner = Arc::new(Inner {
            pool,
            config,
            shutdown,
            slots: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::new()),
            wake_reader: Notify::new(),
            open_streams: AtomicUsize::new(0),
            reads: AtomicU64::new(0),
        });
        let listening = listener::listen(&inner.pool).await?;
        tokio::spawn(listener::run(inner.clone(), listening));
        tokio::spawn(reader(inner.clone()));
        tokio::spawn(safety_reread(inner.clone()));
        Ok(WatchHub { inner })
    }

    /// Subscribes to the transaction, then reads its snapshot. `None` if it does not exist.
    pub async fn watch(
        &self,
        id: TransactionId,
        await_status: Option<TransactionStatus>,
    ) -> Result<Option<Watch>, StoreError> {
        let subscription = Subscription {
            rx: self.inner.subscribe(id.as_uuid()),
            _guard: SlotGuard {
                inner: self.inner.clone(),
                id: id.as_uuid(),
            },
        };
        let mut conn = self.inner.pool.acquire().await?;
        let Some(snapshot) = store::get_transaction(&mut conn, id).await? else {
            return Ok(None);
        };
        drop(conn);
        let snapshot = Arc::new(snapshot);
        self.inner.publish(snapshot.clone());
        Ok(Some(Watch::new(
            snapshot,
            subscription,
            await_status,
            self.inner.shutdown.clone(),
        )))
    }

    /// Streams currently open on this instance.
    pub fn open_streams(&self) -> usize {
        self.inner.open_streams.load(Ordering::Relaxed)
    }

    /// Distinct transactions currently watched.
    pub fn watched_transactions(&self) -> usize {
        locked(&self.inner.slots).len()
    }

    /// Database reads the hub has issued (each covers a batch of ids).
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn subscribe(&self, id: Uuid) -> watch::Receiver<Option<Arc<Transaction>>> {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        let mut slots = locked(&self.slots);
        match slots.get(&id) {
            Some(slot) => slot.subscribe(),
            None => {
                let (tx, rx) = watch::channel(None);
                slots.insert(id, tx);
                rx
            }
        }
    }

    /// Publishes a row to its watchers if it is newer than what they have.
    pub(super) fn publish(&self, tx: Arc<Transaction>) {
        let slots = locked(&self.slots);
        if let Some(slot) = slots.get(&tx.id.as_uuid()) {
            slot.send_if_modified(|current| match current {
                Some(c) if c.version >= tx.version => false,
                _ => {
                    *current = Some(tx);
                    true
                }
            });
        }
    }

    /// Queues ids for a re-read if anybody watches them.
    pub(super) fn ring(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut rang = false;
        {
            let slots = locked(&self.slots);
            let mut pending = locked(&self.pending);
            for id in ids {
                if slots.contains_key(&id) {
                    rang |= pending.insert(id);
                }
            }
        }
        if rang {
            self.wake_reader.notify_one();
        }
    }

    /// Queues every watched id (after a reconnect, and periodically).
    pub(super) fn ring_all(&self) {
        let ids: Vec<Uuid> = locked(&self.slots).keys().copied().collect();
        self.ring(ids);
    }

    /// Newest version any watcher of `id` has seen.
    pub(super) fn known_version(&self, id: Uuid) -> Option<i64> {
        locked(&self.slots)
            .get(&id)
            .and_then(|s| s.borrow().as_ref().map(|t| t.version))
    }

    fn take_pending(&self, max: usize) -> Vec<Uuid> {
        let mut pending = locked(&self.pending);
        let ids: Vec<Uuid> = pending.iter().take(max).copied().collect();
        for id in &ids {
            pending.remove(id);
        }
        ids
    }

    fn release(&self, id: Uuid) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
        let mut slots = locked(&self.slots);
        if slots.get(&id).is_some_and(|s| s.receiver_count() == 0) {
            slots.remove(&id);
        }
    }
}

/// A watcher's receiver and the guard that frees its slot. Fields drop in order, so
/// the receiver is gone when the guard counts the remaining ones.
pub(super) struct Subscription {
    pub(super) rx: watch::Receiver<Option<Arc<Transaction>>>,
    _guard: SlotGuard,
}

/// Removes the transaction's slot when its last watcher goes.
struct SlotGuard {
    inner: Arc<Inner>,
    id: Uuid,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.inner.release(self.id);
    }
}

/// Re-reads queued ids in batches: one query per batch, whatever the number of watchers.
async fn reader(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = inner.wake_reader.notified() => {}
        }
        loop {
            let ids = inner.take_pending(inner.config.reread_batch);
            if ids.is_empty() {
                break;
            }
            inner.reads.fetch_add(1, Ordering::Relaxed);
            let read = async {
                let mut conn = inner.pool.acquire().await?;
                store::get_transactions(&mut conn, &ids).await
            };
            match read.await {
                Ok(rows) => rows.into_iter().for_each(|tx| inner.publish(Arc::new(tx))),
                Err(e) => {
                    tracing::warn!(error = %e, ids = ids.len(), "watch re-read failed; retrying");
                    inner.ring(ids);
                    tokio::select! {
                        () = inner.shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                }
            }
        }
    }
}

async fn safety_reread(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.safety_reread);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            _ = tick.tick() => inner.ring_all(),
        }
    }
}
