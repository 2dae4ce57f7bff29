//! The fixed bar of issue 20: the minimal ingest transaction, given as pgbench scripts in
//! `bench/anchor/` (copied byte for byte from the team's shared `bench-anchor/`, used as
//! they are). [`AnchorDb::load`] makes its tables in a database of its own, so its
//! per-database statistics are its alone; [`run_script`] runs any pgbench script with the
//! database's work counted over the run.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::{
    db::BenchDb,
    dbwork::{self, Window, Work},
    pgbench::Parsed,
    procfs::{CpuMeter, CpuUse},
};

/// The anchor's tables and 2,000,000 pending transactions, exactly as given.
const SCHEMA: &str = include_str!("../anchor/schema.sql");

/// The two anchor scripts, by file name under `bench/anchor/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnchorScript {
    Notify,
    NoNotify,
}

impl AnchorScript {
    pub fn path(self, root: &Path) -> PathBuf {
        let file = match self {
            AnchorScript::Notify => "ingest_notify.sql",
            AnchorScript::NoNotify => "ingest_nonotify.sql",
        };
        root.join("bench/anchor").join(file)
    }

    /// Round trips per event: BEGIN, the statements, COMMIT.
    pub fn statements(self) -> usize {
        match self {
            AnchorScript::Notify => 7,
            AnchorScript::NoNotify => 6,
        }
    }
}

/// Loads `schema.sql` into `db` (a database of its own) and settles it.
pub async fn load(db: &BenchDb) -> anyhow::Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(SCHEMA))
        .execute(&db.pool)
        .await
        .context("loading bench/anchor/schema.sql")?;
    dbwork::enable_walinspect(&db.pool).await;
    db.settle().await
}

/// One pgbench run of a script, one event per transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptRun {
    pub clients: usize,
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub processed: u64,
    pub failed: u64,
    /// Machine and PostgreSQL CPU inside the run; `processes` holds pgbench's own.
    pub cpu: CpuUse,
    pub work: Work,
}

/// `pgbench -M prepared -n -c clients -j min(clients, 2) -T secs -f script` against `db`,
/// after vacuuming and checkpointing it, with the database's work counted from just
/// before pgbench connects to just after it has disconnected (its transactions are the
/// events; its connections' start-up is counted with them).
pub async fn run_script(
    db: &BenchDb,
    script: &Path,
    clients: usize,
    secs: Duration,
    defines: &[String],
) -> anyhow::Result<ScriptRun> {
    let secs_whole = secs.as_secs_f64().ceil().max(1.0);
    let mut command = tokio::process::Command::new("pgbench");
    command
        .args(["-M", "prepared", "-n"])
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &format!("{secs_whole}")]);
    for define in defines {
        command.args(["-D", define]);
    }
    command.arg("-f").arg(script).arg(db.url.url());
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let window = Window::open(&db.pool).await?;
    let child = command
        .spawn()
        .context("running pgbench (is it installed?)")?;
    // pgbench is the load generator: its own CPU is measured with the machine's.
    let pid = child.id();
    let running = tokio::spawn(child.wait_with_output());
    let margin = Duration::from_millis(500);
    tokio::time::sleep(margin).await;
    let cpu = CpuMeter::start(&pid.into_iter().collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_secs_f64(secs_whole).saturating_sub(margin * 2)).await;
    let cpu = cpu.stop();
    let output = running.await?.context("waiting for pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench {} failed ({}): {}{}",
            script.display(),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let parsed = Parsed::from(&stdout)?;
    let work = window.finish(parsed.processed).await?;
    Ok(ScriptRun {
        clients,
        tps: parsed.tps,
        latency_avg_ms: parsed.latency_avg_ms,
        processed: parsed.processed,
        failed: parsed.failed,
        cpu,
        work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_files_are_the_given_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for script in [AnchorScript::Notify, AnchorScript::NoNotify] {
            let text = std::fs::read_to_string(script.path(&root)).expect("anchor script");
            assert!(text.starts_with("-- The least work any correct design does"));
            let notifies = text.contains("pg_notify('txn'");
            assert_eq!(notifies, script == AnchorScript::Notify);
            // BEGIN, the statements and COMMIT: one round trip each.
            let statements = text.lines().filter(|l| l.ends_with(';')).count();
            assert_eq!(statements, script.statements());
        }
        assert!(SCHEMA.contains("generate_series(1,2000000)"));
    }
}
