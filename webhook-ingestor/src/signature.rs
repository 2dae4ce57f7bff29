//! Stripe webhook signature verification, as pure functions over the raw body.
//!
//! Stripe sends `Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,v0=…`, where each
//! `v1` is HMAC-SHA256 of `"{t}.{raw body}"` keyed with an endpoint secret's bytes
//! (the whole `whsec_…` string). Several `v1` appear while Stripe rolls a secret, and we
//! may hold several secrets while we roll ours, so any `v1` matching any secret passes.
//!
//! A header is read exactly as Stripe's own libraries read it (stripe-python's
//! `WebhookSignature.verify_header`, stripe-node's `webhooks.signature.verifyHeader`), and
//! accepted only when both would accept it: `testdata/stripe-signatures/verdicts.json` holds
//! their verdicts on every header form we know of, and the tests hold us to it. Items are
//! split on `,` and not trimmed, so `, v1=…` (a space before the key) is not a `v1`; a value
//! ends at its second `=`; items with another key, or no `=`, are ignored. A `v1` that cannot
//! be a signature (not 64 lower-case hex digits: both libraries compare the hex text) is
//! ignored, not fatal. Where the two libraries disagree, the header is refused, failing
//! closed: Stripe only ever sends forms both accept. They disagree on a repeated `t` (python
//! reads the first, node the last: we require the signature to hold for both readings), on
//! `t` values only one of them parses (`1_700_000_000`, `1700000000.5`, `1700000000abc`),
//! and on an empty `v1` (node fails on it).
//!
//! The steps run in the order that fails closed: parse the header, compute and compare
//! in constant time, and only then look at the clock, so an unsigned request learns
//! nothing about our tolerance. Timestamps are refused beyond the tolerance in *both*
//! directions: a signature from the future is as suspicious as a stale one, and the
//! same bound absorbs honest clock skew between Stripe and us. (The libraries only refuse
//! stale ones; the verdicts table judges every form at its own signing time.)

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header Stripe signs webhooks with.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// Why a webhook was refused. Each is answered with 400 and counted by [`Rejection::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum Rejection {
    #[error("missing signature")]
    MissingSignature,
    #[error("malformed signature header")]
    MalformedHeader,
    #[error("no matching signature")]
    NoMatchingSignature,
    #[error("timestamp outside tolerance")]
    TimestampOutsideTolerance,
}

impl Rejection {
    pub const ALL: [Rejection; 4] = [
        Rejection::MissingSignature,
        Rejection::MalformedHeader,
        Rejection::NoMatchingSignature,
        Rejection::TimestampOutsideTolerance,
    ];

    /// A stable label for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::MissingSignature => "missing_signature",
            Rejection::MalformedHeader => "malformed_header",
            Rejection::NoMatchingSignature => "no_matching_signature",
            Rejection::TimestampOutsideTolerance => "timestamp_outside_tolerance",
        }
    }
}

/// The parts of a `Stripe-Signature` header we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The first `t` (stripe-python's reading).
    pub timestamp: i64,
    /// The last `t` (stripe-node's reading): the same as `timestamp` unless `t` repeats.
    pub last_timestamp: i64,
    /// Every `v1` that can be a signature, decoded. Other schemes (`v0`, future ones) and
    /// `v1` values that are not 64 lower-case hex digits are ignored.
    pub v1: Vec<Vec<u8>>,
}

/// What verification needs besides the request.
#[derive(Clone, Copy)]
pub struct Verifier<'a> {
    pub secrets: &'a [SecretString],
    pub tolerance: Duration,
}

/// Parses `t=…,v1=…[,v1=…][,v0=…]` as Stripe's libraries do (see the module comment). A
/// header without `t` or without any `v1` item, with a bare `t` or `v1` item, an empty or
/// non-ASCII `v1` value, or a first or last `t` that is not an integer, is malformed.
pub fn parse_header(value: &str) -> Result<SignatureHeader, Rejection> {
    let (mut first_t, mut last_t, mut saw_v1) = (None, None, false);
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let mut parts = item.split('=');
        match (parts.next().unwrap_or_default(), parts.next()) {
            // Both libraries fail on a key without a value.
            ("t" | "v1", None) => return Err(Rejection::MalformedHeader),
            ("t", Some(t)) => {
                first_t.get_or_insert(t);
                last_t = Some(t);
            }
            // Node fails on an empty value, python on a non-ASCII one.
            ("v1", Some(mac)) if mac.is_empty() || !mac.is_ascii() => {
                return Err(Rejection::MalformedHeader);
            }
            ("v1", Some(mac)) => {
                saw_v1 = true;
                v1.extend(decode_signature(mac));
            }
            _ => {}
        }
    }
    match (first_t, last_t) {
        (Some(first), Some(last)) if saw_v1 => Ok(SignatureHeader {
            timestamp: parse_timestamp(first)?,
            last_timestamp: parse_timestamp(last)?,
            v1,
        }),
        _ => Err(Rejection::MalformedHeader),
    }
}

/// An integer both libraries read the same way: ASCII whitespace around an optional sign
/// and decimal digits (python's `int` also takes `1_000`, node's `parseInt` ignores what
/// follows the digits: neither is accepted here).
fn parse_timestamp(value: &str) -> Result<i64, Rejection> {
    let trimmed = value.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::MalformedHeader);
    }
    trimmed
        .parse::<i64>()
        .map_err(|_| Rejection::MalformedHeader)
}

/// A `v1` can only match if it is our MAC's hex text exactly (64 lower-case digits): the
/// libraries compare text, so upper-case hex never matches.
fn decode_signature(hex_value: &str) -> Option<Vec<u8>> {
    let lower_hex = hex_value.len() == 64
        && hex_value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    lower_hex.then(|| hex::decode(hex_value).ok()).flatten()
}

/// Verifies a webhook: `header` is the raw `Stripe-Signature` value (None when absent),
/// `now` the current Unix time in seconds (injected so tests control the clock).
/// Returns the signed timestamp.
pub fn verify(
    verifier: Verifier<'_>,
    header: Option<&[u8]>,
    body: &[u8],
    now: i64,
) -> Result<i64, Rejection> {
    let header = header.ok_or(Rejection::MissingSignature)?;
    let header = std::str::from_utf8(header).map_err(|_| Rejection::MalformedHeader)?;
    let parsed = parse_header(header)?;
    // Both libraries' readings of `t` must be signed (they differ only when `t` repeats).
    let readings = if parsed.timestamp == parsed.last_timestamp {
        vec![parsed.timestamp]
    } else {
        vec![parsed.timestamp, parsed.last_timestamp]
    };
    if !readings
        .iter()
        .all(|t| matches_any(verifier.secrets, *t, &parsed.v1, body))
    {
        return Err(Rejection::NoMatchingSignature);
    }
    if readings
        .iter()
        .any(|t| t.abs_diff(now) > verifier.tolerance.as_secs())
    {
        return Err(Rejection::TimestampOutsideTolerance);
    }
    Ok(parsed.timestamp)
}

/// Whether any `v1` is the MAC of the payload signed at `timestamp` under any secret.
/// `verify_slice` compares in constant time.
fn matches_any(secrets: &[SecretString], timestamp: i64, v1: &[Vec<u8>], body: &[u8]) -> bool {
    secrets.iter().any(|secret| {
        let mac = keyed_mac(secret.expose_secret(), timestamp, body);
        v1.iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    })
}

fn keyed_mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `v1` signature Stripe would send for `body` at `timestamp` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(keyed_mac(secret, timestamp, body).finalize().into_bytes())
}

/// A complete `Stripe-Signature` header value, as Stripe would send it.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
