//! The hub: the slots of watched transactions, the queue of ids to re-read, and
//! [`WatchHub`], which starts the loops and hands out [`Watch`]es.

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
use payments_service_kit::Tasks;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    listener, reader,
    stream::{Watch, finished},
    sweep,
};

#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// How often the versions of every watched transaction are compared with the
    /// database's, in case a doorbell was lost; only the rows that moved are re-read.
    pub safety_reread: Duration,
    /// How long doorbells gather before they are re-read together: re-reads start at
    /// most once per window, so under load one query covers every row that changed
    /// meanwhile. A doorbell after a quiet spell is read at once.
    pub coalesce: Duration,
    /// How many ids one query covers at most (a re-read, or a version check).
    pub reread_batch: usize,
    /// How long a stream stays open at most; it then ends with a status the client
    /// retries on. Each stream ends up to a tenth earlier (spread by transaction id), so
    /// streams opened together do not all come back at once.
    pub max_lifetime: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            safety_reread: Duration::from_secs(5),
            coalesce: Duration::from_millis(10),
            reread_batch: 1_000,
            max_lifetime: Duration::from_secs(30 * 60),
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
    /// Ids whose row must be re-read, filled by doorbells and the safety pass.
    pending: Mutex<HashSet<Uuid>>,
    pub(super) wake_reader: Notify,
    /// Asks the safety pass to run now (the listening connection was re-established).
    pub(super) resync: Notify,
    open_streams: AtomicUsize,
    /// Re-reads taken from `pending` and not yet published.
    pub(super) rereading: AtomicUsize,
    reads: AtomicU64,
    rows_read: AtomicU64,
}

/// Cheap to clone; one per payments-api instance.
#[derive(Clone)]
pub struct WatchHub {
    pub(super) inner: Arc<Inner>,
}

