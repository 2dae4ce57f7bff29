//! The database's own limit for the ingestor's work: `pgbench` running, per event, the
//! statement webhook-ingestor sends for a `payment_intent.succeeded` that matches a
//! CREATED payment (payments-core's `store::WRITE_SUCCESSES`), against pre-inserted
//! rows. With K events per statement (one commit) it is the upper bound of what group
//! commit could give.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use payments_core::store::{EventState, WRITE_SUCCESSES};
use serde::{Deserialize, Serialize};

use crate::{
    db::BenchDb,
    events::{Change, event_json},
    procfs::{CpuMeter, CpuUse},
    sampler::{WaitProfile, WaitSampler},
};

pub(crate) const TX_ID: &str =
    "('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid";

/// `k` events' statement as the ingestor sends it for `payment_intent.succeeded`s that
/// match CREATED payments whose users' wallets are in their currency, with no trial
/// running: payments-core's [`WRITE_SUCCESSES`] with its parameters written in, one
/// array element per event (the (kind, status) pairs are those the rules give for a
/// top-up; a unit test of the inbox checks them). It commits on its own, as the
/// ingestor's does, one event alone or a batch of `k`.
fn statement(payload_literal: &str, k: usize) -> String {
    let rows: Vec<String> = (1..=k).map(|j| format!("n{j}")).collect();
    let array = |value: &dyn Fn(&str) -> String, cast: &str| {
        let values: Vec<String> = rows.iter().map(|n| value(n)).collect();
        format!("ARRAY[{}]::{cast}[]", values.join(", "))
    };
    let statuses = ["created", "pending", "requires_action", "failed"];
    let pairs = |value: &dyn Fn(usize, &str) -> String, cast: &str| {
        let values: Vec<String> = (1..=k)
            .flat_map(|j| statuses.iter().map(move |status| (j, *status)))
            .map(|(j, status)| value(j, status))
            .collect();
        format!("ARRAY[{}]::{cast}[]", values.join(", "))
    };
    let api = format!("'{}'", stripe_sim::API_VERSION);
    let parameters = [
        array(&tx_id, "uuid"),
        array(&|n| format!("'pi_bench_' || :{n}::text"), "text"),
        array(&|_| "1000".to_owned(), "bigint"),
        array(&|_| "'usd'".to_owned(), "text"),
        array(&|n| format!("'ch_bench_' || :{n}::text"), "text"),
        array(&|_| "'payment_credit'".to_owned(), "text"),
        array(&|_| "'stripe_event'".to_owned(), "text"),
        array(&|n| format!("'evt_pgb' || :{n}::text"), "text"),
        array(&|_| "'payment_intent.succeeded'".to_owned(), "text"),
        array(&|_| api.clone(), "text"),
        array(&|_| "now()".to_owned(), "timestamptz"),
        array(&|_| "false".to_owned(), "bool"),
        array(
            &|n| {
                format!(
                    "replace(replace('{payload_literal}', '__N__', :{n}::text), '__UUID__', {}::text)::jsonb",
                    tx_id(n)
                )
            },
            "jsonb",
        ),
        array(&|_| "'webhook'".to_owned(), "text"),
        pairs(&|j, _| j.to_string(), "bigint"),
        pairs(&|_, _| "'payment'".to_owned(), "text"),
        pairs(&|_, status| format!("'{status}'"), "text"),
        "'succeeded'".to_owned(),
        format!("'{}'", EventState::Applied.as_str()),
        // The doorbell rings inside the commit, as the ingestor's does by default.
        "'in_commit'".to_owned(),
    ];
    // From the last, so `$1` does not replace the start of `$10`.
    let mut statement = WRITE_SUCCESSES.to_owned();
    for (n, value) in parameters.iter().enumerate().rev() {
        statement = statement.replace(&format!("${}", n + 1), &format!("({value})"));
    }
    let mut lines = Vec::new();
    for n in &rows {
        lines.push("\\set i :i + 1".to_owned());
        lines.push(format!("\\set {n} :base + :client_id * :stride + :i"));
    }
    lines.push(format!("{statement};"));
    lines.join("\n")
}

/// The transaction id of the row numbered by the pgbench variable `n`.
fn tx_id(n: &str) -> String {
    format!("('00000000-0000-4000-8000-' || lpad(to_hex(:{n}::bigint), 12, '0'))::uuid")
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

/// The pgbench script for `k` events per commit: one statement, as the ingestor sends
/// one event alone or a batch of `k` (group commit).
pub fn script(k: usize) -> anyhow::Result<String> {
    Ok(format!("{}\n", statement(&payload_literal()?, k)))
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
    fn the_script_sends_one_statement_with_a_row_per_event() {
        let s = script(3).expect("script");
        // One statement, as the ingestor sends it, committing on its own.
        assert_eq!(s.lines().filter(|l| !l.starts_with('\\')).count(), 1);
        assert_eq!(s.matches("INSERT INTO stripe_events").count(), 1);
        assert!(!s.contains("BEGIN") && !s.contains("COMMIT"));
        // Every parameter is written in, and each event has its row number.
        assert!(!s.contains('$'));
        for n in ["n1", "n2", "n3"] {
            assert!(s.contains(&format!("\\set {n} ")), "{n}");
            assert!(s.contains(&format!("'evt_pgb' || :{n}::text")), "{n}");
        }
        // No JSON colon is glued to a word pgbench would take for a variable.
        assert!(!s.contains("\":\""));
    }
}
