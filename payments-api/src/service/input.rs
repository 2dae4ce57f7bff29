//! Checks of request fields. Each failure names its field (INVALID_ARGUMENT with a
//! `google.rpc.BadRequest`).

use payments_core::{Currency, PaymentMethodId, TransactionId};

use crate::error::{ApiError, ApiResult};

/// Idempotency keys starting with this are derived by the service itself.
pub const DERIVED_KEY_PREFIX: char = '~';

pub fn idempotency_key(key: &str) -> ApiResult<String> {
    if key.is_empty() {
        return Err(ApiError::invalid("idempotency_key", "required"));
    }
    if key.len() > 255 || key.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "idempotency_key",
            "must be at most 255 bytes of printable characters",
        ));
    }
    if key.starts_with(DERIVED_KEY_PREFIX) {
        return Err(ApiError::invalid(
            "idempotency_key",
            format!("keys starting with {DERIVED_KEY_PREFIX:?} are reserved"),
        ));
    }
    Ok(key.to_owned())
}

pub fn payment_method_id(id: &str) -> ApiResult<PaymentMethodId> {
    if id.is_empty() {
        return Err(ApiError::invalid("payment_method_id", "required"));
    }
    PaymentMethodId::parse(id).map_err(|e| ApiError::invalid("payment_method_id", e.to_string()))
}

pub fn transaction_id(id: &str) -> ApiResult<TransactionId> {
    if id.is_empty() {
        return Err(ApiError::invalid("transaction_id", "required"));
    }
    TransactionId::parse(id).map_err(|_| ApiError::invalid("transaction_id", "must be a UUID"))
}

pub fn currency(currency: &str) -> ApiResult<Currency> {
    if currency.is_empty() {
        return Err(ApiError::invalid("currency", "required"));
    }
    Currency::parse(currency).map_err(|e| ApiError::invalid("currency", e.to_string()))
}

/// A promotion code or coupon id: it becomes part of a Stripe URL, so only the
/// characters Stripe uses are accepted.
pub fn coupon_code(code: &str) -> ApiResult<String> {
    let ok = (1..=200).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(code.to_owned())
    } else if code.is_empty() {
        Err(ApiError::invalid("code", "required"))
    } else {
        Err(ApiError::invalid(
            "code",
            "must be 1 to 200 letters, digits, '_' or '-'",
        ))
    }
}
