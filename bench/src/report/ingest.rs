//! The ingest sections: the ingestor against pgbench, and group commit. The ingest curve
//! is in `ingest_scaling.rs`.

use std::fmt::Write as _;

use super::{Target, ms, num, pct, times, with_spread};
use crate::{
    config::Settings,
    ingest::IngestRun,
    pgbench::PgbenchRun,
    stats::{median, median_by, spread},
    suite::{IngestLevel, Results},
};

/// The ingestor's configuration source, to say whether it has a batching mode.
pub(super) fn ratios(level: &IngestLevel) -> Vec<f64> {
    level
        .ingest
        .iter()
        .zip(&level.pgbench)
        .map(|(i, p)| i.events_per_s / p.tps)
        .collect()
}

/// The run whose events/s is the median (for its wait profile and CPU split).
pub(super) fn middle(runs: &[IngestRun]) -> Option<&IngestRun> {
    let m = median_by(runs, |r| r.events_per_s);
    runs.iter().find(|r| r.events_per_s == m)
}

pub(super) fn middle_pg(runs: &[PgbenchRun]) -> Option<&PgbenchRun> {
    let m = median_by(runs, |r| r.tps);
    runs.iter().find(|r| r.tps == m)
}

pub(super) fn targets(r: &Results, cpus: usize) -> Vec<Target> {
    let per_level: Vec<(usize, f64)> = r
        .ingest
        .iter()
        .map(|l| (l.senders, median(ratios(l))))
        .collect();
    let measured = per_level
        .iter()
        .map(|(s, ratio)| format!("{} at {s}", times(*ratio)))
        .collect::<Vec<_>>()
        .join(", ");
    let worst = r
        .ingest
        .iter()
        .min_by(|a, b| median(ratios(a)).total_cmp(&median(ratios(b))));
    let why = worst.map_or(String::new(), |l| why_ingest_trails(l, cpus));
    // Since issue 20 the bar is the fixed minimal transaction (the anchor section): a
    // heavier design raises this comparison's bar with it, so it is shown, not judged.
    vec![Target {
        what: "for reference (not a target: it moves with the design): ingest events/s ÷ pgbench \
               tps of the ingestor's own SQL, same concurrency"
            .to_owned(),
        measured,
        met: None,
        why,
    }]
}

/// Where a level's CPU went, per event, for the ingest path and for pgbench: the gap
/// between them is what the ingestor and its load generator add.
fn why_ingest_trails(l: &IngestLevel, cpus: usize) -> String {
    let machine_cores = cpus as f64;
    let per_event = |cpu: f64, rate: f64| cpu * 1_000.0 / rate;
    let pg_ingest = median_by(&l.ingest, |x| per_event(x.cpu.postgres, x.events_per_s));
    let ingestor = median_by(&l.ingest, |x| {
        per_event(cores(&x.cpu.processes), x.events_per_s)
    });
    let rest = median_by(&l.ingest, |x| {
        let others = x.cpu.machine_busy * machine_cores - x.cpu.postgres - cores(&x.cpu.processes);
        per_event(others.max(0.0), x.events_per_s)
    });
    let pg_bench = median_by(&l.pgbench, |x| per_event(x.cpu.postgres, x.tps));
    let pgbench_rest = median_by(&l.pgbench, |x| {
        per_event(
            (x.cpu.machine_busy * machine_cores - x.cpu.postgres).max(0.0),
            x.tps,
        )
    });
    let ingest_total = pg_ingest + ingestor + rest;
    let bench_total = pg_bench + pgbench_rest;
    let busy_ingest = median_by(&l.ingest, |x| x.cpu.machine_busy);
    let busy_bench = median_by(&l.pgbench, |x| x.cpu.machine_busy);
    let opening = format!(
        "At {} senders the ingestor did {} events/s against pgbench's {} tps ({}), with the \
         machine {} busy in the ingest run and {} in pgbench's",
        l.senders,
        num(median_by(&l.ingest, |x| x.events_per_s)),
        num(median_by(&l.pgbench, |x| x.tps)),
        times(median(ratios(l))),
        pct(busy_ingest),
        pct(busy_bench),
    );
    let bound = if busy_ingest.max(busy_bench) >= 0.8 {
        format!(
            ": both are bound by the CPU of its {cpus} cores. Per event, the ingest path cost {} \
             of CPU — PostgreSQL {}, the ingestor {}, the load generator and the rest {} — \
             against pgbench's {} (PostgreSQL {}, pgbench and the rest {}). With the cores \
             shared, that ratio of costs, {}, is about the ratio of rates; reaching 0.8× means \
             taking about {} per event out of the ingest path.",
            ms(ingest_total),
            ms(pg_ingest),
            ms(ingestor),
            ms(rest),
            ms(bench_total),
            ms(pg_bench),
            ms(pgbench_rest),
            times(bench_total / ingest_total),
            ms((ingest_total - bench_total / 0.8).max(0.0)),
        )
    } else {
        format!(
            ": neither is bound by CPU. With {} event(s) at a time in flight, the rate follows \
             the time per event: {} from send to 200 (p50) against pgbench's {} per \
             transaction (average). The HTTP hop, the signature check and parsing, and the \
             ingestor's own work between its statements make the difference.",
            l.senders,
            ms(median_by(&l.ingest, |x| x.latency.p50_ms)),
            ms(median_by(&l.pgbench, |x| x.latency_avg_ms)),
        )
    };
    format!(
        "{opening}{bound} Fewer statements would not close the gap: pgbench runs the same SQL \
         and would gain as much. Where the ingestor's own CPU goes, from a `perf record \
         --call-graph dwarf` of it at 4 senders (2026-12-01): 41% of its samples in its nine \
         database round trips (sqlx and the kernel's send and receive), about 10% in tracing \
         (the per-event log line and span fields; 14% before span fields were appended \
         instead of re-parsed), 6% in `epoll_wait`, 4% in \
         HTTP, 3.5% parsing the event, 3% in sqlx's ping when each connection goes back to \
         its pool (sqlx 0.9 always sends it; since then the webhook path keeps a cleanly \
         ended event's connection for the next one instead). Pipelining the statements that do not depend on \
         each other (which sqlx does not offer) or running the load generator on another \
         machine would close it."
    )
}

