//! Runs the phases in order, repeating each figure and interleaving the runs that are
//! compared (ingest with pgbench, the hub with polling) so drift hits both alike, and
//! prints every run as it finishes.
//!
//! - this file: [`Results`], the order of the phases, and the watch, end-to-end and
//!   scaling phases.
//! - `anchor_phase`: the ingestor against the fixed minimal transaction (bench/anchor/),
//!   with and without NOTIFY, and the candidate designs.
//! - `ingest_phase`: the ingest phase (the ingestor against pgbench, batched pgbench, group
//!   commit) and its warm-up.

mod anchor_phase;
pub(crate) use anchor_phase::{MAX_REPEATS, STOLEN_LIMIT};
mod ingest_phase;

use std::{path::Path, sync::Arc};

use anyhow::Context;

use payments_client::MintedToken;
use serde::{Deserialize, Serialize};

use crate::{
    anchor::{self, AnchorScript, ScriptRun},
    config::{Phase, Settings},
    db::BenchDb,
    dbwork::{self, Window, Work},
    designs::{self, Design},
    e2e::{self, E2eRun},
    events::Sender,
    ingest::IngestRun,
    pgbench::PgbenchRun,
    poll::{PollRun, Polling},
    services::{self, Stack, WEBHOOK_SECRET},
    watch::{Fanout, WatchRun},
};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    /// The ingestor side by side with the fixed bar, per sender count.
    pub anchor: Vec<AnchorLevel>,
    /// The services' database with no load: its background work over a few seconds.
    pub anchor_idle: Option<Work>,
    pub designs: Vec<DesignResult>,
    pub ingest: Vec<IngestLevel>,
    pub batching: Vec<BatchLevel>,
    /// The ingestor with group commit on, at the group-commit concurrency levels.
    pub grouped: Vec<GroupedLevel>,
    pub hub: Vec<WatchRun>,
    pub poll: Vec<PollRun>,
    pub e2e: Vec<E2eRun>,
    /// One user alone: the uncontended flow.
    pub e2e_single: Option<E2eRun>,
    /// One end-to-end run with stripe-sim answering late.
    pub e2e_slow_stripe: Option<E2eRun>,
    pub scaling: Vec<WatchRun>,
}

/// One concurrency level: the ingestor and pgbench, run after one another each time.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IngestLevel {
    pub senders: usize,
    pub ingest: Vec<IngestRun>,
    pub pgbench: Vec<PgbenchRun>,
}

/// One sender count of the side-by-side run: the ingestor one commit per event, the
/// ingestor with group commit, and the anchor's two scripts, each once per run.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AnchorLevel {
    pub senders: usize,
    pub ingest: Vec<IngestRun>,
    pub grouped: Vec<IngestRun>,
    pub notify: Vec<ScriptRun>,
    pub nonotify: Vec<ScriptRun>,
    /// Windows measured again because the hypervisor stole too much of their CPU.
    #[serde(default)]
    pub repeated: usize,
}

/// One candidate design at one client count, with the anchor (NOTIFY) run beside it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DesignResult {
    pub design: Design,
    pub clients: usize,
    pub runs: Vec<ScriptRun>,
    pub anchor: Vec<ScriptRun>,
    /// Transactions pgbench committed and ledger credits the database holds for them.
    pub processed: u64,
    pub credited: u64,
}

/// The four contenders of a run, in the order they take turns.
#[derive(Debug, Clone, Copy)]
enum Contender {
    Ingest,
    Grouped,
    Notify,
    NoNotify,
}

/// pgbench with K events per transaction, at the group-commit concurrency.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BatchLevel {
    pub events_per_tx: usize,
    pub runs: Vec<PgbenchRun>,
}

/// The grouped ingestor at one concurrency level.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GroupedLevel {
    pub senders: usize,
    pub runs: Vec<IngestRun>,
}

pub struct Suite<'a> {
    pub settings: &'a Settings,
    pub db: &'a BenchDb,
    pub stack: &'a mut Stack,
    pub log_dir: &'a Path,
    /// The workspace root (the anchor's scripts are under `bench/anchor/`).
    pub root: &'a Path,
}

