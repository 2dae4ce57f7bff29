//! Pool connections a hot path keeps checked out between its units of work.
//!
//! sqlx tests every connection returned to its pool with a round trip (a Sync and its
//! ReadyForQuery), and that test cannot be turned off. On the webhook path, whose common
//! event is one round trip, it would be a second, and with the pool's hand-over it was
//! about 7% of the ingestor's CPU under load (when the path made nine). A connection whose work ended cleanly (committed
//! or rolled back) is put back here with [`CachedConnection::keep`] instead, and the next
//! event takes it without either. Anything else (an error, a request abandoned mid-query)
//! drops the connection, which goes back to the pool through sqlx's test as before.
//!
//! A connection is kept only while no caller of this cache is waiting for the pool: when
//! the pool is exhausted, every returned connection goes to the pool's queue, which is
//! first come, first served, so no request waits behind a connection idling here. The
//! cache holds at most `capacity` connections, and [`ConnectionCache::release_idle`]
//! returns those idle for a while to the pool, so the background workers sharing the pool
//! are not starved when webhooks stop. A connection that sat in the cache for longer than
//! its `ping_if_idle_for` ([`PING_IF_IDLE_FOR`](super::PING_IF_IDLE_FOR) in the services)
//! is pinged before it is handed out, as the pool does.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{Connection as _, PgConnection, PgPool, Postgres, pool::PoolConnection};

use super::StoreError;

/// Cheap to clone; clones share the cached connections.
#[derive(Clone)]
pub struct ConnectionCache {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    capacity: usize,
    ping_if_idle_for: Duration,
    /// Callers of `acquire` waiting in the pool's queue.
    waiting: AtomicUsize,
    /// Most recently used last: `acquire` takes the warmest.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: PoolConnection<Postgres>,
    since: Instant,
}

impl ConnectionCache {
    /// A cache over `pool` holding at most `capacity` idle connections, pinging one that
    /// sat for longer than `ping_if_idle_for` before handing it out.
    pub fn new(pool: PgPool, capacity: usize, ping_if_idle_for: Duration) -> ConnectionCache {
        ConnectionCache {
            inner: Arc::new(Inner {
                pool,
                capacity,
                ping_if_idle_for,
                waiting: AtomicUsize::new(0),
                idle: Mutex::new(Vec::with_capacity(capacity)),
            }),
        }
    }

    /// A cached connection (the most recently used), or one from the pool.
    pub async fn acquire(&self) -> Result<CachedConnection, StoreError> {
        loop {
            let Some(idle) = self.idle().pop() else {
                let conn = {
                    let _waiting = Waiting::new(&self.inner.waiting);
                    self.inner.pool.acquire().await?
                };
                return Ok(self.wrap(conn));
            };
            let mut conn = idle.conn;
            if idle.since.elapsed() <= self.inner.ping_if_idle_for || conn.ping().await.is_ok() {
                return Ok(self.wrap(conn));
            }
            // Broken while idle: the pool's test on its return closes it.
            drop(conn);
        }
    }

    /// Runs `work` on a connection from [`acquire`](Self::acquire) and keeps the
    /// connection if `work` succeeded. `work` must end every `Ok` with its COMMIT or
    /// ROLLBACK completed; on an error the connection goes back to the pool.
    pub async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.acquire().await?;
        let done = work(&mut conn).await?;
        conn.keep();
        Ok(done)
    }

    /// Returns the connections idle for longer than `idle_for` to the pool.
    pub fn release_idle(&self, idle_for: Duration) {
        let released: Vec<Idle> = {
            let mut idle = self.idle();
            let keep_from = idle
                .iter()
                .position(|entry| entry.since.elapsed() <= idle_for)
                .unwrap_or(idle.len());
            idle.drain(..keep_from).collect()
        };
        drop(released);
    }

    /// Returns every cached connection to the pool (before the pool is closed).
    pub fn clear(&self) {
        let released = std::mem::take(&mut *self.idle());
        drop(released);
    }

    /// How many connections are cached now.
    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// How many callers of [`acquire`](Self::acquire) are waiting for the pool now.
    pub fn waiting_count(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    fn wrap(&self, conn: PoolConnection<Postgres>) -> CachedConnection {
        CachedConnection {
            cache: self.clone(),
            conn,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // The lock is never held across an await or a panic-prone call; a poisoned
        // list of connections is still a list of connections.
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A connection from [`ConnectionCache::acquire`]. Dropping it returns it to the pool;
/// [`keep`](Self::keep) puts it back in the cache.
pub struct CachedConnection {
    cache: ConnectionCache,
    conn: PoolConnection<Postgres>,
}

impl CachedConnection {
    /// Puts the connection back in the cache, or in the pool when the cache is full or a
    /// caller is waiting for the pool.
    /// Call it only when the work on it ended cleanly: no transaction open, no statement
    /// half-read.
    pub fn keep(self) {
        let CachedConnection { cache, conn } = self;
        let overflow = {
            let mut idle = cache.idle();
            let wanted = cache.inner.waiting.load(Ordering::Acquire) > 0;
            match idle.len() < cache.inner.capacity && !wanted {
                true => {
                    idle.push(Idle {
                        conn,
                        since: Instant::now(),
                    });
                    None
                }
                false => Some(conn),
            }
        };
        // Back to the pool (to a waiting caller first), outside the lock.
        drop(overflow);
    }
}

impl Deref for CachedConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for CachedConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// Counts a caller in the pool's queue for as long as it waits (also if its request is
/// abandoned while waiting).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