pub(super) fn section(out: &mut String, s: &Settings, r: &Results) {
    let runs = s.runs;
    let _ = writeln!(
        out,
        "## 1. Ingest: signed webhooks verified, stored and applied per 200\n\n\
         Each `payment_intent.succeeded` is for its own CREATED payment, so every event is \
         verified, stored in `stripe_events`, applied (transition, ledger credit, wallet \
         balance, NOTIFY) and committed before its 200. pgbench runs the same statements in one \
         transaction per event at the same concurrency, back to back with the ingest run \
         (the ingest run first in odd runs, pgbench first in even ones, so a machine that \
         slows or speeds up during the benchmark favours neither).\n\n\
         | senders | events/s | p50 | p99 | pgbench tps | ingest ÷ pgbench | ingestor CPU | PostgreSQL CPU | machine busy |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for level in &r.ingest {
        let (i, p) = (&level.ingest, &level.pgbench);
        let ratios = ratios(level);
        let ratio_spread = spread(&ratios, |v| *v);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} cores | {:.2} cores | {} |",
            level.senders,
            with_spread(
                median_by(i, |x| x.events_per_s),
                spread(i, |x| x.events_per_s),
                runs,
                num
            ),
            ms(median_by(i, |x| x.latency.p50_ms)),
            ms(median_by(i, |x| x.latency.p99_ms)),
            with_spread(median_by(p, |x| x.tps), spread(p, |x| x.tps), runs, num),
            with_spread(median(ratios.iter().copied()), ratio_spread, runs, times),
            median_by(i, |x| cores(&x.cpu.processes)),
            median_by(i, |x| x.cpu.postgres),
            pct(median_by(i, |x| x.cpu.machine_busy)),
        );
    }
    let acknowledged: u64 = r
        .ingest
        .iter()
        .flat_map(|l| &l.ingest)
        .map(|x| x.acknowledged)
        .sum();
    let credited: u64 = r
        .ingest
        .iter()
        .flat_map(|l| &l.ingest)
        .map(|x| x.credited)
        .sum();
    let errors: u64 = r
        .ingest
        .iter()
        .flat_map(|l| &l.ingest)
        .map(|x| x.errors)
        .sum();
    let _ = writeln!(
        out,
        "\nCheck: {} events answered 200 over all runs and the database holds {} credits for \
         them ({}); {} requests failed.\n",
        num(acknowledged as f64),
        num(credited as f64),
        if acknowledged == credited {
            "one each"
        } else {
            "**they differ**"
        },
        num(errors as f64),
    );
    let _ = writeln!(
        out,
        "What the database sessions were doing (sampled, median run):\n"
    );
    let _ = writeln!(
        out,
        "| senders | ingest: busy sessions, top waits | pgbench: busy sessions, top waits |\n|---:|---|---|"
    );
    for level in &r.ingest {
        let (Some(i), Some(p)) = (middle(&level.ingest), middle_pg(&level.pgbench)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {:.1}: {} | {:.1}: {} |",
            level.senders,
            i.waits.mean_busy,
            i.waits.summary(4),
            p.waits.mean_busy,
            p.waits.summary(4)
        );
    }
    out.push('\n');
    group_commit(out, s, r);
}

