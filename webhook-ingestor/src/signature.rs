//! Stripe webhook signature verification, as pure functions over the raw body.
//!
//! Stripe sends `Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,v0=…`, where each
//! `v1` is HMAC-SHA256 of `"{t}.{raw body}"` keyed with an endpoint secret's bytes
//! (the whole `whsec_…` string). Several `v1` appear while Stripe rolls a secret, and we
//! may hold several secrets while we roll ours, so any `v1` matching any secret passes.
//!
//! The steps run in the order that fails closed: parse the header, compute and compare
//! in constant time, and only then look at the clock, so an unsigned request learns
//! nothing about our tolerance. Timestamps are refused beyond the tolerance in *both*
//! directions: a signature from the future is as suspicious as a stale one, and the
//! same bound absorbs honest clock skew between Stripe and us.

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
    pub timestamp: i64,
    /// Every `v1` signature, decoded. Other schemes (`v0`, future ones) are ignored.
    pub v1: Vec<Vec<u8>>,
}

/// What verification needs besides the request.
#[derive(Clone, Copy)]
pub struct Verifier<'a> {
    pub secrets: &'a [SecretString],
    pub tolerance: Duration,
}

/// Parses `t=…,v1=…[,v1=…][,v0=…]`. A header without exactly one `t`, without any
/// `v1`, or with an item that is not `key=value` is malformed.
pub fn parse_header(value: &str) -> Result<SignatureHeader, Rejection> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let (key, val) = item
            .trim()
            .split_once('=')
            .ok_or(Rejection::MalformedHeader)?;
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(val.parse::<i64>().map_err(|_| Rejection::MalformedHeader)?);
            }
            "t" => return Err(Rejection::MalformedHeader),
            "v1" => v1.push(decode_signature(val)?),
            _ => {}
        }
    }
    match (timestamp, v1.is_empty()) {
        (Some(timestamp), false) => Ok(SignatureHeader { timestamp, v1 }),
        _ => Err(Rejection::MalformedHeader),
    }
}

/// A `v1` is a hex SHA-256 MAC; anything else cannot be one.
fn decode_signature(hex_value: &str) -> Result<Vec<u8>, Rejection> {
    match hex::decode(hex_value) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(Rejection::MalformedHeader),
    }
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
    if !matches_any(verifier.secrets, &parsed, body) {
        return Err(Rejection::NoMatchingSignature);
    }
    if parsed.timestamp.abs_diff(now) > verifier.tolerance.as_secs() {
        return Err(Rejection::TimestampOutsideTolerance);
    }
    Ok(parsed.timestamp)
}

/// Whether any `v1` is the MAC of the payload under any secret. `verify_slice`
/// compares in constant time.
fn matches_any(secrets: &[SecretString], header: &SignatureHeader, body: &[u8]) -> bool {
    secrets.iter().any(|secret| {
        let mac = keyed_mac(secret.expose_secret(), header.timestamp, body);
        header
            .v1
            .iter()
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
