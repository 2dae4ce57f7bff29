//! Percentiles of latency samples and medians of repeated runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        Latency {
            samples: samples.len(),
            p50_ms: ms(percentile(&samples, 0.50)),
            p99_ms: ms(percentile(&samples, 0.99)),
            max_ms: ms(samples.last().copied().unwrap_or_default()),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Nearest-rank percentile of sorted samples (zero when there are none).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of repeated measurements of one figure (the lower middle for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// The median of one field over runs.
pub fn median_by<T>(runs: &[T], field: impl Fn(&T) -> f64) -> f64 {
    median(runs.iter().map(field))
}

/// `(min, max)` of one field over runs, to show the spread next to the median.
pub fn spread<T>(runs: &[T], field: impl Fn(&T) -> f64) -> (f64, f64) {
    runs.iter()
        .map(field)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_samples(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles_pick_real_samples() {
        let l = Latency::of(ms_samples(&(1..=100).rev().collect::<Vec<_>>()));
        assert_eq!(
            (l.samples, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        let one = Latency::of(ms_samples(&[7]));
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert_eq!(Latency::of(Vec::new()).p99_ms, 0.0);
    }

    #[test]
    fn the_median_of_three_runs_is_the_middle_one() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.0);
        assert!(median([]).is_nan());
        assert_eq!(spread(&[3.0, 1.0, 2.0], |v| *v), (1.0, 3.0));
    }
}
