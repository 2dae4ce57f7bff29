//! The ingest curve: events/s as senders double, with what each event costs the
//! ingestor and PostgreSQL at each step, and where the gain stops.

use std::fmt::Write as _;

use super::{
    ingest::{cores, middle, middle_pg},
    ms, num, pct, times,
};
use crate::{
    config::Settings,
    stats::median_by,
    suite::{IngestLevel, Results},
};

pub(super) fn section(out: &mut String, s: &Settings, r: &Results) {
    if r.ingest.len() < 2 {
        return;
    }
    let rates: Vec<(usize, f64, &IngestLevel)> = r
        .ingest
        .iter()
        .map(|l| (l.senders, median_by(&l.ingest, |x| x.events_per_s), l))
        .collect();
    let _ = writeln!(
        out,
        "### Ingest\n\n\
         | senders | events/s | gain per step | p50 | ingestor CPU per event | PostgreSQL CPU per event (pgbench) | busy DB sessions |\n\
         |---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut previous: Option<f64> = None;
    let mut knee: Option<(usize, usize, f64)> = None;
    let mut last_senders = 0;
    for (senders, rate, level) in &rates {
        let gain = previous.map(|p| rate / p);
        if let Some(g) = gain
            && g < 1.25
            && knee.is_none()
        {
            knee = Some((last_senders, *senders, g));
        }
        let i = &level.ingest;
        let per_event = |cores: f64, rate: f64| cores * 1_000.0 / rate;
        let _ = writeln!(
            out,
            "| {senders} | {} | {} | {} | {} | {} ({}) | {:.1} |",
            num(*rate),
            gain.map_or("–".to_owned(), times),
            ms(median_by(i, |x| x.latency.p50_ms)),
            ms(median_by(i, |x| per_event(
                cores(&x.cpu.processes),
                x.events_per_s
            ))),
            ms(median_by(i, |x| per_event(x.cpu.postgres, x.events_per_s))),
            ms(median_by(&level.pgbench, |x| per_event(
                x.cpu.postgres,
                x.tps
            ))),
            median_by(i, |x| x.waits.mean_busy),
        );
        previous = Some(*rate);
        last_senders = *senders;
    }
    let Some((top_senders, _, top)) = rates.last() else {
        return;
    };
    let Some(run) = middle(&top.ingest) else {
        return;
    };
    let busy = run.cpu.machine_busy;
    let ingestor = cores(&run.cpu.processes);
    let postgres = run.cpu.postgres;
    let cpus = std::thread::available_parallelism().map_or(2.0, |n| n.get() as f64);
    let rest = (busy * cpus - ingestor - postgres).max(0.0);
    let knee_text = match knee {
        Some((from, to, g)) => format!(
            "Throughput stops growing between {from} and {to} senders (that step gains only {}).",
            times(g)
        ),
        None => "Throughput still grows at every step measured: no knee in this range.".to_owned(),
    };
    let cause = if busy >= 0.85 {
        format!(
            "The limit at {top_senders} senders is **CPU**: the machine is {} busy — \
             PostgreSQL {postgres:.2} cores, the ingestor {ingestor:.2}, the rest \
             (load generator, kernel, others) {rest:.2}. ",
            pct(busy)
        )
    } else {
        format!(
            "At {top_senders} senders the machine is only {} busy, so the limit is waiting, \
             not CPU. ",
            pct(busy)
        )
    };
    let notify = run.waits.share("Lock:object");
    let wal = run.waits.share("IO:WALSync") + run.waits.share("LWLock:WALWrite");
    let idle = run.waits.share("idle in transaction");
    let pool = if run.waits.mean_busy >= f64::from(s.ingestor_pool) * 0.8
        && *top_senders > s.ingestor_pool as usize
    {
        format!(
            " The ingestor's pool ({} connections) is in use all the time while {top_senders} \
             senders wait for it, so requests queue in the ingestor, not in PostgreSQL.",
            s.ingestor_pool
        )
    } else {
        String::new()
    };
    let pg_waits = middle_pg(&top.pgbench).map_or(String::new(), |p| {
        format!(
            " pgbench, with {top_senders} sessions committing at once, shows where more \
             concurrency would go: {}.",
            p.waits.summary(3)
        )
    });
    let _ = writeln!(
        out,
        "\n{knee_text} {cause}Of the busy database sessions, {} waited for NOTIFY's commit lock \
         (`Lock:object`), {} for the WAL flush and {} were idle in a transaction waiting for the \
         ingestor's next statement.{pool}{pg_waits} Latency p50 goes from {} at {} sender(s) to {} at \
         {top_senders}.\n",
        pct(notify),
        pct(wal),
        pct(idle),
        ms(median_by(&r.ingest[0].ingest, |x| x.latency.p50_ms)),
        r.ingest[0].senders,
        ms(median_by(&top.ingest, |x| x.latency.p50_ms)),
    );
}
