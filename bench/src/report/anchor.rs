//! The ingestor against the fixed bar (issue 20): throughput side by side with the
//! anchor's pgbench scripts, the database's work per event, and the candidate designs.

use std::fmt::Write as _;

use super::{Target, ms, num, pct, times, with_spread};
use crate::{
    anchor::{AnchorScript, ScriptRun},
    config::Settings,
    dbwork::{PerEvent, Work},
    designs::Design,
    ingest::IngestRun,
    stats::{median, median_by, spread},
    suite::{AnchorLevel, DesignResult, Results},
};

/// The sender counts the throughput targets name.
const TARGET_SENDERS: [usize; 4] = [1, 4, 16, 64];
const GROUPED_TARGET_SENDERS: [usize; 2] = [16, 64];
/// The level whose per-event work the work targets compare.
const WORK_LEVEL: usize = 16;

fn ingest_ratios(l: &AnchorLevel) -> Vec<f64> {
    l.ingest
        .iter()
        .zip(&l.notify)
        .map(|(i, a)| i.events_per_s / a.tps)
        .collect()
}

fn grouped_ratios(l: &AnchorLevel) -> Vec<f64> {
    l.grouped
        .iter()
        .zip(&l.nonotify)
        .map(|(i, a)| i.events_per_s / a.tps)
        .collect()
}

/// The median of each per-event figure over runs.
fn median_work<'a>(works: impl Iterator<Item = &'a Work>) -> PerEvent {
    let all: Vec<PerEvent> = works.map(Work::per_event).collect();
    let m = |f: fn(&PerEvent) -> f64| median(all.iter().map(f));
    PerEvent {
        commits: m(|p| p.commits),
        buffers: m(|p| p.buffers),
        rows_written: m(|p| p.rows_written),
        rows_updated: m(|p| p.rows_updated),
        hot_ratio: m(|p| p.hot_ratio),
        wal_records: m(|p| p.wal_records),
        wal_bytes: m(|p| p.wal_bytes),
        wal_fpi_bytes: m(|p| p.wal_fpi_bytes),
        wal_own: !all.is_empty() && all.iter().all(|p| p.wal_own),
        cluster_wal_records: m(|p| p.cluster_wal_records),
        cluster_wal_bytes: m(|p| p.cluster_wal_bytes),
    }
}

fn ingest_work(runs: &[IngestRun]) -> PerEvent {
    median_work(runs.iter().filter_map(|r| r.work.as_ref()))
}

fn script_work(runs: &[ScriptRun]) -> PerEvent {
    median_work(runs.iter().map(|r| &r.work))
}

fn ingest_cpu(runs: &[IngestRun]) -> f64 {
    median_by(runs, |r| r.cpu.postgres * 1_000.0 / r.events_per_s)
}

fn script_cpu(runs: &[ScriptRun]) -> f64 {
    median_by(runs, |r| r.cpu.postgres * 1_000.0 / r.tps)
}

fn level(r: &Results, senders: usize) -> Option<&AnchorLevel> {
    r.anchor.iter().find(|l| l.senders == senders)
}

/// The level the work targets are judged at: 16 senders, else the busiest measured.
fn work_level(r: &Results) -> Option<&AnchorLevel> {
    level(r, WORK_LEVEL).or_else(|| r.anchor.iter().max_by_key(|l| l.senders))
}

