//! The change schedule both watch designs are measured under: signed webhooks posted to
//! the ingestor at a fixed rate (open loop), change `k` going to watched transaction
//! `k mod W`, alternating `requires_action` and `processing` so that every event is a
//! real transition and no stream ends while it is measured. The 200 of each post is the
//! moment a watcher's latency is measured from.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    events::{Change, Sender},
    stats::Latency,
};

/// The event for a transaction's `stage`-th change (neighbours start differently, so both
/// kinds are always in flight).
pub fn change_for(watcher: usize, stage: u64) -> Change {
    if (watcher as u64 + stage).is_multiple_of(2) {
        Change::RequiresAction
    } else {
        Change::Processing
    }
}

/// Rows are inserted at version 1 and every change bumps it by one.
pub fn version_after(stage: u64) -> i64 {
    i64::try_from(stage).unwrap_or(i64::MAX - 2) + 2
}

/// One acknowledged change.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub k: u64,
    pub sent: Instant,
    pub at: Instant,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub scheduled: u64,
    pub acked: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Acknowledged changes per second over the schedule.
    pub achieved_rate: f64,
    pub ingest_latency: Latency,
}

/// Posts changes for `watchers` transactions from row `first`, at `rate` per second for
/// `secs`, at most `max_in_flight` at a time (when that is reached the schedule slips,
/// which shows as an achieved rate below the target).
pub async fn drive(
    sender: &Sender,
    first: u64,
    watchers: usize,
    rate: f64,
    secs: Duration,
    max_in_flight: usize,
) -> (ChangeSummary, Vec<Acked>) {
    let start = Instant::now();
    let end = start + secs;
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut posts = JoinSet::new();
    let mut k = 0u64;
    loop {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // Waiting for a permit means the schedule slipped: stop at the real end.
        if Instant::now() >= end {
            break;
        }
        let watcher = (k % watchers as u64) as usize;
        let stage = k / watchers as u64;
        let sender = sender.clone();
        posts.spawn(async move {
            let result = sender
                .post(change_for(watcher, stage), first + watcher as u64)
                .await;
            drop(permit);
            (k, result)
        });
        k += 1;
    }
    let mut summary = ChangeSummary {
        scheduled: k,
        ..ChangeSummary::default()
    };
    let mut acks = Vec::with_capacity(k as usize);
    let mut ingest = Vec::with_capacity(k as usize);
    while let Some(joined) = posts.join_next().await {
        match joined {
            Ok((k, Ok(ack))) => {
                acks.push(Acked {
                    k,
                    sent: ack.sent,
                    at: ack.acked,
                });
                ingest.push(ack.acked - ack.sent);
            }
            Ok((_, Err(e))) => {
                summary.errors += 1;
                summary.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                summary.errors += 1;
                summary.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    summary.acked = acks.len() as u64;
    let last = acks.iter().map(|a| a.at).max().unwrap_or(end);
    summary.achieved_rate = summary.acked as f64 / (last - start).max(secs).as_secs_f64();
    summary.ingest_latency = Latency::of(ingest);
    (summary, acks)
}

/// How the acknowledged changes reached the watchers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// 200 → the watcher holds the new version.
    pub latency: Latency,
    /// Acknowledged changes no watcher saw before it stopped.
    pub missing: u64,
    /// Seen before the sender had read the 200 (counted as zero latency).
    pub before_ack: u64,
    /// Per acknowledged change: (sent, acknowledged, delivered after the 200), for the
    /// time series written next to the report.
    #[serde(skip)]
    pub per_change: Vec<(Instant, Instant, Option<Duration>)>,
}

/// Joins acknowledgements with what each watcher saw: `(version, when)` in arrival order.
pub fn delivery(acks: &[Acked], seen: &[Vec<(i64, Instant)>]) -> Delivery {
    let watchers = seen.len().max(1) as u64;
    let mut latencies = Vec::with_capacity(acks.len());
    let (mut missing, mut before_ack) = (0, 0);
    let mut per_change = Vec::with_capacity(acks.len());
    for ack in acks {
        let watcher = (ack.k % watchers) as usize;
        let want = version_after(ack.k / watchers);
        let first_seen = seen
            .get(watcher)
            .and_then(|s| s.iter().find(|(v, _)| *v >= want))
            .map(|(_, at)| *at);
        let latency = match first_seen {
            None => {
                missing += 1;
                None
            }
            Some(at) if at < ack.at => {
                before_ack += 1;
                Some(Duration::ZERO)
            }
            Some(at) => Some(at - ack.at),
        };
        latencies.extend(latency);
        per_change.push((ack.sent, ack.at, latency));
    }
    per_change.sort_by_key(|(sent, _, _)| *sent);
    Delivery {
        latency: Latency::of(latencies),
        missing,
        before_ack,
        per_change,
    }
}

/// Bursts of slow deliveries: when they start and what the rest looks like.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stalls {
    /// Seconds (since the first change) at which a burst of deliveries over 50 ms began.
    pub onsets: Vec<f64>,
    /// Mean spacing of the onsets, seconds.
    pub period_s: Option<f64>,
    /// Changes sent in the 0.5 s after an onset (or just before it).
    pub inside: u64,
    /// p99 of the other changes.
    pub p99_outside_ms: f64,
}

/// Finds bursts of slow deliveries (a change over 50 ms at least a second after the last
/// burst began) and the p99 outside them.
pub fn stalls(delivery: &Delivery) -> Stalls {
    const SLOW: Duration = Duration::from_millis(50);
    let Some((t0, _, _)) = delivery.per_change.first() else {
        return Stalls::default();
    };
    let at = |sent: &Instant| (*sent - *t0).as_secs_f64();
    let mut onsets: Vec<f64> = Vec::new();
    for (sent, _, latency) in &delivery.per_change {
        let t = at(sent);
        if latency.is_some_and(|l| l > SLOW) && onsets.last().is_none_or(|o| t - o > 1.0) {
            onsets.push(t);
        }
    }
    let inside_window = |t: f64| onsets.iter().any(|o| t >= o - 0.05 && t <= o + 0.5);
    let (mut inside, mut outside) = (0, Vec::new());
    for (sent, _, latency) in &delivery.per_change {
        match (inside_window(at(sent)), latency) {
            (true, _) => inside += 1,
            (false, Some(l)) => outside.push(*l),
            (false, None) => {}
        }
    }
    let period_s = (onsets.len() >= 2)
        .then(|| (onsets[onsets.len() - 1] - onsets[0]) / (onsets.len() - 1) as f64);
    Stalls {
        period_s,
        inside,
        p99_outside_ms: Latency::of(outside).p99_ms,
        onsets,
    }
}

/// `seconds since the first post, ingest ms, delivery ms` per change, as CSV.
pub fn timeline_csv(delivery: &Delivery) -> String {
    let mut out = String::from("sent_s,ingest_ms,delivery_ms\n");
    let Some((t0, _, _)) = delivery.per_change.first() else {
        return out;
    };
    for (sent, acked, latency) in &delivery.per_change {
        let delivery_ms =
            latency.map_or(String::new(), |l| format!("{:.3}", l.as_secs_f64() * 1e3));
        out.push_str(&format!(
            "{:.4},{:.3},{delivery_ms}\n",
            (*sent - *t0).as_secs_f64(),
            (*acked - *sent).as_secs_f64() * 1e3
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_changes_of_a_transaction_alternate() {
        for w in 0..4 {
            assert_ne!(change_for(w, 0), change_for(w, 1));
            assert_ne!(change_for(w, 1), change_for(w, 2));
        }
        assert_ne!(change_for(0, 0), change_for(1, 0));
    }

    #[test]
    fn deliveries_are_matched_by_watcher_and_version() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // Two watchers; changes 0 and 1 are stage 0 (version 2), change 2 is stage 1 of watcher 0.
        let ack = |k, ms| Acked {
            k,
            sent: at(0),
            at: at(ms),
        };
        let acks = [ack(0, 10), ack(1, 10), ack(2, 20)];
        let seen = vec![vec![(1, at(0)), (2, at(13)), (3, at(25))], vec![(1, at(0))]];
        let d = delivery(&acks, &seen);
        assert_eq!((d.latency.samples, d.missing, d.before_ack), (2, 1, 0));
        assert_eq!(d.latency.max_ms, 5.0);
    }

    #[test]
    fn periodic_bursts_are_found_and_left_out_of_the_outside_p99() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut per_change = Vec::new();
        for i in 0..1_000u64 {
            let sent = at(i * 10);
            // A burst at 2 s and at 7 s.
            let slow = (2_000..2_100).contains(&(i * 10)) || (7_000..7_100).contains(&(i * 10));
            let latency = Duration::from_millis(if slow { 120 } else { 2 });
            per_change.push((sent, sent, Some(latency)));
        }
        let s = stalls(&Delivery {
            per_change,
            ..Delivery::default()
        });
        assert_eq!(s.onsets, vec![2.0, 7.0]);
        assert_eq!(s.period_s, Some(5.0));
        assert_eq!(s.p99_outside_ms, 2.0);
        assert!(s.inside >= 20);
    }
}
