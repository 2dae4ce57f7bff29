//! The `Stripe-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…]`, one `v1` per
//! active secret, where the HMAC key is the secret string's bytes (`whsec_` prefix included, as
//! Stripe's libraries use it) and the message is `"{t}.{raw body}"`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::WebhookSecret;

/// Hex HMAC-SHA256 of `"{timestamp}.{payload}"` under `secret`.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// The full header value for every active secret.
pub fn header(secrets: &[WebhookSecret], timestamp: i64, payload: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&sign(secret.expose(), timestamp, payload));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently with Python's `hmac.new(key, msg, hashlib.sha256).hexdigest()`.
    const EXPECTED: &str = "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a";

    #[test]
    fn the_signature_matches_an_independent_implementation() {
        assert_eq!(
            sign("whsec_test_secret", 1_700_000_000, br#"{"id":"evt_1"}"#),
            EXPECTED
        );
    }

    #[test]
    fn every_active_secret_adds_a_v1_entry() {
        let secrets = [
            WebhookSecret::new("whsec_test_secret"),
            WebhookSecret::new("whsec_next"),
        ];
        let header = header(&secrets, 1_700_000_000, br#"{"id":"evt_1"}"#);
        let parts: Vec<&str> = header.split(',').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "t=1700000000");
        assert_eq!(parts[1], format!("v1={EXPECTED}"));
        assert!(parts[2].starts_with("v1=") && parts[2] != parts[1]);
    }

    #[test]
    fn a_different_body_or_timestamp_changes_the_signature() {
        let base = sign("whsec_x", 1, b"{}");
        assert_ne!(base, sign("whsec_x", 2, b"{}"));
        assert_ne!(base, sign("whsec_x", 1, b"{ }"));
        assert_ne!(base, sign("whsec_y", 1, b"{}"));
    }
}