pub(super) fn cores(processes: &[f64]) -> f64 {
    processes.first().copied().unwrap_or(f64::NAN)
}

fn group_commit(out: &mut String, s: &Settings, r: &Results) {
    let Some(base) = r.batching.iter().find(|b| b.events_per_tx == 1) else {
        return;
    };
    let base_rate = median_by(&base.runs, |x| x.events_per_s);
    let _ = writeln!(
        out,
        "### Group commit\n\n\
         With `INGESTOR_GROUP_COMMIT_MAX_EVENTS` above 1 (32 by default; the measured ingestor runs with 1) the ingestor stores \
         and applies the webhooks that arrive while its committers are busy in one database \
         transaction, up to that many, and answers each only after that commit. Nothing \
         waits on a timer, so a lone webhook goes straight through. Measured on a second \
         ingestor with {} events per commit at most and {} committers, in the same runs:\n\n\
         | senders | one commit per event | group commit | gain | p50 | p99 | pgbench, one event per transaction | group commit ÷ pgbench |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|",
        crate::services::GROUP_COMMIT_MAX_EVENTS,
        crate::services::GROUP_COMMIT_COMMITTERS,
    );
    for level in &r.grouped {
        let rate = median_by(&level.runs, |x| x.events_per_s);
        let single = r.ingest.iter().find(|l| l.senders == level.senders);
        let single_rate = single.map(|l| median_by(&l.ingest, |x| x.events_per_s));
        let pg = single.map(|l| median_by(&l.pgbench, |x| x.tps));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            level.senders,
            single_rate.map_or("–".into(), num),
            with_spread(rate, spread(&level.runs, |x| x.events_per_s), s.runs, num),
            single_rate.map_or("–".into(), |b| times(rate / b)),
            ms(median_by(&level.runs, |x| x.latency.p50_ms)),
            ms(median_by(&level.runs, |x| x.latency.p99_ms)),
            pg.map_or("–".into(), num),
            pg.map_or("–".into(), |p| times(rate / p)),
        );
    }
    let acknowledged: u64 = r
        .grouped
        .iter()
        .flat_map(|l| &l.runs)
        .map(|x| x.acknowledged)
        .sum();
    let credited: u64 = r
        .grouped
        .iter()
        .flat_map(|l| &l.runs)
        .map(|x| x.credited)
        .sum();
    let _ = writeln!(
        out,
        "\nCheck: {} events answered 200 through group commits and the database holds {} \
         credits for them.\n",
        num(acknowledged as f64),
        num(credited as f64)
    );
    let _ = writeln!(
        out,
        "The bound: pgbench running K events' statements per transaction (one commit, one WAL \
         flush and one NOTIFY lock for K events), {} clients.\n\n\
         | events per transaction | events/s | gain | transactions/s |\n|---:|---:|---:|---:|",
        s.batch_clients
    );
    for b in &r.batching {
        let rate = median_by(&b.runs, |x| x.events_per_s);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            b.events_per_tx,
            with_spread(rate, spread(&b.runs, |x| x.events_per_s), s.runs, num),
            times(rate / base_rate),
            num(median_by(&b.runs, |x| x.tps)),
        );
    }
    let best = r
        .batching
        .iter()
        .map(|b| median_by(&b.runs, |x| x.events_per_s) / base_rate)
        .fold(f64::NAN, f64::max);
    let _ = writeln!(
        out,
        "\n{}",
        if best < 1.3 {
            format!(
                "Even ideal batching gains little on this machine (at most {}): an event's cost \
                 is its statements, which batching does not remove, more than its commit.",
                times(best)
            )
        } else {
            format!(
                "Ideal batching could raise the event rate by up to {} here, by sharing one \
                 commit (WAL flush and NOTIFY lock) among several events.",
                times(best)
            )
        }
    );
    let overflow = r
        .batching
        .iter()
        .flat_map(|b| &b.runs)
        .chain(r.ingest.iter().flat_map(|l| &l.pgbench))
        .any(|p| p.credited < p.processed * p.events_per_tx as u64);
    if overflow {
        let _ = writeln!(
            out,
            "\nNote: in at least one pgbench run a client ran past its range of rows, so some \
             events hit an already-credited row (cheaper than a real event)."
        );
    }
    out.push('\n');
}
