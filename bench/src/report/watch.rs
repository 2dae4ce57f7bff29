//! The watch sections: fan-out against polling, end to end, and the watch curve.

use std::fmt::Write as _;

use super::{Target, mb, ms, num, pct, times, with_spread};
use crate::{
    config::Settings,
    stats::{median, median_by, spread},
    suite::Results,
    watch::WatchRun,
};

fn per_change(hub: &WatchRun) -> f64 {
    hub.queries as f64 / hub.changes.acked.max(1) as f64
}

fn pairs(r: &Results) -> impl Iterator<Item = (&WatchRun, &crate::poll::PollRun)> {
    r.hub.iter().zip(&r.poll)
}

/// What the periodic bursts of slow deliveries say, from the runs' timelines.
pub(super) fn stall_text(runs: &[WatchRun]) -> String {
    let period = median(runs.iter().filter_map(|h| h.stalls.period_s));
    let outside = median_by(runs, |h| h.stalls.p99_outside_ms);
    let inside = median_by(runs, |h| h.stalls.inside as f64);
    if !period.is_finite() {
        return format!(
            "No periodic bursts of slow deliveries were found; p99 outside bursts {}.",
            ms(outside)
        );
    }
    let cause = if (4.5..=5.5).contains(&period) {
        " That is the period of the hub's safety pass (`WatchConfig::safety_reread`, 5 s, \
         `payments-api/src/watch/sweep.rs`). It runs beside the doorbell reader on its own pool \
         connections and checks only `(id, version)` of the watched rows, `reread_batch` per \
         query; what the doorbells wait for then is the database's CPU spent on those checks, \
         or rows that moved without a doorbell queued with theirs."
    } else {
        ""
    };
    format!(
        "Slow deliveries come in bursts every {:.1} s (per-change timelines in \
         `target/bench/watch-*.csv`); about {} changes per run fell in a burst, and outside the \
         bursts p99 is {}.{cause}",
        period,
        num(inside),
        ms(outside),
    )
}

pub(super) fn targets(s: &Settings, r: &Results) -> Vec<Target> {
    let at = format!(
        "{} streams, {} changes/s",
        num(s.watchers as f64),
        num(s.change_rate)
    );
    let p99 = median_by(&r.hub, |h| h.delivery.latency.p99_ms);
    let rss = median_by(&r.hub, |h| h.rss_peak_kib as f64);
    let mut targets = vec![
        Target {
            what: format!("watch p99 (ingestor 200 → message) < 25 ms at {at}"),
            measured: format!(
                "{} (outside the periodic bursts: {})",
                ms(p99),
                ms(median_by(&r.hub, |h| h.stalls.p99_outside_ms))
            ),
            met: Some(p99 < 25.0),
            why: format!(
                "{}{} The hub's re-reads start at most once per coalescing window \
                 (`WatchConfig::coalesce`, `PAYMENTS_WATCH_COALESCE_MS`), so every change may \
                 wait up to that long; a shorter window trades latency for queries. Besides, \
                 producing {} changes/s keeps this two-core machine {} busy (the ingestor's own \
                 p99 is {}), which stretches every tail.",
                stall_text(&r.hub),
                if median_by(&r.hub, |h| h.stalls.p99_outside_ms) < 25.0 {
                    " Without the bursts the target would be met."
                } else {
                    ""
                },
                num(s.change_rate),
                pct(median_by(&r.hub, |h| h.cpu.machine_busy)),
                ms(median_by(&r.hub, |h| h.changes.ingest_latency.p99_ms)),
            ),
        },
        Target {
            what: format!(
                "payments-api resident memory < 200 MB with {} streams",
                num(s.watchers as f64)
            ),
            measured: format!(
                "{} with streams open (peak {}; {} before)",
                mb(median_by(&r.hub, |h| h.rss_streams_kib as f64)),
                mb(rss),
                mb(median_by(&r.hub, |h| h.rss_idle_kib as f64))
            ),
            met: Some(rss < 200.0 * 1024.0),
            why: "Memory grows with the number of streams (see the scaling section).".to_owned(),
        },
    ];
    if r.poll.is_empty() {
        return targets;
    }
    let latency =
        median(pairs(r).map(|(h, p)| p.delivery.latency.p50_ms / h.delivery.latency.p50_ms));
    let designed = median(pairs(r).map(|(h, p)| p.designed_queries_per_s / h.queries_per_s));
    let achieved = median(pairs(r).map(|(h, p)| p.queries_per_s / h.queries_per_s));
    targets.push(Target {
        what: "median latency ≥ 20× lower than polling every 500 ms".to_owned(),
        measured: format!(
            "{} lower ({} vs {})",
            times(latency),
            ms(median_by(&r.hub, |h| h.delivery.latency.p50_ms)),
            ms(median_by(&r.poll, |p| p.delivery.latency.p50_ms))
        ),
        met: Some(latency >= 20.0),
        why: String::new(),
    });
    targets.push(Target {
        what: "≥ 100× fewer database queries than polling".to_owned(),
        measured: format!(
            "{} fewer than polling needs ({} q/s); {} fewer than the {} q/s it achieved here",
            times(designed),
            num(median_by(&r.poll, |p| p.designed_queries_per_s)),
            times(achieved),
            num(median_by(&r.poll, |p| p.queries_per_s)),
        ),
        met: Some(designed >= 100.0),
        why: {
            let per_change = median_by(&r.hub, per_change);
            format!(
                "The hub's reader starts at most one re-read per coalescing window \
                 (`WatchConfig::coalesce`, `PAYMENTS_WATCH_COALESCE_MS`), so its query rate is \
                 bounded by the window, not the change rate: {:.2} queries per change here \
                 ({:.1} changes per query), {} q/s at {} changes/s, the safety pass's version \
                 checks included. A longer window batches more changes per query, for that much \
                 more latency.",
                per_change,
                1.0 / per_change,
                num(median_by(&r.hub, |h| h.queries_per_s)),
                num(s.change_rate),
            )
        },
    });
    targets
}

