//! The same properties as `stripe_event`, reached through JSON-aware mutations of the
//! recorded events (see `payments_fuzz::json_mutator`), which byte mutations rarely
//! get past the JSON syntax to produce.

#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use payments_fuzz::{check_event_bytes, json_mutator};

fuzz_target!(|data: &[u8]| check_event_bytes(data));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    json_mutator::mutate(data, size, max_size, seed)
});
