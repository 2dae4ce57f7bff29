//! Runs the phases in order, repeating each figure and interleaving the runs that are
//! compared (ingest with pgbench, the hub with polling) so drift hits both alike, and
//! prints every run as it finishes.

use std::{path::Path, sync::Arc, time::Duration};

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
    ingest::{Ingest, IngestRun},
    pgbench::{self, PgbenchRun},
    poll::{PollRun, Polling},
    services::{self, Stack, WEBHOOK_SECRET},
    watch::{Fanout, WatchRun},
};

/// Row budget when nothing has been measured yet: comfortably above any rate the
/// ingest path reaches on a small machine.
const RATE_CAP: f64 = 4_000.0;
/// Concurrency of the unmeasured pass before the first ingest run.
const WARM_UP_SENDERS: usize = 4;

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

    /// The anchor phase and the designs phase, both against the anchor's database `adb`.
    async fn against_anchor(
        &mut self,
        adb: &BenchDb,
        sender: &Sender,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        println!(
            "\n== the fixed bar: loading bench/anchor/schema.sql into {} ==",
            adb.name
        );
        anchor::load(adb).await?;
        dbwork::enable_walinspect(&self.db.pool).await;
        if self.settings.runs_phase(Phase::Anchor) {
            self.anchor(adb, sender, results).await?;
        }
        if self.settings.runs_phase(Phase::Designs) {
            let ddb = self.db.companion("designs").await?;
            let outcome = self.designs(adb, &ddb, results).await;
            if !self.settings.keep_db
                && let Err(e) = ddb.drop_database().await
            {
                eprintln!("warning: {e:#}");
            }
            outcome?;
        }
        Ok(())
    }

    async fn anchor(
        &mut self,
        adb: &BenchDb,
        sender: &Sender,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let s = self.settings;
        let root = self.root;
        println!(
            "\n== ingest against the minimal transaction (bench/anchor/): one commit per event, group commit, anchor with and without NOTIFY =="
        );
        println!(
            "   pg_stat_wal is cluster-wide: WAL is read back per database with pg_walinspect where it can be; nothing else should run on the server meanwhile"
        );
        let connections = s.anchor_senders.iter().copied().max().unwrap_or(1).max(256);
        let grouped_sender = Sender::new(
            self.stack.grouped_webhook_url.clone(),
            WEBHOOK_SECRET.to_owned(),
            connections,
        )?;
        // The idle stack's own background (retry worker, outbox, pools) in its database.
        let idle = Window::open(&self.db.pool).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = idle.finish_after(0, dbwork::IDLE_FLUSH).await?;
        println!(
            "idle stack, per second: {:.1} commits, {:.0} buffer accesses, {:.0} WAL records of its database",
            idle.total.xact_commit / idle.secs,
            (idle.total.blks_hit + idle.total.blks_read) / idle.secs,
            idle.wal_of_db.map_or(f64::NAN, |w| w.records / idle.secs),
        );
        results.anchor_idle = Some(idle);
        // One unmeasured pass of each, as for the ingest phase.
        let warm = WARM_UP_SENDERS;
        let secs = s.ingest_secs;
        self.ingest_once(sender, false, warm, RATE_CAP).await?;
        self.ingest_once(&grouped_sender, true, warm, RATE_CAP)
            .await?;
        adb.settle().await?;
        anchor::run_script(adb, &AnchorScript::Notify.path(root), warm, secs, &[]).await?;
        println!("warm-up done (not counted)");
        results.anchor = s
            .anchor_senders
            .iter()
            .map(|&senders| AnchorLevel {
                senders,
                ..AnchorLevel::default()
            })
            .collect();
        let order = [
            Contender::Ingest,
            Contender::Notify,
            Contender::Grouped,
            Contender::NoNotify,
        ];
        for run in 1..=s.runs {
            for level in &mut results.anchor {
                // Each run starts the turn at another contender, so drift favours none.
                for k in 0..order.len() {
                    let contender = order[(k + run - 1) % order.len()];
                    let n = level.senders;
                    match contender {
                        Contender::Ingest | Contender::Grouped => {
                            let grouped = matches!(contender, Contender::Grouped);
                            let runs = if grouped {
                                &level.grouped
                            } else {
                                &level.ingest
                            };
                            let cap = runs
                                .last()
                                .map_or(RATE_CAP, |r| r.events_per_s * 2.0 + 500.0);
                            let via = if grouped { &grouped_sender } else { sender };
                            let r = self.ingest_once(via, grouped, n, cap).await?;
                            print_work(
                                run,
                                n,
                                if grouped { "group commit" } else { "ingestor" },
                                r.events_per_s,
                                &format!("p50 {:.1} ms, errors {}", r.latency.p50_ms, r.errors),
                                r.work.as_ref(),
                                r.cpu.postgres,
                            );
                            if r.credited != r.acknowledged {
                                println!(
                                    "    credited {} of {} answered",
                                    r.credited, r.acknowledged
                                );
                            }
                            if grouped {
                                level.grouped.push(r);
                            } else {
                                level.ingest.push(r);
                            }
                        }
                        Contender::Notify | Contender::NoNotify => {
                            let script = match contender {
                                Contender::Notify => AnchorScript::Notify,
                                _ => AnchorScript::NoNotify,
                            };
                            adb.settle().await?;
                            let r =
                                anchor::run_script(adb, &script.path(root), n, secs, &[]).await?;
                            let name = match script {
                                AnchorScript::Notify => "anchor NOTIFY",
                                AnchorScript::NoNotify => "anchor no NOTIFY",
                            };
                            print_work(
                                run,
                                n,
                                name,
                                r.tps,
                                &format!("{:.1} ms avg, failed {}", r.latency_avg_ms, r.failed),
                                Some(&r.work),
                                r.cpu.postgres,
                            );
                            match script {
                                AnchorScript::Notify => level.notify.push(r),
                                AnchorScript::NoNotify => level.nonotify.push(r),
                            }
                        }
                    }
                }
                let last = |v: &[IngestRun]| v.last().map_or(f64::NAN, |r| r.events_per_s);
                let last_pg = |v: &[ScriptRun]| v.last().map_or(f64::NAN, |r| r.tps);
                println!(
                    "run {run} senders {:>3}: ingestor ÷ anchor NOTIFY {:.2}, group commit ÷ anchor no NOTIFY {:.2}",
                    level.senders,
                    last(&level.ingest) / last_pg(&level.notify),
                    last(&level.grouped) / last_pg(&level.nonotify),
                );
            }
        }
        Ok(())
    }

    /// One measured ingest run through the single or the grouped ingestor.
    async fn ingest_once(
        &mut self,
        sender: &Sender,
        grouped: bool,
        senders: usize,
        rate_cap: f64,
    ) -> anyhow::Result<IngestRun> {
        let pid = match grouped {
            true => self.stack.grouped_pid(),
            false => self.stack.ingestor_pid(),
        };
        let r = Ingest {
            db: self.db,
            sender,
            ingestor_pid: pid,
            rate_cap,
        }
        .run_measured(senders, self.settings.ingest_secs)
        .await?;
        self.stack.check_alive()?;
        Ok(r)
    }

    async fn designs(
        &mut self,
        adb: &BenchDb,
        ddb: &BenchDb,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let s = self.settings;
        let root = self.root;
        println!(
            "\n== candidate designs of the per-event transaction (pgbench, real schema in {}) beside the anchor ==",
            ddb.name
        );
        payments_core::store::migrate_url(&ddb.url.url())
            .await
            .context("migrating the designs' database")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(designs::function_sql()))
            .execute(&ddb.pool)
            .await
            .context("creating the candidate function")?;
        dbwork::enable_walinspect(&ddb.pool).await;
        let anchor_path = AnchorScript::Notify.path(root);
        for design in designs::ALL {
            if let Some(sql) = design.alter() {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&ddb.pool)
                    .await
                    .with_context(|| format!("altering the schema for {}", design.slug()))?;
            }
            let path = self.log_dir.join(format!("design-{}.sql", design.slug()));
            std::fs::write(&path, design.script()?).with_context(|| format!("writing {path:?}"))?;
            for &clients in &s.design_clients {
                let mut result = DesignResult {
                    design,
                    clients,
                    runs: Vec::new(),
                    anchor: Vec::new(),
                    processed: 0,
                    credited: 0,
                };
                for run in 1..=s.runs {
                    let cap = result.runs.last().map_or(RATE_CAP, |r| r.tps * 2.0 + 500.0);
                    let secs_whole = s.ingest_secs.as_secs_f64().ceil().max(1.0);
                    let total = (secs_whole * cap).ceil() as u64;
                    let stride = total.div_ceil(clients as u64).max(1);
                    let rows = stride * clients as u64;
                    let first = ddb.fresh_transactions(rows).await?;
                    let defines = [
                        "i=0".to_owned(),
                        format!("base={}", first - 1),
                        format!("stride={stride}"),
                    ];
                    let design_run = async {
                        anchor::run_script(ddb, &path, clients, s.ingest_secs, &defines).await
                    };
                    let anchor_run = async {
                        adb.settle().await?;
                        anchor::run_script(adb, &anchor_path, clients, s.ingest_secs, &[]).await
                    };
                    let (d, a) = if run % 2 == 1 {
                        let d = design_run.await?;
                        (d, anchor_run.await?)
                    } else {
                        let a = anchor_run.await?;
                        (design_run.await?, a)
                    };
                    result.processed += d.processed;
                    result.credited += ddb.credited(first, rows).await?;
                    print_work(
                        run,
                        clients,
                        design.slug(),
                        d.tps,
                        &format!("÷ anchor NOTIFY {:.2}", d.tps / a.tps),
                        Some(&d.work),
                        d.cpu.postgres,
                    );
                    print_work(
                        run,
                        clients,
                        "anchor NOTIFY",
                        a.tps,
                        "",
                        Some(&a.work),
                        a.cpu.postgres,
                    );
                    result.runs.push(d);
                    result.anchor.push(a);
                }
                if result.credited != result.processed {
                    println!(
                        "    {}: {} transactions, {} credits",
                        design.slug(),
                        result.processed,
                        result.credited
                    );
                }
                results.designs.push(result);
            }
        }
        Ok(())
    }

    async fn ingest(&mut self, sender: &Sender, results: &mut Results) -> anyhow::Result<()> {
        let s = self.settings;
        println!(
            "\n== ingest: signed payment_intent.succeeded, verified + stored + applied per 200 =="
        );
        results.ingest = s
            .senders
            .iter()
            .map(|&senders| IngestLevel {
                senders,
                ..IngestLevel::default()
            })
            .collect();
        results.batching = std::iter::once(1)
            .chain(s.batch_sizes.iter().copied())
            .map(|k| BatchLevel {
                events_per_tx: k,
                runs: Vec::new(),
            })
            .collect();
        let mut grouped_levels = vec![s.batch_clients];
        grouped_levels.extend(
            s.senders
                .iter()
                .copied()
                .filter(|&n| n > s.batch_clients)
                .max(),
        );
        results.grouped = grouped_levels
            .into_iter()
            .map(|senders| GroupedLevel {
                senders,
                runs: Vec::new(),
            })
            .collect();
        let connections = s.senders.iter().copied().max().unwrap_or(1).max(256);
        let grouped_sender = Sender::new(
            self.stack.grouped_webhook_url.clone(),
            WEBHOOK_SECRET.to_owned(),
            connections,
        )?;
        self.warm_up(sender, s.ingest_secs).await?;
        for run in 1..=s.runs {
            for level in &mut results.ingest {
                let cap = level
                    .ingest
                    .last()
                    .map_or(RATE_CAP, |r| r.events_per_s * 2.0 + 500.0);
                let ingest = Ingest {
                    db: self.db,
                    sender,
                    ingestor_pid: self.stack.ingestor_pid(),
                    rate_cap: cap,
                };
                let pg_cap = level
                    .pgbench
                    .last()
                    .map_or(RATE_CAP, |r| r.tps * 2.0 + 500.0);
                let pgbench = pgbench::run(
                    self.db,
                    self.log_dir,
                    level.senders,
                    s.ingest_secs,
                    1,
                    pg_cap,
                );
                // The two halves of a ratio run back to back, in turn order (ingest
                // first in odd runs, pgbench first in even ones), so a machine that
                // slows or speeds up over a run does not favour either.
                let (ingest, pg) = if run % 2 == 1 {
                    let ingest = ingest.run(level.senders, s.ingest_secs).await?;
                    (ingest, pgbench.await?)
                } else {
                    let pg = pgbench.await?;
                    (ingest.run(level.senders, s.ingest_secs).await?, pg)
                };
                self.stack.check_alive()?;
                println!(
                    "run {run} senders {:>3}: ingest {:>7.0} ev/s p50 {:>6.1} ms p99 {:>6.1} ms (errors {}, credited {}/{}) | pgbench {:>7.0} tps | ratio {:.2} | ingestor {:.2} cores, waits: {}",
                    level.senders,
                    ingest.events_per_s,
                    ingest.latency.p50_ms,
                    ingest.latency.p99_ms,
                    ingest.errors,
                    ingest.credited,
                    ingest.acknowledged,
                    pg.tps,
                    ingest.events_per_s / pg.tps,
                    ingest.cpu.processes.first().copied().unwrap_or_default(),
                    ingest.waits.summary(3),
                );
                if let Some(e) = &ingest.first_error {
                    println!("    first error: {e}");
                }
                level.ingest.push(ingest);
                level.pgbench.push(pg);
            }
            for batch in &mut results.batching {
                let k = batch.events_per_tx;
                let pg = pgbench::run(
                    self.db,
                    self.log_dir,
                    s.batch_clients,
                    s.ingest_secs,
                    k,
                    RATE_CAP,
                )
                .await?;
                println!(
                    "run {run} pgbench {} clients, {k:>2} events/transaction: {:>7.0} events/s ({:.0} tps)",
                    s.batch_clients, pg.events_per_s, pg.tps
                );
                batch.runs.push(pg);
            }
            for level in &mut results.grouped {
                let run_result = Ingest {
                    db: self.db,
                    sender: &grouped_sender,
                    ingestor_pid: self.stack.grouped_pid(),
                    rate_cap: RATE_CAP,
                }
                .run(level.senders, s.ingest_secs)
                .await?;
                self.stack.check_alive()?;
                println!(
                    "run {run} group commit, senders {:>3}: ingest {:>7.0} ev/s p50 {:>6.1} ms p99 {:>6.1} ms (errors {}, credited {}/{})",
                    level.senders,
                    run_result.events_per_s,
                    run_result.latency.p50_ms,
                    run_result.latency.p99_ms,
                    run_result.errors,
                    run_result.credited,
                    run_result.acknowledged,
                );
                level.runs.push(run_result);
            }
        }
        Ok(())
    }

    /// One unmeasured pass of each half before the first run. Without it the first run
    /// after the services started was the slowest of its level twice in a row (0.57× and
    /// 0.77× at one sender, against 0.92–1.09× in the runs after it); the warm-up pass
    /// itself runs at about two thirds of the later runs' rate.
    async fn warm_up(&mut self, sender: &Sender, secs: Duration) -> anyhow::Result<()> {
        let senders = WARM_UP_SENDERS;
        let ingest = Ingest {
            db: self.db,
            sender,
            ingestor_pid: self.stack.ingestor_pid(),
            rate_cap: RATE_CAP,
        }
        .run(senders, secs)
        .await?;
        let pg = pgbench::run(self.db, self.log_dir, senders, secs, 1, RATE_CAP).await?;
        self.stack.check_alive()?;
        println!(
            "warm-up (not counted), senders {senders}: ingest {:.0} ev/s, pgbench {:.0} tps",
            ingest.events_per_s, pg.tps
        );
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

/// One line per measured window: the rate and the database's work per event.
fn print_work(
    run: usize,
    senders: usize,
    name: &str,
    rate: f64,
    extra: &str,
    work: Option<&Work>,
    postgres_cores: f64,
) {
    let Some(work) = work else {
        println!("run {run} {senders:>3} {name:<17} {rate:>7.0}/s {extra}");
        return;
    };
    let p = work.per_event();
    println!(
        "run {run} {senders:>3} {name:<17} {rate:>7.0}/s | per event: {:.2} commits, {:.0} buffers, {:.1} rows written, HOT {:.0}%, {:.1} WAL records, {:.1} KB WAL{}, PG CPU {:.2} ms | {extra}",
        p.commits,
        p.buffers,
        p.rows_written,
        p.hot_ratio * 100.0,
        p.wal_records,
        p.wal_bytes / 1_000.0,
        if p.wal_own { "" } else { " (cluster)" },
        postgres_cores * 1_000.0 / rate,
    );
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