/// `max` less up to a tenth, spread by the transaction id.
fn lifetime(max: Duration, id: Uuid) -> Duration {
    let spread = u32::try_from(id.as_u128() % 1_000).unwrap_or(0);
    max.saturating_sub(max / 10_000 * spread)
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain maps behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WatchHub {
    /// Starts listening (the first LISTEN completes before this returns, so no watcher
    /// can subscribe before the doorbell is wired) and spawns the listener, the reader
    /// and the safety pass into `tasks`; they run until `shutdown`.
    pub async fn start(
        pool: PgPool,
        config: WatchConfig,
        shutdown: CancellationToken,
        tasks: &mut Tasks,
    ) -> Result<WatchHub, StoreError> {
        let inner = Arc::new(Inner {
            pool,
            config,
            shutdown,
            slots: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::new()),
            wake_reader: Notify::new(),
            resync: Notify::new(),
            open_streams: AtomicUsize::new(0),
            rereading: AtomicUsize::new(0),
            reads: AtomicU64::new(0),
            rows_read: AtomicU64::new(0),
        });
        let listening = listener::listen(&inner.pool).await?;
        tasks.spawn("watch listener", listener::run(inner.clone(), listening));
        tasks.spawn("watch reader", reader::run(inner.clone()));
        tasks.spawn("watch safety pass", sweep::run(inner.clone()));
        Ok(WatchHub { inner })
    }

    /// Reads the transaction as it is now; `None` if it does not exist. One query on
    /// a pooled connection, returned at once.
    pub async fn read(&self, id: TransactionId) -> Result<Option<Transaction>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        store::get_transaction(&mut conn, id).await
    }

    /// Reads the transaction, then watches it from that snapshot. `None` if it does
    /// not exist.
    pub async fn watch(
        &self,
        id: TransactionId,
        await_status: Option<TransactionStatus>,
    ) -> Result<Option<Watch>, StoreError> {
        let snapshot = self.read(id).await?;
        Ok(snapshot.map(|snapshot| self.watch_from(snapshot, await_status)))
    }

    /// Watches a transaction from a snapshot the caller has read (and checked the caller
    /// may see), so a watch that is refused never holds a slot. A change committed
    /// after the snapshot was read may have rung its doorbell before the slot existed,
    /// so the id is queued for the next batched re-read, which publishes it if it moved.
    pub fn watch_from(
        &self,
        snapshot: Transaction,
        await_status: Option<TransactionStatus>,
    ) -> Watch {
        let id = snapshot.id.as_uuid();
        let subscription = Subscription {
            rx: self.inner.subscribe(id),
            _guard: SlotGuard {
                inner: self.inner.clone(),
                id,
            },
        };
        let snapshot = Arc::new(snapshot);
        self.inner.publish(snapshot.clone());
        if !finished(&snapshot, await_status) {
            self.inner.ring([(id, snapshot.version.saturating_add(1))]);
        }
        let deadline = tokio::time::Instant::now() + lifetime(self.inner.config.max_lifetime, id);
        Watch::new(
            snapshot,
            subscription,
            await_status,
            self.inner.shutdown.clone(),
            deadline,
        )
    }

    /// Streams currently open on this instance.
    pub fn open_streams(&self) -> usize {
        self.inner.open_streams.load(Ordering::Relaxed)
    }

    /// Distinct transactions currently watched.
    pub fn watched_transactions(&self) -> usize {
        locked(&self.inner.slots).len()
    }

    /// Queries the hub has issued: batched re-reads and the safety pass's version checks.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// Rows the hub has re-read in full (version checks not included).
    pub fn rows_read(&self) -> u64 {
        self.inner.rows_read.load(Ordering::Relaxed)
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

    /// Queues `(id, version)`s for a re-read when somebody watches the id and the version
    /// is newer than what its watchers hold (a watched id without a snapshot yet counts
    /// as older). Unwatched ids and stale versions cost nothing.
    pub(super) fn ring(&self, changes: impl IntoIterator<Item = (Uuid, i64)>) {
        let mut rang = false;
        {
            let slots = locked(&self.slots);
            let mut pending = locked(&self.pending);
            for (id, version) in changes {
                let Some(slot) = slots.get(&id) else {
                    continue;
                };
                let known = slot.borrow().as_ref().map(|t| t.version);
                if known.is_none_or(|known| known < version) {
                    rang |= pending.insert(id);
                }
            }
        }
        if rang {
            self.wake_reader.notify_one();
        }
    }

    /// Puts back ids whose re-read failed, if they are still watched.
    pub(super) fn requeue(&self, ids: Vec<Uuid>) {
        let slots = locked(&self.slots);
        let mut pending = locked(&self.pending);
        pending.extend(ids.into_iter().filter(|id| slots.contains_key(id)));
    }

    /// Takes up to `max` queued ids; if it takes any, the caller counts as re-reading
    /// until it calls `reread_done` (counted under the lock, so `is_idle` never sees the
    /// ids in neither place).
    pub(super) fn take_pending(&self, max: usize) -> Vec<Uuid> {
        let mut pending = locked(&self.pending);
        if pending.is_empty() {
            return Vec::new();
        }
        self.rereading.fetch_add(1, Ordering::SeqCst);
        if pending.len() <= max {
            return pending.drain().collect();
        }
        let ids: Vec<Uuid> = pending.iter().take(max).copied().collect();
        for id in &ids {
            pending.remove(id);
        }
        ids
    }

    /// Nothing queued and no re-read in flight: every doorbell rung so far is published.
    #[cfg(test)]
    pub(super) fn is_idle(&self) -> bool {
        locked(&self.pending).is_empty() && self.rereading.load(Ordering::SeqCst) == 0
    }

    /// Every watched id, for the safety pass.
    pub(super) fn watched_ids(&self) -> Vec<Uuid> {
        locked(&self.slots).keys().copied().collect()
    }

    pub(super) fn reread_done(&self) {
        self.rereading.fetch_sub(1, Ordering::SeqCst);
    }

    /// Counts one query, and the rows it re-reads in full.
    pub(super) fn count_read(&self, full_rows: usize) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.rows_read.fetch_add(
            u64::try_from(full_rows).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
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
