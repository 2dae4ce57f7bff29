//! The database's own limit for the ingestor's work: `pgbench` running, per event, the
//! statement webhook-ingestor sends for a `payment_intent.succeeded` that matches a
//! CREATED payment (payments-core's `store::WRITE_SUCCESS`), against pre-inserted rows.
//! With K events per transaction (inside one BEGIN … COMMIT) it is the upper bound of
//! what group commit could give.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use payments_core::store::{EventState, WRITE_SUCCESS};
use serde::{Deserialize, Serialize};

use crate::{
    db::BenchDb,
    events::{Change, event_json},
    procfs::{CpuMeter, CpuUse},
    sampler::{WaitProfile, WaitSampler},
};

pub(crate) const TX_ID: &str =
    "('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid";

/// One event's statement as the ingestor sends it for a `payment_intent.succeeded` that
/// matches a CREATED payment whose user's wallet is in its currency, with no trial
/// running: payments-core's [`WRITE_SUCCESS`] with its parameters written in (the (kind,
/// status) pairs are those the rules give for a top-up; a unit test of the inbox checks
/// them). Alone it commits on its own, as the ingestor's does; in a batch, inside
/// the batch's BEGIN … COMMIT.
fn event_block(payload_literal: &str) -> String {
    let statuses = ["created", "pending", "requires_action", "failed"];
    let kinds = format!("ARRAY[{}]", vec!["'payment'"; statuses.len()].join(", "));
    let statuses = format!("ARRAY[{}]", statuses.map(|s| format!("'{s}'")).join(", "));
    let payload = format!(
        "replace(replace('{payload_literal}', '__N__', :n::text), '__UUID__', {TX_ID}::text)::jsonb"
    );
    let parameters = [
        TX_ID.to_owned(),
        kinds,
        "'succeeded'".to_owned(),
        statuses,
        "'pi_bench_' || :n::text".to_owned(),
        "1000".to_owned(),
        "'usd'".to_owned(),
        "'ch_bench_' || :n::text".to_owned(),
        "'stripe_event'".to_owned(),
        "'evt_pgb' || :n::text".to_owned(),
        "'payment_credit'".to_owned(),
        "'payment_intent.succeeded'".to_owned(),
        format!("'{}'", stripe_sim::API_VERSION),
        "now()".to_owned(),
        "false".to_owned(),
        payload,
        "'webhook'".to_owned(),
        format!("'{}'", EventState::Applied.as_str()),
    ];
    // From the last, so `$1` does not replace the start of `$10`.
    let mut statement = WRITE_SUCCESS.to_owned();
    for (n, value) in parameters.iter().enumerate().rev() {
        statement = statement.replace(&format!("${}", n + 1), &format!("({value})"));
    }
    [
        "\\set i :i + 1".to_owned(),
        "\\set n :base + :client_id * :stride + :i".to_owned(),
        format!("{statement};"),
    ]
    .join("\n")
}

/// The webhook's JSON as an SQL string literal's body, with `__N__` and `__UUID__` where
/// the row number and the transaction id go.
pub(crate) fn payload_literal() -> anyhow::Result<String> {
    let payload = event_json(Change::Succeeded, "evt_pgb__N__", "__N__", "__UUID__");
    // pgbench substitutes `:name` anywhere, even inside literals: keep a space after
    // every JSON colon (no value in this document contains `":`).
    Ok(serde_json::to_string(&payload)?
        .replace("\":", "\": ")
        .replace('\'', "''"))
}