impl Suite<'_> {
    pub async fn run(&mut self, results: &mut Results) -> anyhow::Result<()> {
        let s = self.settings;
        let connections = s.senders.iter().copied().max().unwrap_or(1).max(256);
        let sender = Sender::new(
            self.stack.webhook_url.clone(),
            WEBHOOK_SECRET.to_owned(),
            connections,
        )?;
        if s.runs_phase(Phase::Anchor) || s.runs_phase(Phase::Designs) {
            let adb = self.db.companion("anchor").await?;
            let outcome = self.against_anchor(&adb, &sender, results).await;
            if !s.keep_db
                && let Err(e) = adb.drop_database().await
            {
                eprintln!("warning: {e:#}");
            }
            outcome?;
        }
        if s.runs_phase(Phase::Ingest) {
            self.ingest(&sender, results).await?;
        }
        if s.runs_phase(Phase::Watch) {
            self.watch(&sender, results).await?;
        }
        if s.runs_phase(Phase::E2e) {
            self.e2e(results).await?;
        }
        if s.runs_phase(Phase::Scaling) {
            self.scaling(&sender, results).await?;
        }
        Ok(())
    }

    async fn watch(&mut self, sender: &Sender, results: &mut Results) -> anyhow::Result<()> {
        let s = self.settings;
        println!(
            "\n== watch fan-out: {} streams, {} changes/s, vs polling every {} ms ==",
            s.watchers,
            s.change_rate,
            s.poll_interval.as_millis()
        );
        let token = Arc::new(services::signing_key().service("bench-watcher"));
        for run in 1..=s.runs {
            let hub = self
                .fanout(sender, &token)
                .run(s.watchers, s.change_rate, s.watch_secs)
                .await?;
            print_hub(run, &hub);
            results.hub.push(hub);
            let poll = Polling {
                db: self.db,
                sender,
                ingestor_pid: self.stack.ingestor_pid(),
                pool_size: s.poll_pool,
                interval: s.poll_interval,
            }
            .run(s.watchers, s.change_rate, s.watch_secs)
            .await?;
            println!(
                "run {run} polling: p50 {:>7.1} ms p99 {:>7.1} ms (missing {}) | {:>6.0} queries/s of {:.0} designed | changes {:.0}/s | bench {:.2} cores, waits: {}",
                poll.delivery.latency.p50_ms,
                poll.delivery.latency.p99_ms,
                poll.delivery.missing,
                poll.queries_per_s,
                poll.designed_queries_per_s,
                poll.changes.achieved_rate,
                poll.cpu.processes.first().copied().unwrap_or_default(),
                poll.waits.summary(3),
            );
            results.poll.push(poll);
        }
        Ok(())
    }

    fn fanout<'b>(&'b mut self, sender: &'b Sender, token: &'b Arc<MintedToken>) -> Fanout<'b> {
        Fanout {
            db: self.db,
            stack: self.stack,
            sender,
            channels: self.settings.channels,
            token,
            log_dir: self.log_dir,
        }
    }

    async fn e2e(&mut self, results: &mut Results) -> anyhow::Result<()> {
        let s = self.settings;
        println!(
            "\n== end to end: {} users, CreatePayment → SUCCEEDED on the watch stream ==",
            s.e2e_users
        );
        let pids = [
            self.stack.api_pid(),
            self.stack.ingestor_pid(),
            self.stack.sim_pid(),
        ];
        let single = e2e::run(&self.stack.api_url, 1, s.e2e_secs / 2, 100, &pids).await?;
        println!(
            "one user alone: p50 {:.1} ms (CreatePayment {:.1} ms, first watch message → SUCCEEDED {:.1} ms)",
            single.latency.p50_ms,
            single.create_latency.p50_ms,
            single.first_to_final_latency.p50_ms
        );
        results.e2e_single = Some(single);
        for run in 1..=s.runs {
            let pids = [
                self.stack.api_pid(),
                self.stack.ingestor_pid(),
                self.stack.sim_pid(),
            ];
            let e = e2e::run(&self.stack.api_url, s.e2e_users, s.e2e_secs, run, &pids).await?;
            self.stack.check_alive()?;
            println!(
                "run {run}: {:>6.1} flows/s, p50 {:>6.1} ms p99 {:>6.1} ms (CreatePayment p50 {:.1} ms, watch → first message p50 {:.1} ms, {} of {} already settled) errors {}",
                e.flows_per_s,
                e.latency.p50_ms,
                e.latency.p99_ms,
                e.create_latency.p50_ms,
                e.first_message_latency.p50_ms,
                e.settled_before_watch,
                e.flows,
                e.errors
            );
            println!(
                "    machine {:.0}% busy; payments-api {:.2}, ingestor {:.2}, stripe-sim {:.2}, PostgreSQL {:.2} cores",
                e.cpu.machine_busy * 100.0,
                e.cpu.processes.first().copied().unwrap_or_default(),
                e.cpu.processes.get(1).copied().unwrap_or_default(),
                e.cpu.processes.get(2).copied().unwrap_or_default(),
                e.cpu.postgres,
            );
            if let Some(err) = &e.first_error {
                println!("    first error: {err}");
            }
            results.e2e.push(e);
        }
        if s.stripe_latency_ms > 0 {
            self.stack.set_stripe_latency(s.stripe_latency_ms).await?;
            let pids = [
                self.stack.api_pid(),
                self.stack.ingestor_pid(),
                self.stack.sim_pid(),
            ];
            let slow = e2e::run(&self.stack.api_url, s.e2e_users, s.e2e_secs, 0, &pids).await;
            self.stack.set_stripe_latency(0).await?;
            let slow = slow?;
            println!(
                "stripe-sim answering {} ms late: {:>6.1} flows/s, p50 {:>6.1} ms p99 {:>6.1} ms (CreatePayment p50 {:.1} ms) errors {}",
                s.stripe_latency_ms,
                slow.flows_per_s,
                slow.latency.p50_ms,
                slow.latency.p99_ms,
                slow.create_latency.p50_ms,
                slow.errors
            );
            results.e2e_slow_stripe = Some(slow);
        }
        Ok(())
    }

    async fn scaling(&mut self, sender: &Sender, results: &mut Results) -> anyhow::Result<()> {
        println!("\n== watch scaling: streams doubling at a fixed rate, then the rate doubling ==");
        let token = Arc::new(services::signing_key().service("bench-watcher"));
        let secs = self.settings.scaling_secs;
        for &(watchers, rate) in &self.settings.scaling {
            let run = self
                .fanout(sender, &token)
                .run(watchers, rate, secs)
                .await?;
            print_hub(0, &run);
            results.scaling.push(run);
        }
        Ok(())
    }
}

fn print_hub(run: usize, hub: &WatchRun) {
    let label = match run {
        0 => format!("{:>5} @ {:>4}/s", hub.watchers, hub.rate),
        n => format!("run {n} hub"),
    };
    println!(
        "{label}: p50 {:>6.1} ms p99 {:>6.1} ms (outside bursts {:.1} ms, bursts every {:.1} s) (missing {}) | api {:>5.0} queries/s | RSS {:.0} → {:.0} MB (peak {:.0}) | changes {:.0}/s (ingest p99 {:.1} ms) | api {:.2} cores, opened in {:.1} s",
        hub.delivery.latency.p50_ms,
        hub.delivery.latency.p99_ms,
        hub.stalls.p99_outside_ms,
        hub.stalls.period_s.unwrap_or(f64::NAN),
        hub.delivery.missing,
        hub.queries_per_s,
        hub.rss_idle_kib as f64 / 1024.0,
        hub.rss_streams_kib as f64 / 1024.0,
        hub.rss_peak_kib as f64 / 1024.0,
        hub.changes.achieved_rate,
        hub.changes.ingest_latency.p99_ms,
        hub.cpu.processes.first().copied().unwrap_or_default(),
        hub.open_secs,
    );
}