pub(super) fn targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let ratio_target =
        |what: &str, wanted: &[usize], bar: f64, ratios: fn(&AnchorLevel) -> Vec<f64>| {
            let measured: Vec<(usize, f64)> = r
                .anchor
                .iter()
                .filter(|l| wanted.contains(&l.senders))
                .map(|l| (l.senders, median(ratios(l))))
                .collect();
            let all_there = wanted.iter().all(|w| measured.iter().any(|(s, _)| s == w));
            let text = measured
                .iter()
                .map(|(s, v)| format!("{} at {s}", times(*v)))
                .collect::<Vec<_>>()
                .join(", ");
            let met = all_there.then(|| measured.iter().all(|(_, v)| *v >= bar));
            (what.to_owned(), text, met)
        };
    let (what, measured, met) = ratio_target(
        "ingestor, one commit per event, ≥ 0.8 × the minimal transaction with NOTIFY (bench/anchor/) at 1, 4, 16 and 64 senders",
        &TARGET_SENDERS,
        0.8,
        ingest_ratios,
    );
    let why = lowest(r, &TARGET_SENDERS, ingest_ratios).map_or(String::new(), |l| {
        why_slower(
            l,
            &l.ingest,
            &l.notify,
            AnchorScript::Notify,
            "one statement per event",
        )
    });
    out.push(Target {
        what,
        measured,
        met,
        why,
    });
    let (what, measured, met) = ratio_target(
        "ingestor with group commit ≥ 1.0 × the minimal transaction without NOTIFY at 16 and 64 senders",
        &GROUPED_TARGET_SENDERS,
        1.0,
        grouped_ratios,
    );
    let why = lowest(r, &GROUPED_TARGET_SENDERS, grouped_ratios).map_or(String::new(), |l| {
        why_slower(
            l,
            &l.grouped,
            &l.nonotify,
            AnchorScript::NoNotify,
            "one statement per batch",
        )
    });
    out.push(Target {
        what,
        measured,
        met,
        why,
    });
    if let Some(l) = work_level(r) {
        let ours = ingest_work(&l.ingest);
        let bar = script_work(&l.notify);
        let wal_note = if ours.wal_own && bar.wal_own {
            ""
        } else {
            " (cluster-wide WAL)"
        };
        for (name, a, b) in [
            ("buffer accesses", ours.buffers, bar.buffers),
            ("WAL records", ours.wal_records, bar.wal_records),
        ] {
            let ratio = a / b;
            out.push(Target {
                what: format!(
                    "{name} per event ≤ 1.5 × the minimal transaction's ({} senders, one commit per event against the anchor with NOTIFY)",
                    l.senders
                ),
                measured: format!(
                    "{:.1} against {:.1}: {}{}",
                    a,
                    b,
                    times(ratio),
                    if name == "WAL records" { wal_note } else { "" }
                ),
                met: ratio.is_finite().then_some(ratio <= 1.5),
                why: format!(
                    "Where the extra {name} go is in the per-event work table of the side-by-side \
                     section; the candidate designs below measure variations of the one \
                     statement per event."
                ),
            });
        }
    }
    out
}

/// Of the levels at `wanted` senders, the one whose median ratio is lowest.
fn lowest<'a>(
    r: &'a Results,
    wanted: &[usize],
    ratios: fn(&AnchorLevel) -> Vec<f64>,
) -> Option<&'a AnchorLevel> {
    r.anchor
        .iter()
        .filter(|l| wanted.contains(&l.senders))
        .map(|l| (l, median(ratios(l))))
        .filter(|(_, v)| v.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(l, _)| l)
}

/// Why the ingestor is slower than the anchor at level `l`: its work and CPU per event
/// (`ours`, one commit per event or group commit) against the anchor script's (`bar`).
fn why_slower(
    l: &AnchorLevel,
    ours: &[IngestRun],
    bar: &[ScriptRun],
    script: AnchorScript,
    trips: &str,
) -> String {
    let (work, bar_work) = (ingest_work(ours), script_work(bar));
    let per_event = |cores: f64, rate: f64| cores * 1_000.0 / rate;
    let ingestor = median_by(ours, |x| {
        per_event(
            x.cpu.processes.first().copied().unwrap_or(f64::NAN),
            x.events_per_s,
        )
    });
    let generator = median_by(ours, |x| per_event(x.cpu.own, x.events_per_s));
    let pgbench = median_by(bar, |x| {
        per_event(x.cpu.processes.first().copied().unwrap_or(f64::NAN), x.tps)
    });
    let cpu = |v: f64| format!("{v:.2} ms");
    format!(
        "Lowest at {} senders. Per event there, the ingestor cost PostgreSQL {:.0} buffer \
         accesses, {:.1} WAL records and {} of WAL, writing {:.1} rows ({} of its updates HOT), \
         and {} of its CPU; the ingestor's own CPU was {} and the load generator's {} \
         (machine {} busy). The minimal transaction: {:.0}, {:.1}, {}, {:.1} rows ({} HOT), {} \
         of PostgreSQL's CPU and {} of pgbench's (machine {} busy). The ingestor sends \
         {trips}, the minimal transaction {} round trips per event; the ingestor's writes \
         the rows the real schema keeps besides (the audit trail, the charge's index, the \
         unsettled index), and outside the database each event also pays the HTTP hop, all \
         on the same two cores.",
        l.senders,
        work.buffers,
        work.wal_records,
        kb(work.wal_bytes),
        work.rows_written,
        pct(work.hot_ratio),
        cpu(ingest_cpu(ours)),
        cpu(ingestor),
        cpu(generator),
        pct(median_by(ours, |x| x.cpu.machine_busy)),
        bar_work.buffers,
        bar_work.wal_records,
        kb(bar_work.wal_bytes),
        bar_work.rows_written,
        pct(bar_work.hot_ratio),
        cpu(script_cpu(bar)),
        cpu(pgbench),
        pct(median_by(bar, |x| x.cpu.machine_busy)),
        script.statements(),
    )
}

