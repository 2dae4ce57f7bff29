//! `Idempotency-Key` on POST and DELETE: the first response for a key is stored and replayed
//! for the same method, path and parameters; other parameters get a 400 `idempotency_error`.
//! Requests with the same key wait for each other (one async lock per key), so two concurrent
//! attempts never both run.
//!
//! As on Stripe, only requests that ran are stored: successes and card errors (402). Requests
//! rejected up front (validation errors, 401, injected faults) can be retried with the same key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::Value;

/// A stored first response.
#[derive(Debug, Clone)]
pub struct Stored {
    pub method: String,
    pub path: String,
    pub params: Value,
    pub status: StatusCode,
    pub body: Bytes,
}

/// One key's slot: `None` until a storable response arrives.
pub type Slot = Arc<tokio::sync::Mutex<Option<Stored>>>;

#[derive(Default)]
pub struct IdempotencyKeys {
    slots: Mutex<HashMap<String, Slot>>,
}

impl IdempotencyKeys {
    /// The slot for `key`; lock it (asynchronously) before running the request.
    pub fn slot(&self, key: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(slots.entry(key.to_owned()).or_default())
    }
}

/// Whether a response is kept for replay.
pub fn storable(status: StatusCode) -> bool {
    status.is_success() || status == StatusCode::PAYMENT_REQUIRED
}

impl Stored {
    /// `Ok(())` when a new request with this key may be answered from this stored response.
    pub fn matches(&self, method: &str, path: &str, params: &Value) -> Result<(), String> {
        if self.method != method || self.path != path {
            return Err(format!(
                "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{} {}' vs '{method} {path}'). Try using a key other than the one used.",
                self.method, self.path
            ));
        }
        if &self.params != params {
            return Err(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than the one used."
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Stored {
        Stored {
            method: "POST".into(),
            path: "/v1/customers".into(),
            params: json!({"email": "a@b.c"}),
            status: StatusCode::OK,
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn the_same_request_matches() {
        assert!(
            stored()
                .matches("POST", "/v1/customers", &json!({"email": "a@b.c"}))
                .is_ok()
        );
    }

    #[test]
    fn other_parameters_or_another_endpoint_do_not() {
        assert!(
            stored()
                .matches("POST", "/v1/customers", &json!({"email": "x@b.c"}))
                .is_err()
        );
        assert!(
            stored()
                .matches("POST", "/v1/coupons", &json!({"email": "a@b.c"}))
                .is_err()
        );
    }

    #[test]
    fn only_executed_requests_are_stored() {
        assert!(storable(StatusCode::OK));
        assert!(storable(StatusCode::PAYMENT_REQUIRED));
        assert!(!storable(StatusCode::BAD_REQUEST));
        assert!(!storable(StatusCode::INTERNAL_SERVER_ERROR));
    }

    #[test]
    fn the_same_key_shares_one_slot() {
        let keys = IdempotencyKeys::default();
        assert!(Arc::ptr_eq(&keys.slot("k"), &keys.slot("k")));
        assert!(!Arc::ptr_eq(&keys.slot("k"), &keys.slot("other")));
    }
}
