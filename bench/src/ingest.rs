//! Webhook ingest: N concurrent senders post signed `payment_intent.succeeded` events,
//! each for its own pre-inserted CREATED payment, so every event is verified, stored and
//! applied (wallet credited) in one commit before its 200. Counted over a measured
//! window after a warm-up; the database is checked afterwards for one credit per 200.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    db::BenchDb,
    dbwork::{IDLE_FLUSH, Window, Work},
    events::{Change, Connection, Request, Sender},
    procfs::{CpuMeter, CpuUse},
    sampler::{WaitProfile, WaitSampler},
    stats::Latency,
};

const WARMUP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestRun {
    pub senders: usize,
    /// Events acknowledged inside the measured window.
    pub events: u64,
    pub events_per_s: f64,
    pub latency: Latency,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Every 200 of the run (warm-up included) and the credits the database holds for them.
    pub acknowledged: u64,
    pub credited: u64,
    /// The pre-inserted rows ran out before the window ended (raise the rate cap).
    pub exhausted: bool,
    /// Machine, webhook-ingestor (processes[0]) and PostgreSQL CPU over the window.
    pub cpu: CpuUse,
    pub waits: WaitProfile,
    /// The database's work over the whole run (warm-up included) divided by its 200s,
    /// when measured ([`Ingest::run_measured`]; the wait sampler is off then).
    #[serde(default)]
    pub work: Option<Work>,
}

pub struct Ingest<'a> {
    pub db: &'a BenchDb,
    pub sender: &'a Sender,
    pub ingestor_pid: u32,
    /// An upper bound of events/s, to size the pre-inserted rows.
    pub rate_cap: f64,
}

struct Shared {
    sender: Sender,
    next: AtomicU64,
    /// One signed request per pre-inserted row.
    requests: Vec<Request>,
    window_start: Instant,
    window_end: Instant,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    acknowledged: AtomicU64,
}

impl Ingest<'_> {
    pub async fn run(&self, senders: usize, secs: Duration) -> anyhow::Result<IngestRun> {
        self.run_inner(senders, secs, false).await
    }

    /// [`Ingest::run`] with the database's work counted from its statistics views over
    /// the run, and without the wait sampler (whose queries would be counted too).
    pub async fn run_measured(&self, senders: usize, secs: Duration) -> anyhow::Result<IngestRun> {
        self.run_inner(senders, secs, true).await
    }

    async fn run_inner(
        &self,
        senders: usize,
        secs: Duration,
        measure: bool,
    ) -> anyhow::Result<IngestRun> {
        let rows = ((WARMUP + secs).as_secs_f64() * self.rate_cap).ceil() as u64;
        let first = self.db.fresh_transactions(rows).await?;
        let requests = (first..first + rows)
            .map(|n| self.sender.request(Change::Succeeded, n))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut connections = Vec::with_capacity(senders);
        for _ in 0..senders {
            connections.push(self.sender.connect().await?);
        }
        let window = match measure {
            true => Some(Window::open(&self.db.pool).await?),
            false => None,
        };
        let start = Instant::now();
        let shared = Arc::new(Shared {
            sender: self.sender.clone(),
            next: AtomicU64::new(0),
            requests,
            window_start: start + WARMUP,
            window_end: start + WARMUP + secs,
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            acknowledged: AtomicU64::new(0),
        });
        let tasks: Vec<_> = connections
            .into_iter()
            .map(|connection| tokio::spawn(send_until_done(connection, shared.clone())))
            .collect();
        tokio::time::sleep_until(shared.window_start.into()).await;
        let sampler =
            (!measure).then(|| WaitSampler::start(self.db.pool.clone(), Duration::from_millis(20)));
        let cpu = CpuMeter::start(&[self.ingestor_pid]);
        tokio::time::sleep_until(shared.window_end.into()).await;
        let cpu = cpu.stop();
        let waits = match sampler {
            Some(sampler) => sampler.stop().await,
            None => WaitProfile::default(),
        };
        let mut samples = Vec::new();
        for task in tasks {
            samples.extend(task.await?);
        }
        let exhausted = shared.next.load(Ordering::Relaxed) >= rows;
        let acknowledged = shared.acknowledged.load(Ordering::Relaxed);
        let work = match window {
            Some(window) => Some(window.finish_after(acknowledged, IDLE_FLUSH).await?),
            None => None,
        };
        let credited = self.db.credited(first, rows).await?;
        let events = samples.len() as u64;
        let first_error = shared
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Ok(IngestRun {
            senders,
            events,
            events_per_s: events as f64 / secs.as_secs_f64(),
            latency: Latency::of(samples),
            errors: shared.errors.load(Ordering::Relaxed),
            first_error,
            acknowledged,
            credited,
            exhausted,
            cpu,
            waits,
            work,
        })
    }
}

/// One sender: one event at a time on its keep-alive connection until the window ends.
/// Returns the latencies of the events acknowledged inside the window.
async fn send_until_done(mut connection: Connection, shared: Arc<Shared>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    loop {
        if Instant::now() >= shared.window_end {
            break;
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed) as usize;
        let Some(request) = shared.requests.get(i) else {
            break;
        };
        match connection.post(request).await {
            Ok(ack) => {
                shared.acknowledged.fetch_add(1, Ordering::Relaxed);
                if ack.acked >= shared.window_start && ack.acked < shared.window_end {
                    latencies.push(ack.acked - ack.sent);
                }
            }
            Err(e) => {
                shared.error(&e);
                // The answer may have been cut off: carry on over a new connection.
                match shared.sender.connect().await {
                    Ok(fresh) => connection = fresh,
                    Err(e) => {
                        shared.error(&e);
                        break;
                    }
                }
            }
        }
    }
    latencies
}

impl Shared {
    fn error(&self, e: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert_with(|| format!("{e:#}"));
    }
}