fn kb(bytes: f64) -> String {
    if bytes.is_finite() {
        format!("{:.1} KB", bytes / 1_000.0)
    } else {
        "–".to_owned()
    }
}

pub(super) fn section(out: &mut String, s: &Settings, r: &Results) {
    let runs = s.runs;
    let _ = writeln!(
        out,
        "## Ingest against the minimal transaction (the fixed bar)\n\n\
         The bar is fixed, whatever the ingestor's design: `bench/anchor/ingest_notify.sql` and \
         `ingest_nonotify.sql` (the least work any correct design does per webhook: insert the \
         event at its real size, update the transaction, insert the ledger row, update the \
         wallet, with and without NOTIFY, in one commit), run by `pgbench -M prepared -n -c N \
         -j min(N,2)` on their own tables (`bench/anchor/schema.sql`) in a database of their \
         own. In each run and at each sender count the four take turns back to back (each run \
         starting the turn at another one): the ingestor answering each webhook after its own \
         commit, the ingestor with group commit (up to {} events per commit, {} committers), \
         and the two anchor scripts. Ratios are taken within a run, then their median.\n\n\
         | senders | ingestor, one commit per event | group commit | anchor with NOTIFY | anchor without NOTIFY | ingestor ÷ anchor with NOTIFY | group commit ÷ anchor without NOTIFY | ingestor p50 / p99 |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|",
        crate::services::GROUP_COMMIT_MAX_EVENTS,
        crate::services::GROUP_COMMIT_COMMITTERS,
    );
    for l in &r.anchor {
        let rate = |v: &[IngestRun]| {
            with_spread(
                median_by(v, |x| x.events_per_s),
                spread(v, |x| x.events_per_s),
                runs,
                num,
            )
        };
        let tps =
            |v: &[ScriptRun]| with_spread(median_by(v, |x| x.tps), spread(v, |x| x.tps), runs, num);
        let ratio =
            |v: Vec<f64>| with_spread(median(v.iter().copied()), spread(&v, |x| *x), runs, times);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            l.senders,
            rate(&l.ingest),
            rate(&l.grouped),
            tps(&l.notify),
            tps(&l.nonotify),
            ratio(ingest_ratios(l)),
            ratio(grouped_ratios(l)),
            ms(median_by(&l.ingest, |x| x.latency.p50_ms)),
            ms(median_by(&l.ingest, |x| x.latency.p99_ms)),
        );
    }
    let answered: u64 = r
        .anchor
        .iter()
        .flat_map(|l| l.ingest.iter().chain(&l.grouped))
        .map(|x| x.acknowledged)
        .sum();
    let credited: u64 = r
        .anchor
        .iter()
        .flat_map(|l| l.ingest.iter().chain(&l.grouped))
        .map(|x| x.credited)
        .sum();
    let _ = writeln!(
        out,
        "\nCheck: {} webhooks answered 200 in these runs and the database holds {} credits for \
         them ({}).\n",
        num(answered as f64),
        num(credited as f64),
        if answered == credited {
            "one each"
        } else {
            "**they differ**"
        }
    );
    stolen(out, r);
    work_table(out, r);
}

