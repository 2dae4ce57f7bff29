use super::*;
use crate::{Refund, TransactionId};

fn event(event_type: &str, object: Value) -> StripeEvent {
    let payload = serde_json::json!({
        "id": "evt_1", "object": "event", "type": event_type, "created": 1_700_000_000,
        "livemode": false, "data": { "object": object }
    });
    StripeEvent::from_value(payload).expect("valid envelope")
}

/// Real payloads from many API versions (see testdata/stripe-events/SOURCES.md).
#[test]
fn every_recorded_stripe_event_parses_and_has_a_meaning() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/stripe-events");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("testdata present") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let raw = std::fs::read(&path).expect("readable");
        let event = StripeEvent::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file_type = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            file_type.starts_with(&event.event_type),
            "{file_type} vs {}",
            event.event_type
        );
        let meaning = event
            .meaning()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The recorded disputes are inquiries, or chargebacks recorded before their
        // funds were withdrawn: no money moves with them.
        let moves_money = !event.event_type.starts_with("charge.dispute.")
            && event.event_type != "payment_intent.created";
        assert_eq!(
            matches!(meaning, Meaning::Transaction { .. }),
            moves_money,
            "{}: {meaning:?}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} recorded events found");
}

#[test]
fn the_envelope_needs_id_type_and_created() {
    assert!(matches!(
        StripeEvent::parse(b"not json"),
        Err(EventError::NotJson(_))
    ));
    assert!(matches!(
        StripeEvent::parse(b"[]"),
        Err(EventError::NotAnEvent(_))
    ));
    let no_id = br#"{"type":"x","created":1,"data":{"object":{}}}"#;
    assert_eq!(
        StripeEvent::parse(no_id).err(),
        Some(EventError::NotAnEvent("no id"))
    );
    let no_type = br#"{"id":"evt_1","created":1,"data":{"object":{}}}"#;
    assert_eq!(
        StripeEvent::parse(no_type).err(),
        Some(EventError::NotAnEvent("no type"))
    );
    let not_event =
        br#"{"id":"evt_1","object":"charge","type":"x","created":1,"data":{"object":{}}}"#;
    assert!(StripeEvent::parse(not_event).is_err());
}

#[test]
fn our_transaction_id_in_metadata_is_the_first_way_to_find_the_transaction() {
    let id = TransactionId::new();
    let e = event(
        "payment_intent.succeeded",
        serde_json::json!({"id": "pi_1", "object": "payment_intent", "currency": "usd",
            "latest_charge": "ch_1", "metadata": {"transaction_id": id.to_string()}}),
    );
    let Ok(Meaning::Transaction {
        target,
        signal,
        currency,
        charge,
        ..
    }) = e.meaning()
    else {
        panic!("a PaymentIntent event is about a transaction");
    };
    assert_eq!(target.transaction_id, Some(id));
    assert_eq!(target.payment_intent.as_deref(), Some("pi_1"));
    assert_eq!(signal, Signal::Succeeded);
    assert_eq!(currency.as_deref(), Some("usd"));
    assert_eq!(charge.as_deref(), Some("ch_1"));
}

#[test]
fn a_payment_failure_carries_the_decline_code_before_the_error_code() {
    let e = event(
        "payment_intent.payment_failed",
        serde_json::json!({"id": "pi_1", "object": "payment_intent", "last_payment_error":
            {"code": "card_declined", "decline_code": "insufficient_funds", "message": "No funds."}}),
    );
    let Ok(Meaning::Transaction { signal, .. }) = e.meaning() else {
        panic!("transaction event")
    };
    assert_eq!(
        signal,
        Signal::Failed {
            code: "insufficient_funds".into(),
            message: "No funds.".into()
        }
    );
}

#[test]
fn refunds_and_disputes_find_the_payment_through_the_charge() {
    let e = event(
        "charge.refunded",
        serde_json::json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount_refunded": 250,
            "refunds": {"object": "list", "data": [
                {"id": "re_1", "object": "refund", "amount": 200, "status": "succeeded"},
                {"id": "re_2", "object": "refund", "amount": 50, "status": "pending"},
                {"id": "re_3", "object": "refund", "amount": 70, "status": "failed"}]}}),
    );
    let Ok(Meaning::Transaction { target, signal, .. }) = e.meaning() else {
        panic!("transaction event")
    };
    let refund = |id: &str, amount, failed| Refund {
        id: id.into(),
        amount,
        failed,
    };
    assert_eq!(
        signal,
        Signal::Refunded {
            refunds: vec![
                refund("re_1", 200, false),
                refund("re_2", 50, false),
                refund("re_3", 70, true)
            ],
            amount_refunded: Some(250)
        }
    );
    assert_eq!(target.charge.as_deref(), Some("ch_1"));
    assert_eq!(target.payment_intent.as_deref(), Some("pi_1"));

    for t in [
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refund.updated",
    ] {
        let e = event(
            t,
            serde_json::json!({"id": "re_9", "object": "refund", "charge": "ch_1", "payment_intent": "pi_1",
                "amount": 400, "status": if t == "refund.created" { "succeeded" } else { "failed" }}),
        );
        let Ok(Meaning::Transaction { target, signal, .. }) = e.meaning() else {
            panic!("{t}: transaction event")
        };
        assert_eq!(
            signal,
            Signal::Refunded {
                refunds: vec![refund("re_9", 400, t != "refund.created")],
                amount_refunded: None
            },
            "{t}"
        );
        assert_eq!(
            (target.charge.as_deref(), target.payment_intent.as_deref()),
            (Some("ch_1"), Some("pi_1"))
        );
    }

    let e = event(
        "charge.dispute.closed",
        serde_json::json!({"id": "dp_1", "object": "dispute", "charge": "ch_1", "amount": 100, "status": "won"}),
    );
    let Ok(Meaning::Transaction { target, signal, .. }) = e.meaning() else {
        panic!("transaction event")
    };
    assert_eq!(signal, dispute(true, true));
    assert_eq!(target.charge.as_deref(), Some("ch_1"));
}

