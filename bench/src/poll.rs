//! The design WatchTransaction replaces, run in this process: every waiter reads its
//! transaction row every interval until it settles (a server-side long-poll), through one
//! sqlx pool, with the same query payments-api uses for a snapshot. Same change schedule
//! and latency measure as the fan-out: 200 → the poll that returns the new version.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use payments_core::{TransactionId, store};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::{
    changes::{self, ChangeSummary, Delivery},
    db::{BenchDb, tx_id},
    events::Sender,
    procfs::{CpuMeter, CpuUse},
    sampler::{WaitProfile, WaitSampler},
};

const TAIL: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollRun {
    pub watchers: usize,
    pub rate: f64,
    pub secs: f64,
    pub pool: u32,
    pub interval_ms: f64,
    pub changes: ChangeSummary,
    pub delivery: Delivery,
    /// The rate the design asks for: watchers / interval.
    pub designed_queries_per_s: f64,
    pub queries: u64,
    pub queries_per_s: f64,
    pub query_errors: u64,
    pub db_commits_per_s: f64,
    /// processes: [this benchmark (the pollers), webhook-ingestor].
    pub cpu: CpuUse,
    pub waits: WaitProfile,
}

pub struct Polling<'a> {
    pub db: &'a BenchDb,
    pub sender: &'a Sender,
    pub ingestor_pid: u32,
    pub pool_size: u32,
    pub interval: Duration,
}

struct Counters {
    queries: AtomicU64,
    errors: AtomicU64,
    first_round: AtomicUsize,
}

impl Polling<'_> {
    pub async fn run(&self, watchers: usize, rate: f64, secs: Duration) -> anyhow::Result<PollRun> {
        let first = self.db.fresh_transactions(watchers as u64).await?;
        let pool = PgPoolOptions::new()
            .max_connections(self.pool_size)
            .min_connections(self.pool_size)
            .acquire_timeout(Duration::from_secs(600))
            .connect(&self.db.url.url())
            .await
            .context("connecting the pollers' pool")?;
        let stop = CancellationToken::new();
        let counters = Arc::new(Counters {
            queries: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_round: AtomicUsize::new(0),
        });
        let tasks: Vec<_> = (0..watchers)
            .map(|i| {
                let poller = Poller {
                    pool: pool.clone(),
                    id: TransactionId::from(tx_id(first + i as u64)),
                    // Spread the waiters evenly over one interval, as independent clients are.
                    offset: self.interval.mul_f64(i as f64 / watchers as f64),
                    interval: self.interval,
                    counters: counters.clone(),
                    stop: stop.clone(),
                };
                tokio::spawn(poller.run())
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(180);
        while counters.first_round.load(Ordering::Relaxed) < watchers {
            if Instant::now() > deadline {
                bail!("the pollers did not finish a first round in 180 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let q0 = counters.queries.load(Ordering::Relaxed);
        let c0 = self.db.commits().await?;
        let started = Instant::now();
        let cpu = CpuMeter::start(&[std::process::id(), self.ingestor_pid]);
        let sampler = WaitSampler::start(self.db.pool.clone(), Duration::from_millis(20));
        let (changes, acks) = changes::drive(self.sender, first, watchers, rate, secs, 256).await;
        // A poll sees a change within an interval plus the queueing for a connection.
        tokio::time::sleep(self.interval + TAIL).await;
        let waits = sampler.stop().await;
        let cpu = cpu.stop();
        let elapsed = started.elapsed().as_secs_f64();
        let queries = counters.queries.load(Ordering::Relaxed) - q0;
        let commits = self.db.commits().await? - c0;
        stop.cancel();
        let mut seen = Vec::with_capacity(watchers);
        for task in tasks {
            seen.push(task.await.unwrap_or_default());
        }
        pool.close().await;
        Ok(PollRun {
            watchers,
            rate,
            secs: secs.as_secs_f64(),
            pool: self.pool_size,
            interval_ms: self.interval.as_secs_f64() * 1_000.0,
            delivery: changes::delivery(&acks, &seen),
            changes,
            designed_queries_per_s: watchers as f64 / self.interval.as_secs_f64(),
            queries,
            queries_per_s: queries as f64 / elapsed,
            query_errors: counters.errors.load(Ordering::Relaxed),
            db_commits_per_s: commits as f64 / elapsed,
            cpu,
            waits,
        })
    }
}

struct Poller {
    pool: PgPool,
    id: TransactionId,
    offset: Duration,
    interval: Duration,
    counters: Arc<Counters>,
    stop: CancellationToken,
}

impl Poller {
    /// Reads the row every interval until it settles or the run stops; records each new
    /// version with the moment its read returned.
    async fn run(self) -> Vec<(i64, Instant)> {
        let mut seen: Vec<(i64, Instant)> = Vec::new();
        let mut tick =
            tokio::time::interval_at((Instant::now() + self.offset).into(), self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first_round = true;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let read = async {
                let mut conn = self.pool.acquire().await?;
                store::get_transaction(&mut conn, self.id)
                    .await
                    .map_err(anyhow::Error::from)
            };
            let read = tokio::select! {
                () = self.stop.cancelled() => break,
                r = read => r,
            };
            self.counters.queries.fetch_add(1, Ordering::Relaxed);
            match read {
                Ok(Some(tx)) => {
                    if seen.last().is_none_or(|(v, _)| *v < tx.version) {
                        seen.push((tx.version, Instant::now()));
                    }
                    if tx.status.is_settled() {
                        break;
                    }
                }
                Ok(None) | Err(_) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            if first_round {
                first_round = false;
                self.counters.first_round.fetch_add(1, Ordering::Relaxed);
            }
        }
        seen
    }
}