/// How much of the measured windows the hypervisor gave to other machines: the figures
/// move with it, the ingestor's and the anchor's alike, which a ratio within one run
/// cancels only in part (the contenders take turns, they do not run at once).
fn stolen(out: &mut String, r: &Results) {
    let shares: Vec<f64> = r
        .anchor
        .iter()
        .flat_map(|l| {
            let ingest = l
                .ingest
                .iter()
                .chain(&l.grouped)
                .map(|x| x.cpu.machine_stolen);
            let anchor = l
                .notify
                .iter()
                .chain(&l.nonotify)
                .map(|x| x.cpu.machine_stolen);
            ingest.chain(anchor)
        })
        .filter(|s| s.is_finite())
        .collect();
    if shares.is_empty() {
        return;
    }
    let (low, high) = spread(&shares, |x| *x);
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let repeated: usize = r.anchor.iter().map(|l| l.repeated).sum();
    let _ = writeln!(
        out,
        "CPU time stolen by the hypervisor (`/proc/stat`), as a share of each measured window: \
         median {}, from {} to {} over the {} windows kept. {} measured again because more \
         than {} of theirs was stolen (up to {} times each; the last is kept).\n",
        pct(median(shares.iter().copied())),
        pct(low),
        pct(high),
        shares.len(),
        match repeated {
            1 => "One window was".to_owned(),
            n => format!("{n} windows were"),
        },
        pct(crate::suite::STOLEN_LIMIT),
        crate::suite::MAX_REPEATS,
    );
}

fn work_table(out: &mut String, r: &Results) {
    let _ = writeln!(
        out,
        "### The database's work per event\n\n\
         From PostgreSQL's statistics views, a snapshot before and after each measured run, the \
         difference divided by the events of the run (medians over runs): commits and buffer \
         accesses (`blks_hit + blks_read`, catalog included) from `pg_stat_database`; rows \
         written (inserted + updated + deleted, triggers' writes included) and the share of \
         updates that were HOT from `pg_stat_user_tables`; WAL records and bytes. Round trips \
         are counted from the code: the ingestor's `inbox::receive` path for a matched \
         `payment_intent.succeeded` sends one statement that commits on its own \
         (`store::WRITE_SUCCESSES`, which `pgbench.rs` reproduces); with group commit a batch \
         of such events (distinct events and transactions) sends the same statement once, one \
         row per event. The ingestor's commits include its doorbell's \
         (`INGESTOR_DOORBELL_AFTER_COMMIT`, on by default): a transaction of its own that only \
         NOTIFYs, right after the commits, for every commit queued since its last one (at most \
         one every 2 ms under load).\n\n\
         | senders | | round trips | commits | buffer accesses | rows written | HOT updates | WAL records | WAL bytes (of which full-page images) | PostgreSQL CPU |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let row = |out: &mut String, senders: usize, name: &str, trips: &str, p: PerEvent, cpu: f64| {
        let _ = writeln!(
            out,
            "| {senders} | {name} | {trips} | {:.2} | {:.0} | {:.1} | {} | {:.1} | {} ({}) | {} |",
            p.commits,
            p.buffers,
            p.rows_written,
            pct(p.hot_ratio),
            p.wal_records,
            kb(p.wal_bytes),
            kb(p.wal_fpi_bytes),
            ms(cpu),
        );
    };
    for l in &r.anchor {
        row(
            out,
            l.senders,
            "ingestor",
            "1",
            ingest_work(&l.ingest),
            ingest_cpu(&l.ingest),
        );
        row(
            out,
            l.senders,
            "group commit",
            "1 per batch of successes",
            ingest_work(&l.grouped),
            ingest_cpu(&l.grouped),
        );
        row(
            out,
            l.senders,
            "anchor with NOTIFY",
            &AnchorScript::Notify.statements().to_string(),
            script_work(&l.notify),
            script_cpu(&l.notify),
        );
        row(
            out,
            l.senders,
            "anchor without NOTIFY",
            &AnchorScript::NoNotify.statements().to_string(),
            script_work(&l.nonotify),
            script_cpu(&l.nonotify),
        );
    }
    let own = r
        .anchor
        .iter()
        .all(|l| ingest_work(&l.ingest).wal_own && script_work(&l.notify).wal_own);
    let wal = if own {
        "WAL is each database's own: the run's WAL is read back with `pg_walinspect` and only the \
         records of transactions that touched that database's relations are counted (with their \
         commit records), so other work on the server does not count."
    } else {
        "**WAL is cluster-wide here** (`pg_stat_wal`; `pg_walinspect` could not read some \
         windows back): whatever else ran on the server during a window is in its WAL figures, \
         so only a quiet server gives them."
    };
    let idle = r.anchor_idle.as_ref().map_or(String::new(), |w| {
        // The background's share of an ingestor run: its rate over the run's span.
        let share = |f: fn(&Work) -> f64| {
            median(r.anchor.iter().flat_map(|l| &l.ingest).filter_map(|x| {
                let run = x.work.as_ref()?;
                Some(f(w) / w.secs * run.secs / (run.events as f64).max(1.0))
            }))
        };
        format!(
            " The services' database with no load did {:.1} commits and {:.0} buffer accesses a \
             second (the retry worker, the outbox and the pools of both ingestors and \
             payments-api); that is counted in the ingestor's figures, not subtracted: about \
             {:.2} commits and {:.1} buffer accesses per event in the median run.",
            w.total.xact_commit / w.secs,
            (w.total.blks_hit + w.total.blks_read) / w.secs,
            share(|w| w.total.xact_commit),
            share(|w| w.total.blks_hit + w.total.blks_read),
        )
    });
    let _ = writeln!(
        out,
        "\nNotes. {wal} Buffer accesses and rows are per database, so each contender has one of \
         its own (the services' database, the anchor's). A run's window is the whole run: the \
         ingestor's 1 s warm-up is counted with its events (and divided by all of its 200s), \
         pgbench's connection start-up with its transactions. PostgreSQL CPU is every \
         `postgres` process on the machine over the measured window.{idle} Each run starts \
         after a VACUUM and a CHECKPOINT of its database, so the first change of each page in \
         a run writes a full-page image, shown apart. The anchor's events \
         land on 10,000 existing wallets and random transactions among 2,000,000 (some \
         repeatedly: later updates of an already succeeded row are cheaper); the ingestor's \
         land on 10,000 existing wallets too, each on its own CREATED payment.\n"
    );
}

