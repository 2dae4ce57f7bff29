//! The watchers' doorbell, rung after the commit instead of inside it (migration 0031).
//!
//! PostgreSQL serializes the commits of database transactions that NOTIFY: the
//! notification queue's lock is taken before the commit and held until its WAL flush is
//! done. The webhook path's commits all settle a transaction, so while the trigger rings
//! inside them, they commit one flush after another however many run side by side. With
//! a success written by one statement, that lock is what bounds the webhook rate, so the
//! ingestor rings after the commit unless configured not to.
//!
//! A database transaction begun with [`begin_collecting_doorbells`] has the trigger
//! collect its `id:version` payloads instead (the transaction-local setting
//! `payments.doorbells`), which [`insert_event`](super::insert_event) reads back with the
//! event's insert, so collecting them costs no round trip; the one-statement success
//! sets the same itself and returns its rows' versions
//! ([`write_successes`](super::write_successes)). Once it has committed, the caller hands
//! them to [`Doorbell::ring`], and one task sends everything queued since its last send
//! in one statement (at most one every [`LINGER`] under load), on a connection of its
//! own, whose commit flushes no WAL and so holds that lock only briefly.
//!
//! What this gives up: a doorbell queued when the process dies is never rung. The watch
//! hub's safety pass (payments-api) compares the versions of watched rows every few
//! seconds, so a watcher then sees the change a few seconds late instead of at once.
//! Every other writer (payments-api, the background workers, SQL run by hand) still
//! rings inside its commit.

use std::{sync::Arc, time::Duration};

use sqlx::{PgConnection, PgPool, Postgres, pool::PoolConnection};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use super::{DbTransaction, StoreError, db_transaction};
use crate::TRANSACTION_CHANNEL;

/// Committed database transactions whose doorbells may wait to be rung; beyond that
/// they are dropped (the watch hub's safety pass finds those changes).
const QUEUE: usize = 16_384;

/// Committed database transactions one NOTIFY statement rings for at most.
const PER_STATEMENT: usize = 512;

/// How long the ringer waits before it tries a new connection after a failed one.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The least time between the starts of two NOTIFY statements. Under load each then
/// carries the doorbells of every commit in that time (one NOTIFY transaction for
/// many), at most this much later; a doorbell after a quiet spell is rung at once.
const LINGER: Duration = Duration::from_millis(2);

/// Where the ringer counts what became of the doorbells (the service's metrics).
pub trait DoorbellMetrics: Send + Sync + 'static {
    /// `n` doorbells were rung (their NOTIFY committed).
    fn doorbells_rung(&self, n: usize);
    /// `n` doorbells were given up: the queue was full, or their NOTIFY failed twice.
    /// Their watchers see those changes at the watch hub's next safety pass.
    fn doorbells_lost(&self, n: usize);
}

/// Where a hot path's committed doorbells go. Cheap to clone; the ringer task ends,
/// after ringing what is queued, once every clone is dropped.
#[derive(Clone)]
pub struct Doorbell {
    queue: Option<Queue>,
}

#[derive(Clone)]
struct Queue {
    sender: mpsc::Sender<String>,
    metrics: Arc<dyn DoorbellMetrics>,
}

impl Doorbell {
    /// Doorbells ring inside the commit, from the trigger, as for every other writer.
    pub fn in_commit() -> Doorbell {
        Doorbell { queue: None }
    }

    /// Doorbells ring after the commit, from a task on `pool` (it keeps one of its
    /// connections), counted in `metrics`. The handle ends once every [`Doorbell`] is
    /// dropped and what they queued is rung.
    pub fn after_commit(
        pool: PgPool,
        metrics: Arc<dyn DoorbellMetrics>,
    ) -> (Doorbell, JoinHandle<()>) {
        let (sender, rx) = mpsc::channel(QUEUE);
        let ringer = tokio::spawn(ring_queued(pool, rx, metrics.clone()));
        let queue = Queue { sender, metrics };
        (Doorbell { queue: Some(queue) }, ringer)
    }

    /// Whether this path's commits collect their doorbells for [`Doorbell::ring`] (rung
    /// after the commit), rather than the trigger ringing them inside it.
    pub fn collects(&self) -> bool {
        self.queue.is_some()
    }