pub(super) fn fanout_section(out: &mut String, s: &Settings, r: &Results) {
    let runs = s.runs;
    let _ = writeln!(
        out,
        "## 2. WatchTransaction fan-out against polling\n\n\
         {} concurrent WatchTransaction streams on one payments-api over {} HTTP/2 connections, \
         while the watched transactions change at {}/s through the ingestor. The polling design \
         it replaces — every waiter reads its row every {} ms — runs with the same rows, \
         schedule and latency measure.\n\n\
         | design | p50 | p99 | max | changes missed | DB queries/s | queries per change | changes/s achieved | CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|",
        num(s.watchers as f64),
        s.channels,
        num(s.change_rate),
        s.poll_interval.as_millis(),
    );
    let h = &r.hub;
    let _ = writeln!(
        out,
        "| WatchTransaction (LISTEN/NOTIFY hub) | {} | {} | {} | {} | {} | {:.2} | {} | payments-api {:.2} cores |",
        with_spread(
            median_by(h, |x| x.delivery.latency.p50_ms),
            spread(h, |x| x.delivery.latency.p50_ms),
            runs,
            ms
        ),
        with_spread(
            median_by(h, |x| x.delivery.latency.p99_ms),
            spread(h, |x| x.delivery.latency.p99_ms),
            runs,
            ms
        ),
        ms(median_by(h, |x| x.delivery.latency.max_ms)),
        num(median_by(h, |x| x.delivery.missing as f64)),
        with_spread(
            median_by(h, |x| x.queries_per_s),
            spread(h, |x| x.queries_per_s),
            runs,
            num
        ),
        median_by(h, per_change),
        num(median_by(h, |x| x.changes.achieved_rate)),
        median_by(h, |x| x.cpu.processes.first().copied().unwrap_or(f64::NAN)),
    );
    let p = &r.poll;
    if !p.is_empty() {
        let _ = writeln!(
            out,
            "| polling every {} ms ({} connections) | {} | {} | {} | {} | {} | {} | {} | pollers {:.2} cores |",
            s.poll_interval.as_millis(),
            s.poll_pool,
            with_spread(
                median_by(p, |x| x.delivery.latency.p50_ms),
                spread(p, |x| x.delivery.latency.p50_ms),
                runs,
                ms
            ),
            with_spread(
                median_by(p, |x| x.delivery.latency.p99_ms),
                spread(p, |x| x.delivery.latency.p99_ms),
                runs,
                ms
            ),
            ms(median_by(p, |x| x.delivery.latency.max_ms)),
            num(median_by(p, |x| x.delivery.missing as f64)),
            with_spread(
                median_by(p, |x| x.queries_per_s),
                spread(p, |x| x.queries_per_s),
                runs,
                num
            ),
            num(median_by(p, |x| x.queries_per_s / x.changes.achieved_rate.max(1e-9))),
            num(median_by(p, |x| x.changes.achieved_rate)),
            median_by(p, |x| x.cpu.processes.first().copied().unwrap_or(f64::NAN)),
        );
        let achieved = median_by(p, |x| x.queries_per_s / x.designed_queries_per_s);
        let _ = writeln!(
            out,
            "\nPolling needs {} queries/s to keep its promise of a read every {} ms; it \
             achieved {} of that here ({} q/s), the rest queued for the pool, which is why its \
             latency is {}.",
            num(median_by(p, |x| x.designed_queries_per_s)),
            s.poll_interval.as_millis(),
            pct(achieved),
            num(median_by(p, |x| x.queries_per_s)),
            if achieved < 0.9 {
                "worse than the interval alone explains"
            } else {
                "about half the interval"
            },
        );
    }
    let _ = writeln!(
        out,
        "\n{} During the hub runs the machine was {} busy: PostgreSQL {:.2} cores, \
         webhook-ingestor {:.2}, payments-api {:.2}, the load generator {:.2}.",
        stall_text(h),
        pct(median_by(h, |x| x.cpu.machine_busy)),
        median_by(h, |x| x.cpu.postgres),
        median_by(h, |x| x.cpu.processes.get(1).copied().unwrap_or(f64::NAN)),
        median_by(h, |x| x.cpu.processes.first().copied().unwrap_or(f64::NAN)),
        median_by(h, |x| x.cpu.processes.get(2).copied().unwrap_or(f64::NAN)),
    );
    let _ = writeln!(
        out,
        "\nOf payments-api's statements during the changes, {} per second were the hub's batched \
         re-reads and version checks by its own count (`payments_watch_reads_total`); the proxy counted {} per \
         second in all. payments-api reported {} streams open.\n\n\
         payments-api memory (`VmRSS`): {} freshly started, {} with the streams open, {} at \
         peak during the changes; {} per 1,000 streams. It took {:.1} s to open all streams \
         (each open reads a snapshot). The ingestor's own p99 for these changes was {}.\n",
        num(median_by(h, |x| x.hub_reads.unwrap_or(f64::NAN) / x.cpu.secs)),
        num(median_by(h, |x| x.queries_per_s)),
        num(median_by(h, |x| x.streams_open_server.unwrap_or(f64::NAN))),
        mb(median_by(h, |x| x.rss_idle_kib as f64)),
        mb(median_by(h, |x| x.rss_streams_kib as f64)),
        mb(median_by(h, |x| x.rss_peak_kib as f64)),
        mb(median_by(h, |x| (x.rss_streams_kib as f64
            - x.rss_idle_kib as f64)
            * 1_000.0
            / x.watchers as f64)),
        median_by(h, |x| x.open_secs),
        ms(median_by(h, |x| x.changes.ingest_latency.p99_ms)),
    );
}

