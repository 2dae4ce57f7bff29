//! What the fuzz targets share: the properties every parsed Stripe event must have
//! ([`check_event_bytes`]), and a mutator that edits events as JSON ([`json_mutator`]).
//! The targets themselves are in `fuzz_targets/`; `scripts/fuzz.sh` runs them.

pub mod json_mutator;

use payments_core::stripe_event::ACTED_ON_TYPES;
use payments_core::{EventError, Meaning, Signal, StripeEvent};
use serde_json::Value;

/// Parses `data` as a Stripe webhook body and checks what the parser promises, for
/// any bytes: it does not panic, `parse` agrees with `from_value`, an accepted event's
/// envelope matches its JSON and survives a round trip, and `meaning` acts only on
/// the types we subscribe to and only with the fields a rule needs.
pub fn check_event_bytes(data: &[u8]) {
    let parsed = StripeEvent::parse(data);
    match serde_json::from_slice::<Value>(data) {
        Err(_) => assert!(matches!(parsed, Err(EventError::NotJson(_)))),
        Ok(value) => {
            let from_value = StripeEvent::from_value(value);
            assert_eq!(parsed.as_ref().err(), from_value.as_ref().err());
        }
    }
    if let Ok(event) = parsed {
        check_envelope(&event);
        check_meaning(&event);
    }
}

fn check_envelope(event: &StripeEvent) {
    let payload = &event.payload;
    assert_eq!(
        payload.get("id").and_then(Value::as_str),
        Some(event.id.as_str())
    );
    assert_eq!(
        payload.get("type").and_then(Value::as_str),
        Some(event.event_type.as_str())
    );
    assert!(!event.event_type.is_empty());
    let created = payload.get("created").and_then(Value::as_i64);
    assert_eq!(created, Some(event.created.timestamp()));
    assert!(event.object().is_object());

    let bytes = serde_json::to_vec(payload).unwrap_or_else(|e| panic!("re-serialising: {e}"));
    let again = StripeEvent::parse(&bytes).unwrap_or_else(|e| panic!("round trip: {e}"));
    assert_eq!(again.id, event.id);
    assert_eq!(again.event_type, event.event_type);
    assert_eq!(again.created, event.created);
    assert_eq!(again.livemode, event.livemode);
    assert_eq!(again.api_version, event.api_version);
}

fn check_meaning(event: &StripeEvent) {
    let acted_on = ACTED_ON_TYPES.contains(&event.event_type.as_str());
    let meaning = event.meaning();
    if !acted_on {
        assert_eq!(
            meaning,
            Ok(Meaning::Nothing),
            "{} is not acted on",
            event.event_type
        );
        return;
    }
    match meaning {
        Ok(Meaning::Transaction {
            target,
            signal,
            currency,
            payment_method,
            charge,
        }) => {
            assert_eq!(target, event.target());
            assert_not_empty("target.payment_intent", &target.payment_intent);
            assert_not_empty("target.invoice", &target.invoice);
            assert_not_empty("target.charge", &target.charge);
            assert_not_empty("currency", &currency);
            assert_not_empty("payment_method", &payment_method);
            assert_not_empty("charge", &charge);
            check_signal(&signal);
        }
        Ok(Meaning::PaymentMethodAttached(card)) => {
            assert_eq!(event.event_type, "payment_method.attached");
            assert_eq!(
                event.object().get("id").and_then(Value::as_str),
                Some(&*card.payment_method_id)
            );
            assert!(!card.payment_method_id.is_empty());
            assert_not_empty("customer", &card.customer);
        }
        Ok(Meaning::PaymentMethodDetached { payment_method_id }) => {
            assert_eq!(event.event_type, "payment_method.detached");
            assert!(!payment_method_id.is_empty());
        }
        // A dispute event in which no funds moved (an inquiry) means nothing.
        Ok(Meaning::Nothing) => assert!(
            event.event_type.starts_with("charge.dispute."),
            "{} means nothing",
            event.event_type
        ),
        Err(EventError::MissingField { event_type, .. }) => {
            assert_eq!(event_type, event.event_type)
        }
        Err(other) => panic!("meaning failed with {other:?}"),
    }
}

fn check_signal(signal: &Signal) {
    match signal {
        Signal::Failed { code, message } => {
            assert!(!code.is_empty());
            assert!(!message.is_empty());
        }
        Signal::Dispute {
            dispute_id,
            withdrawn,
            reinstated,
            ..
        } => {
            assert!(!dispute_id.is_empty());
            assert!(*withdrawn, "funds are reinstated only after they were withdrawn");
            let _ = reinstated;
        }
        Signal::Refunded { refunds, .. } => {
            assert!(refunds.iter().all(|r| !r.id.is_empty()));
        }
        _ => {}
    }
}

/// Ids, currencies and references are either absent or something to look up.
fn assert_not_empty(name: &str, field: &Option<String>) {
    assert_ne!(
        field.as_deref(),
        Some(""),
        "{name} is empty rather than absent"
    );
}
