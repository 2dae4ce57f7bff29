//! Stripe event parsing from raw webhook bytes (payments-core's `stripe_event`), with
//! libFuzzer's byte mutations over the recorded events: see [`check_event_bytes`] for
//! the properties checked.

#![no_main]

use libfuzzer_sys::fuzz_target;
use payments_fuzz::check_event_bytes;

fuzz_target!(|data: &[u8]| check_event_bytes(data));
