//! What the benchmark database's sessions are doing, sampled from `pg_stat_activity`
//! while a workload runs: on CPU, waiting (WAL flush, a lock, NOTIFY's queue…), or idle
//! inside a transaction (waiting for the client's next statement).

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Shares of sampled busy sessions by what they were doing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaitProfile {
    pub samples: u64,
    /// Mean number of sessions busy (active or idle in a transaction) per sample.
    pub mean_busy: f64,
    /// (what, share of busy session-samples), largest first.
    pub top: Vec<(String, f64)>,
}

impl WaitProfile {
    /// `"IO:WALSync 41%, CPU 30%, …"`, the first `n` entries.
    pub fn summary(&self, n: usize) -> String {
        if self.top.is_empty() {
            return "no busy sessions sampled".to_owned();
        }
        self.top
            .iter()
            .take(n)
            .map(|(what, share)| format!("{what} {:.0}%", share * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Share of one wait (0 when never seen).
    pub fn share(&self, what: &str) -> f64 {
        self.top
            .iter()
            .find(|(w, _)| w == what)
            .map_or(0.0, |(_, s)| *s)
    }
}

pub struct WaitSampler {
    stop: CancellationToken,
    task: JoinHandle<WaitProfile>,
}

impl WaitSampler {
    pub fn start(pool: PgPool, every: Duration) -> WaitSampler {
        let stop = CancellationToken::new();
        let task = tokio::spawn(sample(pool, every, stop.clone()));
        WaitSampler { stop, task }
    }

    pub async fn stop(self) -> WaitProfile {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

async fn sample(pool: PgPool, every: Duration, stop: CancellationToken) -> WaitProfile {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let (mut samples, mut busy) = (0u64, 0u64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let rows: Result<Vec<String>, _> = sqlx::query_scalar(
            "SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction' \
                    WHEN wait_event IS NULL THEN 'CPU' \
                    ELSE wait_event_type || ':' || wait_event END \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND backend_type = 'client backend' \
               AND state IN ('active', 'idle in transaction')",
        )
        .fetch_all(&pool)
        .await;
        let Ok(rows) = rows else { continue };
        samples += 1;
        busy += rows.len() as u64;
        for what in rows {
            *counts.entry(what).or_default() += 1;
        }
    }
    let mut top: Vec<(String, f64)> = counts
        .into_iter()
        .map(|(what, n)| (what, n as f64 / busy.max(1) as f64))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    WaitProfile {
        samples,
        mean_busy: busy as f64 / samples.max(1) as f64,
        top,
    }
}
