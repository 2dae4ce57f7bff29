//! What the figures led to: each change made because of an earlier run, the figure it
//! was meant to move as that run measured it, and the same figure in this run.

use std::fmt::Write as _;

use super::{ingest::ratios, ms, num, times};
use crate::{
    stats::{median, median_by},
    suite::Results,
};

/// The run most changes answered: the full run of 2026-11-30 18:19 UTC (the first
/// BENCHMARKS.md in the repository's history). A row measured against another run says so.
const BEFORE: &str = "2026-11-30 18:19 UTC, commit `e584068` with uncommitted changes";

/// One change and its figure: the earlier value as text, this run's if it measured it.
struct Row {
    change: &'static str,
    figure: &'static str,
    before: &'static str,
    now: Option<String>,
}

pub(super) fn section(out: &mut String, r: &Results) {
    // pgbench runs the ingestor's statements, so it moves with them: both are shown.
    let ingest_at = |senders: usize| {
        r.ingest.iter().find(|l| l.senders == senders).map(|l| {
            format!(
                "{} (pgbench {})",
                num(median_by(&l.ingest, |x| x.events_per_s)),
                num(median_by(&l.pgbench, |x| x.tps))
            )
        })
    };
    let ratio_at = |senders: usize| {
        r.ingest
            .iter()
            .find(|l| l.senders == senders)
            .map(|l| times(median(ratios(l))))
    };
    let hub = (!r.hub.is_empty()).then_some(&r.hub);
    let rows = [
        Row {
            change: "ingest: the webhook path (and group commit's committers) keeps the \
                     connection of a cleanly ended event for the next one, skipping sqlx's \
                     hand-over and the Sync round trip its pool sends to test every returned \
                     connection (a tenth round trip per event, pgbench has nine); the bench \
                     warms up before its first run",
            figure: "ingest ÷ pgbench at 1 sender; at 4",
            before: "1.08×; 0.81× (3 runs, 2026-12-01 09:57 UTC, commit `09a3307`)",
            now: ratio_at(1)
                .zip(ratio_at(4))
                .map(|(one, four)| format!("{one}; {four}")),
        },
        Row {
            change: "ingest: the load generator signs and renders its requests before the run \
                     and posts each in one write on its own connection (it signed each event \
                     in the loop and posted it through reqwest's pool); the services' JSON logs \
                     append a span's fields instead of re-parsing them at every record",
            figure: "ingest ÷ pgbench at 1 sender; at 4",
            before: "0.60×; 0.67× (2 runs, 2026-12-01 04:56 UTC, commit `9e28550`)",
            now: ratio_at(1)
                .zip(ratio_at(4))
                .map(|(one, four)| format!("{one}; {four}")),
        },
        Row {
            change: "ingest: 9 statements per event instead of 14 (status change and audit row \
                     in one statement, one-statement wallet upsert, no savepoint on the webhook \
                     path), and no liveness ping when a busy pooled connection is handed out",
            figure: "ingest events/s at 4 senders",
            before: "450 (pgbench 692)",
            now: ingest_at(4),
        },
        Row {
            change: "watch: the safety pass runs beside the doorbell reader and compares versions, \
                     re-reading only rows that moved",
            figure: "watch p99 at 10,000 streams, 500 changes/s",
            before: "493 ms",
            now: hub.map(|h| ms(median_by(h, |x| x.delivery.latency.p99_ms))),
        },
        Row {
            change: "watch: doorbells gather for `PAYMENTS_WATCH_COALESCE_MS` (10 ms) into one \
                     re-read",
            figure: "payments-api queries/s at 500 changes/s",
            before: "289",
            now: hub.map(|h| num(median_by(h, |x| x.queries_per_s))),
        },
        Row {
            change: "payments-api: `TCP_NODELAY` on the gRPC listener",
            figure: "one user: watch snapshot → SUCCEEDED message (p50)",
            before: "42 ms",
            now: r
                .e2e_single
                .as_ref()
                .map(|one| ms(one.first_to_final_latency.p50_ms)),
        },
        Row {
            change: "payments-api: no connection or row lock held while Stripe answers \
                     CreatePayment",
            figure: "end to end, 50 users, Stripe answering in 300 ms",
            before: "29 flows/s",
            now: r
                .e2e_slow_stripe
                .as_ref()
                .map(|slow| format!("{} flows/s", num(slow.flows_per_s))),
        },
    ];
    let _ = writeln!(
        out,
        "## What earlier figures changed\n\n\
         Each change below was made because a run ({BEFORE}, unless the row names another) \
         showed the cost it removes; `before` is that run's median, `now` this run's.\n\n\
         | change | figure | before | now |\n|---|---|---:|---:|"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.change,
            row.figure,
            row.before,
            row.now.as_deref().unwrap_or("not measured in this run"),
        );
    }
    out.push('\n');
}
