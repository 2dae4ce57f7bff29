//! A libFuzzer mutator that edits Stripe events as JSON rather than as bytes.
//!
//! Byte mutations of a recorded event mostly break its syntax and stop at
//! `serde_json`. This mutator keeps inputs parseable and moves them along the axes
//! the parser cares about: an envelope field retyped or removed, `type` swapped for
//! another acted-on type, `data.object` given another kind, a reference expanded into
//! an object or emptied, a subtree spliced elsewhere. A quarter of the time, and
//! whenever the input is not JSON, it falls back to libFuzzer's byte mutations.

use libfuzzer_sys::fuzzer_mutate;
use payments_core::stripe_event::ACTED_ON_TYPES;
use serde_json::{Value, json};

/// Keys the envelope and the rules read, to delete, retype or add.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "id", "object", "type", "created", "livemode", "api_version", "data", "metadata",
    "transaction_id", "amount", "amount_refunded", "currency", "status", "payment_intent",
    "invoice", "charge", "charges", "latest_charge", "payment_method", "customer", "card",
    "brand", "last4", "fingerprint", "last_payment_error", "last_finalization_error",
    "decline_code", "code", "message",
];

#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "", "evt_1", "evt_", "evt_1 2", "pi_1", "in_1", "ch_1", "dp_1", "pm_1", "cus_1", "usd",
    "won", "lost", "warning_closed", "event", "payment_intent", "invoice", "charge",
    "dispute", "payment_method", "0b6c7d4e-9f1a-4c2b-8d3e-5f6a7b8c9d0e", "not-a-uuid",
];

#[rustfmt::skip]
const NUMBERS: &[i64] = &[0, -1, 1, 100, 1_700_000_000, i64::MAX, i64::MIN, 8_210_298_775_999];

/// `fuzz_mutator!`'s body: mutates `data[..size]` in place and returns the new size.
pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let mut rng = Rng(u64::from(seed) | 1 << 40);
    let parsed = serde_json::from_slice::<Value>(&data[..size]);
    let Ok(mut value) = parsed else {
        return fuzzer_mutate(data, size, max_size);
    };
    if rng.below(4) == 0 {
        return fuzzer_mutate(data, size, max_size);
    }
    for _ in 0..=rng.below(3) {
        mutate_value(&mut value, &mut rng);
    }
    match serde_json::to_vec(&value) {
        Ok(bytes) if bytes.len() <= max_size => {
            data[..bytes.len()].copy_from_slice(&bytes);
            bytes.len()
        }
        _ => fuzzer_mutate(data, size, max_size),
    }
}

fn mutate_value(root: &mut Value, rng: &mut Rng) {
    match rng.below(7) {
        0 => {
            let event_type = pick(ACTED_ON_TYPES, rng);
            if let Some(envelope) = root.as_object_mut() {
                envelope.insert("type".to_owned(), json!(event_type));
            }
        }
        1 => {
            let kind = pick(STRINGS, rng);
            if let Some(object) = root
                .pointer_mut("/data/object")
                .and_then(Value::as_object_mut)
            {
                object.insert("object".to_owned(), json!(kind));
            }
        }
        2 => {
            let replacement = interesting_value(root, rng);
            if let Some(node) = random_node(root, rng, |_| true) {
                *node = replacement;
            }
        }
        3 => {
            // Empty ids are where "absent" and "present" are easiest to confuse.
            if let Some(node) = random_node(root, rng, Value::is_string) {
                *node = json!("");
            }
        }
        4 => {
            let key = pick(KEYS, rng);
            if let Some(map) =
                random_node(root, rng, Value::is_object).and_then(Value::as_object_mut)
            {
                map.remove(key);
            }
        }
        _ => {
            let value = interesting_value(root, rng);
            let key = pick(KEYS, rng);
            if let Some(map) =
                random_node(root, rng, Value::is_object).and_then(Value::as_object_mut)
            {
                map.insert(key.to_owned(), value);
            }
        }
    }
}

/// A value of another type than most fields expect, or a subtree of the input.
fn interesting_value(root: &Value, rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(NUMBERS[rng.below(NUMBERS.len())]),
        3 => json!(u64::MAX),
        4 => json!({ "id": pick(STRINGS, rng) }),
        5 => {
            let mut root = root.clone();
            random_node(&mut root, rng, |_| true).map_or(Value::Null, Value::take)
        }
        _ => json!(pick(STRINGS, rng)),
    }
}

/// A node chosen uniformly among those that satisfy `is`, if any does.
fn random_node<'v>(
    root: &'v mut Value,
    rng: &mut Rng,
    is: fn(&Value) -> bool,
) -> Option<&'v mut Value> {
    let count = count_where(root, is);
    if count == 0 {
        return None;
    }
    nth_where(root, &mut rng.below(count), is)
}

fn count_where(value: &Value, is: fn(&Value) -> bool) -> usize {
    usize::from(is(value)) + children(value).map(|c| count_where(c, is)).sum::<usize>()
}

fn children(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        Value::Object(map) => Box::new(map.values()),
        Value::Array(items) => Box::new(items.iter()),
        _ => Box::new(std::iter::empty()),
    }
}

fn children_mut(value: &mut Value) -> Box<dyn Iterator<Item = &mut Value> + '_> {
    match value {
        Value::Object(map) => Box::new(map.values_mut()),
        Value::Array(items) => Box::new(items.iter_mut()),
        _ => Box::new(std::iter::empty()),
    }
}

/// The `n`th node satisfying `is` in pre-order, counting `n` down as the walk goes.
fn nth_where<'v>(
    value: &'v mut Value,
    n: &mut usize,
    is: fn(&Value) -> bool,
) -> Option<&'v mut Value> {
    if is(value) {
        if *n == 0 {
            return Some(value);
        }
        *n -= 1;
    }
    children_mut(value).find_map(|child| nth_where(child, n, is))
}

fn pick<'a>(list: &[&'a str], rng: &mut Rng) -> &'a str {
    list[rng.below(list.len())]
}

/// SplitMix64: libFuzzer hands us a seed, and the mutation must be reproducible from it.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % bound.max(1) as u64) as usize
    }
}
