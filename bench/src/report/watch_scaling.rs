//! The watch curves: streams doubling at a fixed change rate, and the change rate
//! doubling at a fixed number of streams, with where the knee is and why.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{mb, ms, num, pct, times};
use crate::{suite::Results, watch::WatchRun};

fn core(run: &WatchRun, i: usize) -> f64 {
    run.cpu.processes.get(i).copied().unwrap_or(f64::NAN)
}

fn per_change(run: &WatchRun) -> f64 {
    run.queries as f64 / run.changes.acked.max(1) as f64
}

fn per_thousand_streams(run: &WatchRun) -> f64 {
    (run.rss_streams_kib as f64 - run.rss_idle_kib as f64) * 1_000.0 / run.watchers as f64
}

/// The longest series of points sharing one key (at least two points).
fn series<K: Ord + Copy>(points: &[WatchRun], key: impl Fn(&WatchRun) -> K) -> Vec<&WatchRun> {
    let mut groups: BTreeMap<K, Vec<&WatchRun>> = BTreeMap::new();
    for p in points {
        groups.entry(key(p)).or_default().push(p);
    }
    groups
        .into_values()
        .filter(|g| g.len() >= 2)
        .max_by_key(Vec::len)
        .unwrap_or_default()
}

pub(super) fn section(out: &mut String, r: &Results) {
    let points = &r.scaling;
    if points.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### WatchTransaction\n\n\
         One run per point, payments-api restarted before each. `machine` is the share of both \
         cores busy; the changes themselves (a signed webhook, a commit in the ingestor, a \
         NOTIFY) are generated on the same machine.\n\n\
         | streams | changes/s (target) | p50 | p99 | p99 outside bursts | ingest p99 | API queries/s | per change | API CPU | API CPU per change | RSS | per 1,000 streams | machine |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in points {
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {:.2} | {:.2} cores | {} | {} | {} | {} |",
            num(p.watchers as f64),
            num(p.changes.achieved_rate),
            num(p.rate),
            ms(p.delivery.latency.p50_ms),
            ms(p.delivery.latency.p99_ms),
            ms(p.stalls.p99_outside_ms),
            ms(p.changes.ingest_latency.p99_ms),
            num(p.queries_per_s),
            per_change(p),
            core(p, 0),
            ms(core(p, 0) * p.cpu.secs * 1_000.0 / p.changes.acked.max(1) as f64),
            mb(p.rss_streams_kib as f64),
            mb(per_thousand_streams(p)),
            pct(p.cpu.machine_busy),
        );
    }
    let _ = writeln!(out, "\n{}\n", super::watch::stall_text(points));
    streams_axis(out, &series(points, |p| p.rate as u64));
    rate_axis(out, &series(points, |p| p.watchers));
}

fn streams_axis(out: &mut String, s: &[&WatchRun]) {
    let (Some(first), Some(last)) = (s.first(), s.last()) else {
        return;
    };
    let load = last.watchers as f64 / first.watchers as f64;
    let mem = last.rss_streams_kib as f64 - last.rss_idle_kib as f64;
    let mem_first = first.rss_streams_kib as f64 - first.rss_idle_kib as f64;
    let bursty = s
        .iter()
        .any(|p| p.stalls.period_s.is_some_and(f64::is_finite));
    let bursts = if bursty {
        format!(
            " (outside the periodic bursts {} → {}: the bursts grow with the number of watched \
             transactions)",
            ms(first.stalls.p99_outside_ms),
            ms(last.stalls.p99_outside_ms)
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "**More streams, same change rate ({}/s).** From {} to {} streams ({}×): memory above \
         the idle process grows {} ({} → {}, about {} per 1,000 streams: linear in streams), \
         API queries/s {} ({} → {}: they follow changes, not streams), API CPU {:.2} → {:.2} \
         cores, p99 {} → {}{}.\n",
        num(first.rate),
        num(first.watchers as f64),
        num(last.watchers as f64),
        num(load),
        times(mem / mem_first),
        mb(mem_first),
        mb(mem),
        mb(per_thousand_streams(last)),
        times(last.queries_per_s / first.queries_per_s),
        num(first.queries_per_s),
        num(last.queries_per_s),
        core(first, 0),
        core(last, 0),
        ms(first.delivery.latency.p99_ms),
        ms(last.delivery.latency.p99_ms),
        bursts,
    );
}

fn rate_axis(out: &mut String, s: &[&WatchRun]) {
    let Some(first) = s.first() else {
        return;
    };
    let mut sorted: Vec<&WatchRun> = s.to_vec();
    sorted.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    // Bursts from the safety re-read are there at every rate; the knee is where the
    // rest degrades.
    let knee = sorted.iter().find(|p| {
        p.cpu.machine_busy >= 0.9
            || p.stalls.p99_outside_ms >= 25.0
            || p.changes.achieved_rate < 0.95 * p.rate
    });
    let capped = sorted
        .iter()
        .find(|p| p.changes.achieved_rate < 0.95 * p.rate)
        .map_or(String::new(), |p| {
            format!(
                " At {}/s asked, the ingestor acknowledged only {}/s (its p99 {}): the change rate \
                 itself is capped by the ingest path (section 1), before the fan-out is.",
                num(p.rate),
                num(p.changes.achieved_rate),
                ms(p.changes.ingest_latency.p99_ms),
            )
        });
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    let knee_text = match knee {
        Some(p) => {
            format!(
                "The knee is at **{} changes/s**: the machine is {} busy (PostgreSQL {:.2} cores, \
             webhook-ingestor {:.2}, payments-api {:.2}, the load generator {:.2}), the \
             ingestor's own p99 is {} and the watchers' p99 outside the bursts {}. The fan-out \
             is not what saturates: payments-api uses {:.2} cores there. What does is producing the changes \
             — one webhook, one notifying commit each — on two cores; DB sessions at that \
             point: {}.",
                num(p.rate),
                pct(p.cpu.machine_busy),
                p.cpu.postgres,
                core(p, 1),
                core(p, 0),
                core(p, 2),
                ms(p.changes.ingest_latency.p99_ms),
                ms(p.stalls.p99_outside_ms),
                core(p, 0),
                p.waits.summary(4),
            ) + &capped
        }
        None => "No knee in this range: every rate was kept with p99 under 25 ms.".to_owned(),
    };
    let _ = writeln!(
        out,
        "**Faster changes, same streams ({}).** From {}/s to {}/s: API queries/s grow {} and \
         queries per change go {:.2} → {:.2} (the hub's re-reads batch more ids as doorbells \
         arrive faster: sub-linear), API CPU {:.2} → {:.2} cores. {knee_text}\n",
        num(first.watchers as f64),
        num(lo.rate),
        num(hi.rate),
        times(hi.queries_per_s / lo.queries_per_s),
        per_change(lo),
        per_change(hi),
        core(lo, 0),
        core(hi, 0),
    );
}
