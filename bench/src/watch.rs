//! WatchTransaction fan-out: W concurrent streams on one (freshly started) payments-api,
//! spread over a few HTTP/2 connections, while the watched transactions change at R per
//! second through the ingestor. Measures 200 → message latency, payments-api's resident
//! memory and the statements it sends to PostgreSQL (counted by the proxy).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use payments_client::{Connection, Endpoint, MintedToken, PaymentsClient, RetryPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    changes::{self, ChangeSummary, Delivery},
    db::{BenchDb, tx_id},
    events::Sender,
    procfs::{self, CpuMeter, CpuUse},
    sampler::{WaitProfile, WaitSampler},
    services::Stack,
};

/// How long to keep waiting for the last messages after the schedule ends.
const TAIL: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchRun {
    pub watchers: usize,
    pub rate: f64,
    pub secs: f64,
    pub open_secs: f64,
    pub open_failures: u64,
    pub changes: ChangeSummary,
    pub delivery: Delivery,
    /// Periodic bursts of slow deliveries, if any.
    pub stalls: changes::Stalls,
    pub rss_idle_kib: u64,
    pub rss_streams_kib: u64,
    pub rss_peak_kib: u64,
    /// Streams payments-api reported open (`payments_watch_streams_open`) once opened.
    pub streams_open_server: Option<f64>,
    /// Statements payments-api sent during the schedule and the tail.
    pub queries: u64,
    /// Of which the hub's batched re-reads (`payments_watch_reads_total`), if exported.
    pub hub_reads: Option<f64>,
    pub queries_per_s: f64,
    /// Commits of every session on the benchmark database (ingestor included), per second.
    pub db_commits_per_s: f64,
    /// processes: [payments-api, webhook-ingestor, this benchmark].
    pub cpu: CpuUse,
    pub waits: WaitProfile,
}

pub struct Fanout<'a> {
    pub db: &'a BenchDb,
    pub stack: &'a mut Stack,
    pub sender: &'a Sender,
    pub channels: usize,
    /// The watchers' service token.
    pub token: &'a Arc<MintedToken>,
    /// Where the per-change time series goes.
    pub log_dir: &'a std::path::Path,
}

/// Watchers open at most this many streams at once (each open reads a snapshot).
const OPENING: usize = 256;

impl Fanout<'_> {
    pub async fn run(
        &mut self,
        watchers: usize,
        rate: f64,
        secs: Duration,
    ) -> anyhow::Result<WatchRun> {
        self.stack.restart_api().await?;
        let api_pid = self.stack.api_pid();
        let first = self.db.fresh_transactions(watchers as u64).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_idle_kib = procfs::vm_rss_kib(api_pid).unwrap_or_default();

        let clients = connect(&self.stack.api_url, self.channels, self.token).await?;
        let stop = CancellationToken::new();
        let watch = Watchers::open(&clients, first, watchers, &stop).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_streams_kib = procfs::vm_rss_kib(api_pid).unwrap_or_default();
        let streams_open_server = self.stack.api_metric("payments_watch_streams_open").await;
        let reads0 = self.stack.api_metric("payments_watch_reads_total").await;

        let rss_peak = RssPeak::start(api_pid);
        let q0 = self.stack.proxy.statements();
        let c0 = self.db.commits().await?;
        let started = Instant::now();
        let cpu = CpuMeter::start(&[api_pid, self.stack.ingestor_pid(), std::process::id()]);
        let sampler = WaitSampler::start(self.db.pool.clone(), Duration::from_millis(20));
        let (changes, acks) = changes::drive(self.sender, first, watchers, rate, secs, 256).await;
        let tail_end = Instant::now() + TAIL;
        while watch.messages() < acks.len() as u64 && Instant::now() < tail_end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let waits = sampler.stop().await;
        let cpu = cpu.stop();
        let elapsed = started.elapsed().as_secs_f64();
        let queries = self.stack.proxy.statements() - q0;
        let reads1 = self.stack.api_metric("payments_watch_reads_total").await;
        let commits = self.db.commits().await? - c0;
        let rss_peak_kib = rss_peak.stop().await.max(rss_streams_kib);
        stop.cancel();
        let seen = watch.join().await;
        self.stack.check_alive()?;
        let delivery = changes::delivery(&acks, &seen.versions);
        let csv = self.log_dir.join(format!("watch-{watchers}-at-{rate}.csv"));
        std::fs::write(&csv, changes::timeline_csv(&delivery))
            .with_context(|| format!("writing {csv:?}"))?;
        let stalls = changes::stalls(&delivery);
        Ok(WatchRun {
            stalls,
            watchers,
            rate,
            secs: secs.as_secs_f64(),
            open_secs: seen.open_secs,
            open_failures: seen.failures,
            delivery,
            changes,
            rss_idle_kib,
            rss_streams_kib,
            rss_peak_kib,
            streams_open_server,
            queries,
            hub_reads: reads0.zip(reads1).map(|(a, b)| b - a),
            queries_per_s: queries as f64 / elapsed,
            db_commits_per_s: commits as f64 / elapsed,
            cpu,
            waits,
        })
    }
}

