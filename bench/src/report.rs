//! BENCHMARKS.md: the summary against the targets, the machine, one section per phase
//! (tables of medians, with the spread over runs), the scaling analysis and the method.
//! Every sentence that states a result is computed from the figures.
//!
//! - this file: the document, the summary and the method.
//! - `anchor`: the ingestor against the fixed minimal transaction, the database's work
//!   per event, and the candidate designs.
//! - `ingest`: the ingestor against pgbench, group commit; `ingest_scaling`: the ingest
//!   curve.
//! - `watch`: fan-out against polling, end to end; `watch_scaling`: the watch curves.
//! - `history`: what earlier runs led to, and the same figures now.

mod anchor;
mod history;
mod ingest;
mod ingest_scaling;
mod watch;
mod watch_scaling;

use std::fmt::Write as _;

use crate::{config::Settings, machine::Machine, suite::Results};

/// A verdict line of the summary table.
pub(crate) struct Target {
    pub what: String,
    pub measured: String,
    pub met: Option<bool>,
    /// The evidence and the fix, shown when the target is missed.
    pub why: String,
}

pub fn render(settings: &Settings, machine: &Machine, results: &Results, minutes: f64) -> String {
    let mut out = String::new();
    header(&mut out, settings, machine, minutes);
    let mut targets = Vec::new();
    let mut body = String::new();
    if !results.anchor.is_empty() {
        targets.extend(anchor::targets(results));
        anchor::section(&mut body, settings, results);
    }
    anchor::designs_section(&mut body, settings, results);
    if !results.ingest.is_empty() {
        targets.extend(ingest::targets(results, machine.cpus));
        ingest::section(&mut body, settings, results);
    }
    if !results.hub.is_empty() {
        targets.extend(watch::targets(settings, results));
        watch::fanout_section(&mut body, settings, results);
    }
    if !results.e2e.is_empty() || results.e2e_slow_stripe.is_some() {
        watch::e2e_section(&mut body, settings, results);
    }
    if !results.scaling.is_empty() || results.ingest.len() > 1 {
        let _ = writeln!(body, "## 4. Scaling: how cost grows with load\n");
        ingest_scaling::section(&mut body, settings, results);
        watch_scaling::section(&mut body, results);
    }
    history::section(&mut body, results);
    summary(&mut out, &targets);
    out.push_str(&body);
    method(&mut out, settings);
    machine_section(&mut out, machine);
    out
}

fn header(out: &mut String, s: &Settings, m: &Machine, minutes: f64) {
    let mode = if s.quick {
        "**quick smoke run** (small sizes, one run per figure: not representative)"
    } else {
        "full run"
    };
    let _ = writeln!(
        out,
        "# Benchmarks\n\n\
         Measured {date} at commit `{commit}`, {mode}; the run took {minutes:.0} min. \
         Every figure is the median of {runs} run(s); brackets give the spread (min–max) where \
         there were several. Ratios are taken within each run, then their median.\n\n\
         All processes — PostgreSQL, stripe-sim, webhook-ingestor, payments-api and the load \
         generator itself — share one {cpus}-core machine (details at the end), so the load \
         generator's own CPU is part of every figure.\n\n\
         Reproduce: `cargo run --release -p payments-bench` (about 40 minutes with the \
         comparison against the fixed bar and the candidate designs; it builds the \
         services with `cargo build --release` first) or `bench/run.sh`; `--quick` is a \
         two-minute smoke run; `--help` lists the sizes. It needs PostgreSQL at `DATABASE_URL` \
         (default `postgres://postgres@127.0.0.1:5432/postgres`) and `pgbench`; it creates and \
         drops its own database.\n",
        date = m.date,
        commit = m.commit,
        runs = s.runs,
        cpus = m.cpus,
    );
}

fn summary(out: &mut String, targets: &[Target]) {
    if targets.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Summary against the targets\n");
    let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
    for t in targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "n/a",
        };
        let _ = writeln!(out, "| {} | {} | {verdict} |", t.what, t.measured);
    }
    out.push('\n');
    let missed: Vec<&Target> = targets.iter().filter(|t| t.met == Some(false)).collect();
    if !missed.is_empty() {
        let _ = writeln!(
            out,
            "### Missed targets: the evidence and what would fix them\n"
        );
        for t in missed {
            let _ = writeln!(out, "- **{}.** {}", t.what, t.why);
        }
        out.push('\n');
    }
}