pub(super) fn e2e_section(out: &mut String, s: &Settings, r: &Results) {
    let e = &r.e2e;
    let _ = writeln!(
        out,
        "## 3. End to end: CreatePayment → SUCCEEDED on the watch stream\n\n\
         {} concurrent users, each with `pm_card_visa` attached first (AttachPaymentMethod, not \
         timed), loop: CreatePayment (payments-api confirms with stripe-sim) → WatchTransaction \
         until SUCCEEDED (stripe-sim delivers the webhook at once; the ingestor commits; the \
         hub pushes).\n\n\
         | users | flows/s | p50 | p99 | CreatePayment p50 / p99 | errors |\n|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} | {} / {} | {} |\n",
        s.e2e_users,
        s.e2e_users,
        with_spread(
            median_by(e, |x| x.flows_per_s),
            spread(e, |x| x.flows_per_s),
            s.runs,
            num
        ),
        with_spread(
            median_by(e, |x| x.latency.p50_ms),
            spread(e, |x| x.latency.p50_ms),
            s.runs,
            ms
        ),
        with_spread(
            median_by(e, |x| x.latency.p99_ms),
            spread(e, |x| x.latency.p99_ms),
            s.runs,
            ms
        ),
        ms(median_by(e, |x| x.create_latency.p50_ms)),
        ms(median_by(e, |x| x.create_latency.p99_ms)),
        num(e.iter().map(|x| x.errors as f64).sum()),
    );
    if let Some(one) = &r.e2e_single {
        let gap = one.first_to_final_latency.p50_ms;
        let nagle = if (35.0..=48.0).contains(&gap) && one.first_to_final_latency.samples > 10 {
            " That gap is the signature of Nagle's algorithm meeting delayed ACKs (about 40 ms on \
             Linux): payments-api's gRPC listener does not set `TCP_NODELAY` \
             (`TcpIncoming::from(listener)` in `payments-api/src/startup.rs` leaves it off, and \
             `Server::tcp_nodelay` does not apply to a custom incoming), so the SUCCEEDED \
             message waits for the client to acknowledge the snapshot sent just before it. \
             `TcpIncoming::from(listener).with_nodelay(Some(true))` fixes it."
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "One user alone: p50 {} per flow — CreatePayment {}, the watch's first message {} \
             after the call, then SUCCEEDED {} after that (p50 over {} flows; {} were already \
             settled at the snapshot).{nagle}\n",
            ms(one.latency.p50_ms),
            ms(one.create_latency.p50_ms),
            ms(one.first_message_latency.p50_ms),
            ms(gap),
            num(one.flows as f64),
            one.settled_before_watch,
        );
    }
    let core =
        |x: &crate::e2e::E2eRun, i: usize| x.cpu.processes.get(i).copied().unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "The watch stream's first message came {} after WatchTransaction was called (p50); in \
         {} of {} flows it was already SUCCEEDED. CPU over the window: machine {} busy — \
         payments-api {:.2}, webhook-ingestor {:.2}, stripe-sim {:.2}, PostgreSQL {:.2} cores \
         (the load generator has the rest).\n",
        ms(median_by(e, |x| x.first_message_latency.p50_ms)),
        num(e.iter().map(|x| x.settled_before_watch as f64).sum()),
        num(e.iter().map(|x| x.flows as f64).sum()),
        pct(median_by(e, |x| x.cpu.machine_busy)),
        median_by(e, |x| core(x, 0)),
        median_by(e, |x| core(x, 1)),
        median_by(e, |x| core(x, 2)),
        median_by(e, |x| x.cpu.postgres),
    );
    if let Some(slow) = &r.e2e_slow_stripe {
        let latency_s = s.stripe_latency_ms as f64 / 1_000.0;
        let _ = writeln!(
            out,
            "With stripe-sim holding every answer {} ms (about a real Stripe round trip; \
             `POST /test/faults action=delay_all`), one run: **{} flows/s**, p50 {}, p99 {}, \
             CreatePayment p50 {}, {} errors. payments-api holds no database connection or row \
             lock while Stripe answers (`service/charge.rs`, `drive`), so Stripe's latency \
             bounds each user, not the pool: {} users ÷ {} s = {} flows/s at most, against the \
             pool's {} connections ÷ {} s = {} per second if a connection were held.\n",
            s.stripe_latency_ms,
            num(slow.flows_per_s),
            ms(slow.latency.p50_ms),
            ms(slow.latency.p99_ms),
            ms(slow.create_latency.p50_ms),
            slow.errors,
            s.e2e_users,
            latency_s,
            num(s.e2e_users as f64 / latency_s),
            s.api_pool,
            latency_s,
            num(f64::from(s.api_pool) / latency_s),
        );
    }
    if let Some(err) = e.iter().find_map(|x| x.first_error.as_deref()) {
        let _ = writeln!(out, "First error: `{err}`\n");
    }
}