/// One HTTP/2 connection per client, all calling with `token`; nothing is retried, so
/// a failure counts as one.
async fn connect(
    url: &str,
    n: usize,
    token: &Arc<MintedToken>,
) -> anyhow::Result<Vec<PaymentsClient>> {
    let endpoint = Endpoint::new(url);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let connection = Connection::connect(&endpoint, token.clone())
            .await
            .with_context(|| format!("connecting to payments-api at {url}"))?;
        clients.push(connection.with_retry(RetryPolicy::never()).payments());
    }
    Ok(clients)
}

/// What the watchers saw, in watcher order.
struct Seen {
    versions: Vec<Vec<(i64, Instant)>>,
    failures: u64,
    open_secs: f64,
}

/// `(version, arrival)` of every message one watcher received.
type Versions = Vec<(i64, Instant)>;

struct Watchers {
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Versions>>>,
    messages: Arc<AtomicU64>,
    open_secs: f64,
}

impl Watchers {
    /// Opens every stream and waits until each has its snapshot.
    async fn open(
        clients: &[PaymentsClient],
        first: u64,
        watchers: usize,
        stop: &CancellationToken,
    ) -> anyhow::Result<Watchers> {
        let started = Instant::now();
        let opening = Arc::new(Semaphore::new(OPENING));
        let opened = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let messages = Arc::new(AtomicU64::new(0));
        let tasks = (0..watchers)
            .map(|i| {
                let stream = Stream {
                    client: clients[i % clients.len()].clone(),
                    id: tx_id(first + i as u64).to_string(),
                    opening: opening.clone(),
                    opened: opened.clone(),
                    failed: failed.clone(),
                    messages: messages.clone(),
                    stop: stop.clone(),
                };
                tokio::spawn(stream.run())
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(180);
        while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < watchers {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {watchers} streams opened in 180 s",
                    opened.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let failed = failed.load(Ordering::Relaxed);
        if failed > watchers / 100 {
            bail!("{failed} of {watchers} WatchTransaction streams failed to open");
        }
        Ok(Watchers {
            tasks,
            messages,
            open_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Changes seen so far (snapshots excluded).
    fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    async fn join(self) -> Seen {
        let mut seen = Seen {
            versions: Vec::with_capacity(self.tasks.len()),
            failures: 0,
            open_secs: self.open_secs,
        };
        for task in self.tasks {
            match task.await {
                Ok(Ok(versions)) => seen.versions.push(versions),
                _ => {
                    seen.failures += 1;
                    seen.versions.push(Vec::new());
                }
            }
        }
        seen
    }
}

struct Stream {
    client: PaymentsClient,
    id: String,
    opening: Arc<Semaphore>,
    opened: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    messages: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Stream {
    /// Records `(version, arrival)` of every message until stopped.
    async fn run(self) -> anyhow::Result<Vec<(i64, Instant)>> {
        let mut seen = Vec::new();
        let permit = self.opening.clone().acquire_owned().await?;
        let opened = async {
            let mut stream = self.client.open_watch(&self.id, None).await?;
            let snapshot = stream
                .message()
                .await?
                .context("the stream ended at once")?;
            anyhow::Ok((stream, snapshot))
        };
        let (mut stream, snapshot) = match opened.await {
            Ok(ok) => ok,
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        drop(permit);
        self.opened.fetch_add(1, Ordering::Relaxed);
        let version = |u: &payments_client::pb::TransactionUpdate| {
            u.transaction.as_ref().map_or(0, |t| t.version)
        };
        seen.push((version(&snapshot), Instant::now()));
        loop {
            let next = tokio::select! {
                () = self.stop.cancelled() => break,
                next = stream.message() => next,
            };
            match next {
                Ok(Some(update)) => {
                    seen.push((version(&update), Instant::now()));
                    self.messages.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(seen)
    }
}

/// Samples a process's resident memory every 250 ms and keeps the largest.
struct RssPeak {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                peak = peak.max(procfs::vm_rss_kib(pid).unwrap_or_default());
                tokio::select! {
                    () = token.cancelled() => return peak,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        RssPeak { stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}
