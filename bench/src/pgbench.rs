//! The database's own limit for the ingestor's work: `pgbench` running, per event, the
//! statements webhook-ingestor sends for a `payment_intent.succeeded` that matches a
//! CREATED payment (read from webhook-ingestor/src/inbox and payments-core's store and
//! settle), inside one BEGIN … COMMIT, against pre-inserted rows. With K events per
//! transaction it is the upper bound of what group commit could give.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use payments_core::store::EventState;
use serde::{Deserialize, Serialize};

use crate::{
    db::BenchDb,
    events::{Change, event_json},
    procfs::{CpuMeter, CpuUse},
    sampler::{WaitProfile, WaitSampler},
};

/// The columns payments-core reads for a transaction and a wallet.
pub(crate) const TX_COLUMNS: &str = "id, user_id, kind, status, amount, currency, amount_refunded, failure_code, \
    failure_message, payment_method_id, coupon_code, card_fingerprint, trial_credit, flagged, \
    stripe_payment_intent_id, stripe_invoice_id, stripe_charge_id, client_secret, idempotency_key, \
    request_fingerprint, version, created_at, updated_at";
pub(crate) const TX_ID: &str =
    "('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid";

/// One event's statements, in the ingestor's order (`inbox::receive` between its BEGIN
/// and COMMIT: lock the transaction with its user's customer and where its row lies,
/// change the status of that row with its audit row, read the wallet and credit it,
/// insert the event with its outcome). The trial is not running, so no statement ends it.
fn event_block(payload_literal: &str) -> String {
    let user = format!("'bench-' || (:n::bigint % {})::text", crate::db::USERS);
    let event = "'evt_pgb' || :n::text";
    let api = stripe_sim::API_VERSION;
    [
        "\\set i :i + 1".to_owned(),
        "\\set n :base + :client_id * :stride + :i".to_owned(),
        format!(
            "SELECT {TX_COLUMNS}, (SELECT c.stripe_customer_id FROM customers c \
               WHERE c.user_id = t.user_id) AS stripe_customer, t.ctid::text AS row_address \
             FROM transactions t WHERE t.id = {TX_ID} FOR UPDATE OF t \\gset"
        ),
        format!(
            "WITH updated AS ( \
               UPDATE transactions SET status = 'succeeded', amount_refunded = 0, \
               failure_code = CASE WHEN 'succeeded' = 'failed' THEN NULL WHEN 'succeeded' = 'succeeded' THEN NULL ELSE failure_code END, \
               failure_message = CASE WHEN 'succeeded' = 'failed' THEN NULL WHEN 'succeeded' = 'succeeded' THEN NULL ELSE failure_message END, \
               stripe_charge_id = COALESCE(stripe_charge_id, 'ch_bench_' || :n::text) \
               WHERE ctid = :row_address::tid AND id = {TX_ID} RETURNING {TX_COLUMNS} \
             ), audit AS ( \
               INSERT INTO transaction_transitions (transaction_id, from_status, to_status, version, cause, stripe_event_id) \
               SELECT id, 'created', status, version, 'stripe_event', {event} FROM updated \
             ) SELECT {TX_COLUMNS} FROM updated;"
        ),
        format!(
            "WITH wallet AS (SELECT currency, trial_state FROM wallets WHERE user_id = {user}), \
             moved AS ( \
               INSERT INTO ledger_entries (user_id, transaction_id, kind, movement_key, amount, currency, stripe_event_id) \
               SELECT {user}, {TX_ID}, 'payment_credit', '', 1000, 'usd', {event} FROM wallet \
               WHERE wallet.currency = 'usd' \
             ) SELECT currency, trial_state FROM wallet;"
        ),
        format!(
            "INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source, \
               state, transaction_id, last_error, next_attempt_at, attempts, processed_at) \
             VALUES ({event}, 'payment_intent.succeeded', '{api}', now(), false, \
             replace(replace('{payload_literal}', '__N__', :n::text), '__UUID__', {TX_ID}::text)::jsonb, \
             'webhook', '{applied}', {TX_ID}, NULL, NULL, 1, \
             CASE WHEN {retryable} THEN NULL ELSE now() END);",
            applied = EventState::Applied.as_str(),
            retryable = EventState::Applied.is_retryable()
        ),
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

/// The pgbench script for `k` events per database transaction.
pub fn script(k: usize) -> anyhow::Result<String> {
    let block = event_block(&payload_literal()?);
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
