//! Each event's delivery fate, decided from the seed and the event's sequence number only, so a
//! run with the same seed drops, duplicates and delays exactly the same events whatever the timing.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Chaos;

/// What chaos decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fate {
    /// Never delivered (still listed by `GET /v1/events`).
    pub dropped: bool,
    /// How long each copy is held before its first attempt; two entries for a duplicate.
    pub holds: Vec<Duration>,
}

/// SplitMix64: spreads consecutive sequence numbers over unrelated RNG seeds.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn decide(seed: u64, seq: u64, chaos: &Chaos) -> Fate {
    let mut rng = StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(seq)));
    // Draw every value whatever the rates, so changing one knob does not reshuffle the others.
    let drop_roll: f64 = rng.random();
    let duplicate_roll: f64 = rng.random();
    let window = chaos.reorder_window.as_micros() as u64;
    let mut hold = || {
        let jitter = if window == 0 {
            0
        } else {
            rng.random_range(0..window)
        };
        chaos.delay + Duration::from_micros(jitter)
    };
    let first = hold();
    let second = hold();
    let copies = if duplicate_roll < chaos.duplicate_rate {
        vec![first, second]
    } else {
        vec![first]
    };
    Fate {
        dropped: drop_roll < chaos.drop_rate,
        holds: copies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos(drop_rate: f64, duplicate_rate: f64) -> Chaos {
        Chaos {
            drop_rate,
            duplicate_rate,
            reorder_window: Duration::from_millis(50),
            delay: Duration::from_millis(5),
        }
    }

    #[test]
    fn the_same_seed_and_sequence_give_the_same_fate() {
        let c = chaos(0.3, 0.3);
        for seq in 0..100 {
            assert_eq!(decide(7, seq, &c), decide(7, seq, &c));
        }
    }

    #[test]
    fn another_seed_gives_other_fates() {
        let c = chaos(0.5, 0.5);
        let a: Vec<Fate> = (0..50).map(|seq| decide(1, seq, &c)).collect();
        let b: Vec<Fate> = (0..50).map(|seq| decide(2, seq, &c)).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn rates_are_roughly_honoured_and_holds_stay_in_the_window() {
        let c = chaos(0.2, 0.1);
        let fates: Vec<Fate> = (0..5000).map(|seq| decide(42, seq, &c)).collect();
        let dropped = fates.iter().filter(|f| f.dropped).count();
        let duplicated = fates.iter().filter(|f| f.holds.len() == 2).count();
        assert!((800..1200).contains(&dropped), "{dropped}");
        assert!((350..650).contains(&duplicated), "{duplicated}");
        for hold in fates.iter().flat_map(|f| &f.holds) {
            assert!(*hold >= Duration::from_millis(5) && *hold < Duration::from_millis(55));
        }
    }

    #[test]
    fn no_chaos_means_one_immediate_copy() {
        let fate = decide(3, 9, &Chaos::default());
        assert_eq!(
            fate,
            Fate {
                dropped: false,
                holds: vec![Duration::ZERO]
            }
        );
    }
}