    /// BEGIN on `conn`, collecting the doorbells if this path rings after the commit.
    pub async fn begin<'c>(
        &self,
        conn: &'c mut PgConnection,
        unit: &'static str,
    ) -> Result<DbTransaction<'c>, StoreError> {
        match self.queue {
            Some(_) => begin_collecting_doorbells(conn, unit).await,
            None => db_transaction::begin_on(conn, unit).await,
        }
    }

    /// Queues the doorbells a database transaction collected (space-separated
    /// `id:version`s, as [`insert_event`](super::insert_event) returns them); call only
    /// once it has committed. Never waits: a full queue drops them, with a warning.
    pub fn ring(&self, collected: String) {
        let Some(queue) = &self.queue else {
            return;
        };
        if collected.is_empty() {
            return;
        }
        if let Err(e) = queue.sender.try_send(collected) {
            let lost = match &e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => {
                    payloads(c).count()
                }
            };
            queue.metrics.doorbells_lost(lost);
            tracing::warn!(
                error = %e, doorbells = lost,
                "the doorbell queue is full or closed; watchers see these changes at the watch hub's next safety pass"
            );
        }
    }
}

/// BEGIN on a connection the caller holds, with the `transactions` trigger collecting
/// this database transaction's doorbells (one simple query: no extra round trip).
pub async fn begin_collecting_doorbells<'c>(
    conn: &'c mut PgConnection,
    unit: &'static str,
) -> Result<DbTransaction<'c>, StoreError> {
    db_transaction::begin_with(
        conn,
        unit,
        "BEGIN; SET LOCAL payments.doorbell = 'after_commit'",
    )
    .await
}

/// The value of `payments.doorbell` (migration 0031) under which the `transactions`
/// trigger collects doorbells (`after_commit`) or rings them in the commit (anything
/// else), for a statement that sets it itself.
pub(super) fn doorbell_mode(collect: bool) -> &'static str {
    match collect {
        true => "after_commit",
        false => "in_commit",
    }
}

/// The `id:version` payloads of what a database transaction collected: the trigger
/// (migration 0031) separates them with a space.
fn payloads(collected: &str) -> impl Iterator<Item = &str> {
    collected.split(' ')
}

async fn ring_queued(
    pool: PgPool,
    mut queue: mpsc::Receiver<String>,
    metrics: Arc<dyn DoorbellMetrics>,
) {
    let mut conn: Option<PoolConnection<Postgres>> = None;
    let mut batch = Vec::with_capacity(PER_STATEMENT);
    let mut last_send: Option<Instant> = None;
    while queue.recv_many(&mut batch, PER_STATEMENT).await > 0 {
        if let Some(next) = last_send.map(|at| at + LINGER)
            && next > Instant::now()
        {
            tokio::time::sleep_until(next).await;
            while batch.len() < PER_STATEMENT
                && let Ok(more) = queue.try_recv()
            {
                batch.push(more);
            }
        }
        last_send = Some(Instant::now());
        let payloads: Vec<&str> = batch.iter().flat_map(|c| payloads(c)).collect();
        // A held connection may have died since the last send (a database restart):
        // one more try on a fresh one before these doorbells are given up.
        for attempt in 0..2 {
            match notify(&pool, &mut conn, &payloads).await {
                Ok(()) => {
                    metrics.doorbells_rung(payloads.len());
                    break;
                }
                Err(e) => {
                    conn = None;
                    if attempt == 1 {
                        metrics.doorbells_lost(payloads.len());
                        tracing::warn!(
                            error = %e, doorbells = payloads.len(),
                            "ringing doorbells failed; watchers see these changes at the watch hub's next safety pass"
                        );
                    } else {
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        }
        batch.clear();
    }
}

async fn notify(
    pool: &PgPool,
    conn: &mut Option<PoolConnection<Postgres>>,
    payloads: &[&str],
) -> Result<(), StoreError> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(pool.acquire().await?),
    };
    sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
        .bind(TRANSACTION_CHANNEL)
        .bind(payloads)
        .execute(&mut **conn)
        .await?;
    Ok(())
}