pub(super) fn designs_section(out: &mut String, s: &Settings, r: &Results) {
    if r.designs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Candidate designs of the per-event transaction\n\n\
         The ingestor's own statements (the first row) beside designs it does not run: \
         pgbench scripts (`bench/src/designs.rs`, written to `target/bench/design-*.sql`) doing one \
         `payment_intent.succeeded` of a CREATED payment each against the real schema \
         (`migrations/` applied to a database of their own, rows pre-inserted as for the \
         ingestor), each run back to back with the anchor with NOTIFY at the same client count. \
         The designs run in this order and the last one changes the schema first, so each \
         step shows what one feature costs. The one-statement designs insert \
         the event once, already `applied` (or `unmatched`, for the retry worker, when no \
         payment matched), update the transaction only from the status they read (so the audit \
         row has its `from_status` without a lock), and a repeated event id fails the \
         statement (the caller answers 200 as for a duplicate).\n\n\
         | design | clients | round trips | events/s | ÷ anchor with NOTIFY | buffer accesses | rows written | HOT updates | WAL records | WAL bytes (full-page images) | PostgreSQL CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let ratios = |d: &DesignResult| -> Vec<f64> {
        d.runs
            .iter()
            .zip(&d.anchor)
            .map(|(x, a)| x.tps / a.tps)
            .collect()
    };
    for d in &r.designs {
        let p = script_work(&d.runs);
        let rs = ratios(d);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} | {:.1} | {} | {:.1} | {} ({}) | {} |",
            d.design.label(),
            d.clients,
            d.design.statements(),
            with_spread(
                median_by(&d.runs, |x| x.tps),
                spread(&d.runs, |x| x.tps),
                s.runs,
                num
            ),
            with_spread(
                median(rs.iter().copied()),
                spread(&rs, |x| *x),
                s.runs,
                times
            ),
            p.buffers,
            p.rows_written,
            pct(p.hot_ratio),
            p.wal_records,
            kb(p.wal_bytes),
            kb(p.wal_fpi_bytes),
            ms(script_cpu(&d.runs)),
        );
    }
    let anchor_runs: Vec<ScriptRun> = r.designs.iter().flat_map(|d| d.anchor.clone()).collect();
    let a = script_work(&anchor_runs);
    let _ = writeln!(
        out,
        "| anchor with NOTIFY (all its runs here) | {} | 7 | {} | 1.00× | {:.0} | {:.1} | {} | {:.1} | {} ({}) | {} |\n",
        r.designs.first().map_or(0, |d| d.clients),
        num(median_by(&anchor_runs, |x| x.tps)),
        a.buffers,
        a.rows_written,
        pct(a.hot_ratio),
        a.wal_records,
        kb(a.wal_bytes),
        kb(a.wal_fpi_bytes),
        ms(script_cpu(&anchor_runs)),
    );
    let processed: u64 = r.designs.iter().map(|d| d.processed).sum();
    let credited: u64 = r.designs.iter().map(|d| d.credited).sum();
    let _ = writeln!(
        out,
        "Check: {} events committed by the designs' pgbench runs and {} ledger credits for them \
         ({}).\n",
        num(processed as f64),
        num(credited as f64),
        if processed == credited {
            "one each"
        } else {
            "**they differ**"
        }
    );
    tables_breakdown(out, r);
    findings(out, r);
}