fn method(out: &mut String, s: &Settings) {
    let _ = writeln!(
        out,
        "## How it is measured\n\n\
         - **Fresh state.** A new database `payments_bench_<pid>` on the local server, migrated by \
         `payments-api migrate`; the release binaries from `target/release` run as separate \
         processes: stripe-sim (no chaos), webhook-ingestor (`INGESTOR_DB_MAX_CONNECTIONS={ip}`; its \
         reconciliation and catch-up sweeps are turned off because they only call Stripe in the \
         background; the retry worker and outbox run) and payments-api \
         (`PAYMENTS_DB_MAX_CONNECTIONS={ap}`). Services log at `RUST_LOG={log}`. Logs are in \
         `target/bench/`.\n\
         - **Rows.** Payments are pre-inserted with SQL in CREATED with their PaymentIntent id \
         recorded, spread over 10,000 users whose wallets exist (as in the fixed minimal \
         transaction's data), so every `payment_intent.succeeded` credits a wallet. Ids are \
         derived from a row number, so pgbench scripts address the same kind of row. After the \
         rows are in, the database is vacuumed and checkpointed, so no run pays for the \
         autovacuum or checkpoint the run before it called for.\n\
         - **Ingest.** Each sender is a task with its own keep-alive HTTP/1.1 connection posting \
         one event at a time; counted after a 1 s warm-up over the window; latency is \
         send → 200. Before the first run, one unmeasured pass of each half (4 senders) warms \
         the services and the database: the first run after start-up was otherwise the slowest \
         of its level, whichever half it came from. The events are signed (with the time of signing, well inside the \
         ingestor's 300 s tolerance) and rendered as requests before the run, as Stripe signs \
         on its own machines; each send is one write, and the answer is read until its \
         `content-length` is in: the least an HTTP client can do, as pgbench is for the \
         database. After each run the database is checked for one ledger credit per 200.\n\
         - **pgbench.** The statements the ingestor sends for such an event (from \
         payments-core's `inbox`, `store` and `settle`: lock the row with its user's Stripe \
         customer, update it and insert its transition in one statement (the triggers bump the \
         version, NOTIFY, record the charge and drop the row from the unsettled set), read the \
         wallet and insert the ledger entry in one statement (the trigger moves the balance), \
         insert the event once with its outcome) in one \
         BEGIN … COMMIT, `-M prepared -c N -j 2 -T secs`, each client walking its own range of \
         pre-inserted rows via `\\set`. The script is written to `target/bench/`.\n\
         - **Watch.** payments-api is restarted before each fan-out run, so its memory starts \
         clean. Streams are opened over {ch} HTTP/2 connections with a service token; change `k` \
         goes to watched transaction `k mod W`, alternating `payment_intent.requires_action` and \
         `processing` (every event a real transition; no stream ends while measured — the \
         SUCCEEDED that ends a stream is measured end to end). Changes are posted open-loop at the \
         target rate (at most 256 in flight). Latency is the sender's 200 → the watcher's \
         message (a message that arrives before the 200 is read counts as 0). Memory is \
         `VmRSS` of payments-api from `/proc`.\n\
         - **Database queries of payments-api.** PostgreSQL 15 here has no \
         `pg_stat_statements` in `shared_preload_libraries` (loading it needs a restart), and \
         its statistics views have no per-role statement counts. So payments-api connects \
         through a small TCP proxy inside the benchmark that counts every `Query` and `Execute` \
         protocol message its connections send — one per statement, exact. The polling baseline \
         counts its own queries in-process. `pg_stat_database` commits (all sessions, ingestor \
         included) are kept in the raw results as a cross-check.\n\
         - **Polling baseline.** {w} tokio tasks in the benchmark process, one sqlx pool of \
         {pp} connections, each task reading its row with payments-core's `get_transaction` \
         (the hub's snapshot query) every {pi} ms, phases spread evenly, until the status is \
         settled.\n\
         - **DB waits** are sampled every 20 ms from `pg_stat_activity` for the benchmark \
         database: `CPU` is an active session with no wait event, `idle in transaction` a \
         session waiting for its client's next statement, `Lock:object` the lock NOTIFY takes \
         at commit, `IO:WALSync`/`LWLock:WALWrite` the WAL flush. CPU shares come from \
         `/proc/*/stat` (1.00 = one core busy).\n",
        ip = s.ingestor_pool,
        ap = s.api_pool,
        log = s.service_log,
        ch = s.channels,
        pp = s.poll_pool,
        pi = s.poll_interval.as_millis(),
        w = num(s.watchers as f64),
    );
}

fn machine_section(out: &mut String, m: &Machine) {
    let _ = writeln!(
        out,
        "## Machine\n\n\
         | | |\n|---|---|\n\
         | CPU | {cpus} × {model} |\n\
         | memory | {mem:.1} GiB |\n\
         | kernel | {kernel} |\n\
         | load average at start | {load} |\n\
         | PostgreSQL | {pg} |",
        cpus = m.cpus,
        model = m.cpu_model,
        mem = m.memory_gib,
        kernel = m.kernel,
        load = m.load_at_start,
        pg = m.postgres_version,
    );
    for (name, value) in &m.postgres_settings {
        let value = if value.is_empty() { "(empty)" } else { value };
        let _ = writeln!(out, "| `{name}` | {value} |");
    }
    out.push('\n');
}

/// `12,345` for counts and rates.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let rounded = v.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if rounded < 0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// `3.2 ms`, with more precision for small values.
pub(crate) fn ms(v: f64) -> String {
    match v {
        v if !v.is_finite() => "–".to_owned(),
        v if v < 10.0 => format!("{v:.1} ms"),
        v => format!("{} ms", num(v)),
    }
}

/// A median with its spread when there were several runs.
pub(crate) fn with_spread(
    median: f64,
    (lo, hi): (f64, f64),
    runs: usize,
    fmt: fn(f64) -> String,
) -> String {
    if runs < 2 || !lo.is_finite() || (hi - lo).abs() < f64::EPSILON {
        return fmt(median);
    }
    format!("{} ({}–{})", fmt(median), fmt(lo), fmt(hi))
}

/// `0.85×`.
pub(crate) fn times(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    if v >= 10.0 {
        format!("{}×", num(v))
    } else {
        format!("{v:.2}×")
    }
}

pub(crate) fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0}%", v * 100.0)
    } else {
        "–".to_owned()
    }
}

pub(crate) fn mb(kib: f64) -> String {
    format!("{:.0} MB", kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(num(1_234_567.4), "1,234,567");
        assert_eq!(num(999.6), "1,000");
        assert_eq!(num(-1234.0), "-1,234");
        assert_eq!(ms(2.54), "2.5 ms");
        assert_eq!(ms(1234.0), "1,234 ms");
        assert_eq!(times(0.8449), "0.84×");
        assert_eq!(times(123.4), "123×");
        assert_eq!(with_spread(2.0, (1.0, 3.0), 3, num), "2 (1–3)");
        assert_eq!(with_spread(2.0, (1.0, 3.0), 1, num), "2");
    }
}
