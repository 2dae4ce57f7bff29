//! The ingest phase: at each concurrency level the ingestor and pgbench running the
//! same SQL, back to back; pgbench with several events per transaction; the ingestor
//! with group commit on. An unmeasured warm-up pass comes first.

use std::time::Duration;

use super::{BatchLevel, GroupedLevel, IngestLevel, Results, Suite};
use crate::{config::Settings, events::Sender, ingest::Ingest, pgbench, services::WEBHOOK_SECRET};

/// Row budget when nothing has been measured yet: comfortably above any rate the
/// ingest path reaches on a small machine.
pub(super) const RATE_CAP: f64 = 4_000.0;
/// Concurrency of the unmeasured pass before the first ingest run.
pub(super) const WARM_UP_SENDERS: usize = 4;

impl Suite<'_> {
    pub(super) async fn ingest(
        &mut self,
        sender: &Sender,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let s = self.settings;
        println!(
            "\n== ingest: signed payment_intent.succeeded, verified + stored + applied per 200 =="
        );
        levels(s, results);
        let connections = s.senders.iter().copied().max().unwrap_or(1).max(256);
        let grouped_sender = Sender::new(
            self.stack.grouped_webhook_url.clone(),
            WEBHOOK_SECRET.to_owned(),
            connections,
        )?;
        self.warm_up(sender, s.ingest_secs).await?;
        for run in 1..=s.runs {
            for level in &mut results.ingest {
                self.ingest_against_pgbench(run, sender, level).await?;
            }
            for batch in &mut results.batching {
                self.batched_pgbench(run, batch).await?;
            }
            for level in &mut results.grouped {
                self.grouped_ingest(run, &grouped_sender, level).await?;
            }
        }
        Ok(())
    }

    /// The two halves of a ratio, back to back.
    async fn ingest_against_pgbench(
        &mut self,
        run: usize,
        sender: &Sender,
        level: &mut IngestLevel,
    ) -> anyhow::Result<()> {
        let secs = self.settings.ingest_secs;
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
        let pgbench = pgbench::run(self.db, self.log_dir, level.senders, secs, 1, pg_cap);
        // The two halves of a ratio run back to back, in turn order (ingest
        // first in odd runs, pgbench first in even ones), so a machine that
        // slows or speeds up over a run does not favour either.
        let (ingest, pg) = if run % 2 == 1 {
            let ingest = ingest.run(level.senders, secs).await?;
            (ingest, pgbench.await?)
        } else {
            let pg = pgbench.await?;
            (ingest.run(level.senders, secs).await?, pg)
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
        Ok(())
    }

    async fn batched_pgbench(&mut self, run: usize, batch: &mut BatchLevel) -> anyhow::Result<()> {
        let s = self.settings;
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
        Ok(())
    }

    async fn grouped_ingest(
        &mut self,
        run: usize,
        sender: &Sender,
        level: &mut GroupedLevel,
    ) -> anyhow::Result<()> {
        let run_result = Ingest {
            db: self.db,
            sender,
            ingestor_pid: self.stack.grouped_pid(),
            rate_cap: RATE_CAP,
        }
        .run(level.senders, self.settings.ingest_secs)
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
}

/// The levels each run fills: the ingest ratios at every sender count, pgbench at one
/// event per transaction and at each batch size, group commit at its own concurrency
/// and at the highest sender count above it.
fn levels(s: &Settings, results: &mut Results) {
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
}