/// Per table and design: rows inserted / updated (HOT) and blocks touched per event.
fn tables_breakdown(out: &mut String, r: &Results) {
    let designs: Vec<&DesignResult> = {
        let first = r.designs.first().map_or(0, |d| d.clients);
        r.designs.iter().filter(|d| d.clients == first).collect()
    };
    let mut names: Vec<String> = designs
        .iter()
        .flat_map(|d| d.runs.iter().flat_map(|x| x.work.tables.keys().cloned()))
        .collect();
    names.sort();
    names.dedup();
    let _ = write!(
        out,
        "Per table, per event (median run): rows inserted / updated (of which HOT), and heap + \
         index + TOAST blocks touched:\n\n| table |"
    );
    for d in &designs {
        let _ = write!(out, " {} |", d.design.slug());
    }
    let _ = write!(out, "\n|---|");
    for _ in &designs {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    for name in names {
        let _ = write!(out, "| `{name}` |");
        for d in &designs {
            let Some(run) = middle(&d.runs) else {
                let _ = write!(out, " – |");
                continue;
            };
            let per = run.work.tables_per_event();
            let cell = per.iter().find(|(n, _)| *n == name).map_or_else(
                || "–".to_owned(),
                |(_, t)| {
                    format!(
                        "{:.1} ins / {:.1} upd ({:.1} HOT), {:.1} blks",
                        t.ins,
                        t.upd,
                        t.hot_upd,
                        t.heap_blks + t.idx_blks + t.toast_blks
                    )
                },
            );
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out.push('\n');
}

fn middle(runs: &[ScriptRun]) -> Option<&ScriptRun> {
    let m = median_by(runs, |r| r.tps);
    runs.iter().find(|r| r.tps == m)
}

/// What each step between designs saved, and which measured best.
fn findings(out: &mut String, r: &Results) {
    let first = r.designs.first().map_or(0, |d| d.clients);
    let find = |d: Design| {
        r.designs
            .iter()
            .find(|x| x.design == d && x.clients == first)
    };
    let ratio = |d: &DesignResult| median(d.runs.iter().zip(&d.anchor).map(|(x, a)| x.tps / a.tps));
    let mut lines = Vec::new();
    let steps = [
        (
            Design::Today,
            Design::Cte,
            "the bare CTE instead of the ingestor's guarded statement",
        ),
        (
            Design::Cte,
            Design::Function,
            "a plpgsql function instead of the CTE",
        ),
        (
            Design::Cte,
            Design::CtePayloadText,
            "the payload stored as text instead of jsonb",
        ),
    ];
    for (from, to, what) in steps {
        let (Some(a), Some(b)) = (find(from), find(to)) else {
            continue;
        };
        let (pa, pb) = (script_work(&a.runs), script_work(&b.runs));
        lines.push(format!(
            "- **{what}** ({} → {}): buffer accesses {:.0} → {:.0}, WAL records {:.1} → {:.1}, \
             WAL {} → {}, rows written {:.1} → {:.1}, PostgreSQL CPU {} → {}; ÷ anchor {} → {}.",
            from.slug(),
            to.slug(),
            pa.buffers,
            pb.buffers,
            pa.wal_records,
            pb.wal_records,
            kb(pa.wal_bytes),
            kb(pb.wal_bytes),
            pa.rows_written,
            pb.rows_written,
            ms(script_cpu(&a.runs)),
            ms(script_cpu(&b.runs)),
            times(ratio(a)),
            times(ratio(b)),
        ));
    }
    let best = r
        .designs
        .iter()
        .filter(|d| d.clients == first)
        .max_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    let _ = writeln!(out, "What each step changed, at {first} clients:\n");
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    if let Some(b) = best {
        let p = script_work(&b.runs);
        let _ = writeln!(
            out,
            "\nMeasured best: **{}**, {} of the anchor with NOTIFY, with {:.0} buffer accesses and \
             {:.1} WAL records per event.",
            b.design.label(),
            times(ratio(b)),
            p.buffers,
            p.wal_records,
        );
    }
    out.push('\n');
}
