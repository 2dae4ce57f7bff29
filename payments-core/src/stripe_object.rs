//! What a Stripe object's *current* state says, for reconciliation: the counterpart of
//! an event's meaning when we read the PaymentIntent or Invoice back instead of being
//! told about it. Loose about shape like the event parser: only `object`, `status`,
//! `last_payment_error`, `currency` and the charge are read.

use crate::Signal;
use serde_json::Value;

/// The signal a PaymentIntent or Invoice in its present state gives, if any (None while
/// it waits on the customer or has not been finalized).
pub fn signal(object: &Value) -> Option<Signal> {
    let status = object.get("status").and_then(Value::as_str)?;
    match object.get("object").and_then(Value::as_str)? {
        "payment_intent" => match status {
            "succeeded" => Some(Signal::Succeeded),
            "requires_capture" => Some(Signal::Authorized),
            "processing" => Some(Signal::Processing),
            "requires_action" => Some(Signal::RequiresAction),
            "canceled" => Some(Signal::Canceled),
            // Back to the customer after a decline: the last error says why.
            "requires_payment_method" => object
                .get("last_payment_error")
                .filter(|e| e.is_object())
                .map(failure),
            _ => None,
        },
        "invoice" => match status {
            "paid" => Some(Signal::Succeeded),
            "void" => Some(Signal::Canceled),
            "uncollectible" => Some(Signal::Failed {
                code: "uncollectible".into(),
                message: "The invoice was marked uncollectible.".into(),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// The object's currency, so a mismatch is flagged rather than credited.
pub fn currency(object: &Value) -> Option<&str> {
    object.get("currency").and_then(Value::as_str)
}

/// The charge behind a PaymentIntent (an id, or an expanded object), for later
/// refunds and disputes; older API versions list charges instead.
pub fn charge(object: &Value) -> Option<&str> {
    match object.get("latest_charge") {
        Some(Value::String(id)) => Some(id.as_str()),
        Some(expanded @ Value::Object(_)) => expanded.get("id").and_then(Value::as_str),
        _ => object.pointer("/charges/data/0/id").and_then(Value::as_str),
    }
}

fn failure(error: &Value) -> Signal {
    let text = |key: &str| {
        error
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Signal::Failed {
        code: text("decline_code")
            .or_else(|| text("code"))
            .unwrap_or_else(|| "payment_failed".into()),
        message: text("message").unwrap_or_else(|| "The payment failed.".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pi(status: &str) -> Value {
        json!({ "object": "payment_intent", "status": status, "last_payment_error": null })
    }

    #[test]
    fn a_payment_intent_status_maps_to_its_signal() {
        assert_eq!(signal(&pi("succeeded")), Some(Signal::Succeeded));
        assert_eq!(signal(&pi("requires_capture")), Some(Signal::Authorized));
        assert_eq!(signal(&pi("processing")), Some(Signal::Processing));
        assert_eq!(signal(&pi("requires_action")), Some(Signal::RequiresAction));
        assert_eq!(signal(&pi("canceled")), Some(Signal::Canceled));
    }

    #[test]
    fn waiting_on_the_customer_says_nothing() {
        assert_eq!(signal(&pi("requires_payment_method")), None);
        assert_eq!(signal(&pi("requires_confirmation")), None);
    }

    #[test]
    fn a_decline_is_read_from_the_last_payment_error() {
        let mut declined = pi("requires_payment_method");
        declined["last_payment_error"] = json!({
            "code": "card_declined", "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds."
        });
        assert_eq!(
            signal(&declined),
            Some(Signal::Failed {
                code: "insufficient_funds".into(),
                message: "Your card has insufficient funds.".into()
            })
        );
    }

    #[test]
    fn an_invoice_status_maps_to_its_signal() {
        let invoice = |status| json!({ "object": "invoice", "status": status });
        assert_eq!(signal(&invoice("paid")), Some(Signal::Succeeded));
        assert_eq!(signal(&invoice("void")), Some(Signal::Canceled));
        assert!(matches!(
            signal(&invoice("uncollectible")),
            Some(Signal::Failed { .. })
        ));
        assert_eq!(signal(&invoice("open")), None);
        assert_eq!(signal(&invoice("draft")), None);
    }

    #[test]
    fn the_charge_is_found_in_any_api_version() {
        assert_eq!(charge(&json!({ "latest_charge": "ch_1" })), Some("ch_1"));
        assert_eq!(
            charge(&json!({ "latest_charge": { "id": "ch_2" } })),
            Some("ch_2")
        );
        assert_eq!(
            charge(&json!({ "charges": { "data": [{ "id": "ch_3" }] } })),
            Some("ch_3")
        );
        assert_eq!(charge(&json!({ "latest_charge": null })), None);
    }
}