/// The pgbench script for `k` events per database transaction (one alone commits on its
/// own, as the ingestor's does).
pub fn script(k: usize) -> anyhow::Result<String> {
    let block = event_block(&payload_literal()?);
    if k == 1 {
        return Ok(format!("{block}\n"));
    }
    let mut out = String::from("BEGIN;\n");
    for _ in 0..k {
        out.push_str(&block);
        out.push('\n');
    }
    out.push_str("COMMIT;\n");
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgbenchRun {
    pub clients: usize,
    pub events_per_tx: usize,
    pub tps: f64,
    pub events_per_s: f64,
    pub latency_avg_ms: f64,
    pub processed: u64,
    pub failed: u64,
    /// Rows credited; equals processed × events_per_tx unless a client ran past its range.
    pub credited: u64,
    pub cpu: CpuUse,
    pub waits: WaitProfile,
}

/// Runs pgbench with `clients` clients (`-j 2`) for `secs`, `k` events per transaction.
/// `rate_cap` (events/s) sizes the pre-inserted rows.
pub async fn run(
    db: &BenchDb,
    dir: &Path,
    clients: usize,
    secs: Duration,
    k: usize,
    rate_cap: f64,
) -> anyhow::Result<PgbenchRun> {
    let secs_whole = secs.as_secs_f64().ceil().max(1.0);
    let total = (secs_whole * rate_cap).ceil() as u64;
    let stride = total.div_ceil(clients as u64).max(k as u64);
    let rows = stride * clients as u64;
    let first = db.fresh_transactions(rows).await?;
    let path = dir.join(format!("pgbench-{k}-events-per-tx.sql"));
    std::fs::write(&path, script(k)?).with_context(|| format!("writing {path:?}"))?;

    let command = tokio::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared"])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .args(["-T", &format!("{secs_whole}")])
        .args(["-D", "i=0", "-D", &format!("base={}", first - 1)])
        .args(["-D", &format!("stride={stride}")])
        .arg("-f")
        .arg(&path)
        .arg(db.url.url())
        .output();
    let running = tokio::spawn(command);
    // CPU and waits are measured inside the run, after pgbench has connected and before it
    // disconnects: a backend that exits takes its CPU counters with it.
    let margin = Duration::from_millis(500);
    tokio::time::sleep(margin).await;
    let sampler = WaitSampler::start(db.pool.clone(), Duration::from_millis(20));
    let cpu = CpuMeter::start(&[]);
    tokio::time::sleep(Duration::from_secs_f64(secs_whole).saturating_sub(margin * 2)).await;
    let cpu = cpu.stop();
    let waits = sampler.stop().await;
    let output = running
        .await?
        .context("running pgbench (is it installed?)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let parsed = Parsed::from(&stdout)?;
    let credited = db.credited(first, rows).await?;
    Ok(PgbenchRun {
        clients,
        events_per_tx: k,
        tps: parsed.tps,
        events_per_s: parsed.tps * k as f64,
        latency_avg_ms: parsed.latency_avg_ms,
        processed: parsed.processed,
        failed: parsed.failed,
        credited,
        cpu,
        waits,
    })
}

#[derive(Debug, PartialEq)]
pub(crate) struct Parsed {
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub processed: u64,
    pub failed: u64,
}

impl Parsed {
    pub(crate) fn from(stdout: &str) -> anyhow::Result<Parsed> {
        let after = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .map(|v| v.split('/').next().unwrap_or(v).to_owned())
        };
        let num = |prefix: &str| -> anyhow::Result<f64> {
            after(prefix)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("pgbench printed no {prefix:?}:\n{stdout}"))
        };
        Ok(Parsed {
            tps: num("tps = ")?,
            latency_avg_ms: num("latency average = ")?,
            processed: num("number of transactions actually processed: ")? as u64,
            failed: num("number of failed transactions: ").unwrap_or(0.0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_output_is_parsed() {
        let out = "transaction type: x.sql\nnumber of transactions actually processed: 2036\n\
                   number of failed transactions: 0 (0.000%)\nlatency average = 4.911 ms\n\
                   initial connection time = 24.413 ms\ntps = 203.624516 (without initial connection time)\n";
        assert_eq!(
            Parsed::from(out).expect("parses"),
            Parsed {
                tps: 203.624516,
                latency_avg_ms: 4.911,
                processed: 2036,
                failed: 0
            }
        );
    }

    #[test]
    fn the_script_has_one_block_per_event_inside_one_transaction() {
        let s = script(3).expect("script");
        assert_eq!(s.matches("INSERT INTO stripe_events").count(), 3);
        assert!(s.starts_with("BEGIN;\n") && s.ends_with("COMMIT;\n"));
        // No JSON colon is glued to a word pgbench would take for a variable.
        assert!(!s.contains("\":\""));
    }
}