fn dispute(withdrawn: bool, reinstated: bool) -> Signal {
    Signal::Dispute {
        dispute_id: "dp_1".into(),
        amount: 100,
        withdrawn,
        reinstated,
    }
}

/// What a dispute event means for the money, by its type and the dispute's state.
#[test]
fn a_dispute_moves_money_only_when_stripe_moved_the_funds() {
    let withdrawal = serde_json::json!([{"amount": -100, "reporting_category": "dispute"}]);
    let both = serde_json::json!([{"amount": -100}, {"amount": 100}]);
    let none = serde_json::json!([]);
    let cases = [
        (
            "charge.dispute.created",
            "warning_needs_response",
            &none,
            None,
        ),
        ("charge.dispute.closed", "warning_closed", &none, None),
        ("charge.dispute.created", "needs_response", &none, None),
        (
            "charge.dispute.created",
            "needs_response",
            &withdrawal,
            Some(dispute(true, false)),
        ),
        (
            "charge.dispute.funds_withdrawn",
            "needs_response",
            &none,
            Some(dispute(true, false)),
        ),
        (
            "charge.dispute.closed",
            "lost",
            &withdrawal,
            Some(dispute(true, false)),
        ),
        (
            "charge.dispute.closed",
            "lost",
            &none,
            Some(dispute(true, false)),
        ),
        (
            "charge.dispute.closed",
            "won",
            &both,
            Some(dispute(true, true)),
        ),
        (
            "charge.dispute.funds_reinstated",
            "won",
            &both,
            Some(dispute(true, true)),
        ),
        (
            "charge.dispute.funds_reinstated",
            "under_review",
            &none,
            Some(dispute(true, true)),
        ),
    ];
    for (t, status, transactions, expected) in cases {
        let e = event(
            t,
            serde_json::json!({"id": "dp_1", "object": "dispute", "charge": "ch_1", "amount": 100,
                "status": status, "balance_transactions": transactions}),
        );
        let signal = match e.meaning() {
            Ok(Meaning::Transaction { signal, .. }) => Some(signal),
            Ok(Meaning::Nothing) => None,
            other => panic!("{t} {status}: {other:?}"),
        };
        assert_eq!(signal, expected, "{t} {status} {transactions}");
    }
}

#[test]
fn an_empty_legacy_charge_id_is_no_charge() {
    // Found by fuzzing: an empty `charges.data[0].id` became `Some("")`, which the
    // store would record as the transaction's charge (and `stripe_charge_id` is unique).
    let e = event(
        "payment_intent.succeeded",
        serde_json::json!({"id": "pi_1", "object": "payment_intent",
            "charges": {"data": [{"id": ""}]}}),
    );
    let Ok(Meaning::Transaction { charge, .. }) = e.meaning() else {
        panic!("transaction event")
    };
    assert_eq!(charge, None);

    let e = event(
        "payment_intent.succeeded",
        serde_json::json!({"id": "pi_1", "object": "payment_intent",
            "charges": {"data": [{"id": "ch_1"}]}}),
    );
    let Ok(Meaning::Transaction { charge, .. }) = e.meaning() else {
        panic!("transaction event")
    };
    assert_eq!(charge.as_deref(), Some("ch_1"));
}

#[test]
fn a_refund_event_without_its_amount_is_an_error_not_a_guess() {
    let e = event(
        "charge.refunded",
        serde_json::json!({"id": "ch_1", "object": "charge"}),
    );
    assert!(matches!(
        e.meaning(),
        Err(EventError::MissingField {
            field: "amount_refunded",
            ..
        })
    ));
}

#[test]
fn unknown_types_mean_nothing_but_are_still_events() {
    let e = event(
        "customer.created",
        serde_json::json!({"id": "cus_1", "object": "customer"}),
    );
    assert_eq!(e.meaning(), Ok(Meaning::Nothing));
}

#[test]
fn the_acted_on_list_is_exactly_the_types_with_a_meaning() {
    let object = serde_json::json!({
        "id": "obj_1", "object": "payment_intent", "metadata": {}, "customer": "cus_1",
        "card": { "fingerprint": "fp" }, "currency": "usd", "amount": 100,
        "amount_refunded": 100, "charge": "ch_1", "status": "won"
    });
    for t in ACTED_ON_TYPES {
        let meaning = event(t, object.clone()).meaning();
        assert!(
            !matches!(meaning, Ok(Meaning::Nothing)),
            "{t} is listed but means nothing"
        );
    }
    for t in [
        "payment_intent.created",
        "customer.created",
        "invoice.finalized",
    ] {
        assert_eq!(
            event(t, object.clone()).meaning(),
            Ok(Meaning::Nothing),
            "{t}"
        );
    }
}
