use serde_json::{Value, json};

use super::*;
use crate::{Currency, Money, TransactionId, TransactionStatus, UserId};

fn tx(kind: TransactionKind, amount: i64) -> Transaction {
    let user = UserId::parse("ann").expect("user id");
    let amount = Money::new(amount, Currency::USD).expect("money");
    Transaction {
        status: TransactionStatus::Pending,
        stripe_payment_intent_id: Some("pi_1".into()),
        idempotency_key: "k".into(),
        request_fingerprint: "f".into(),
        ..Transaction::created(TransactionId::new(), user, kind, amount)
    }
}

fn pi(id: &str, tx: &Transaction, amount: i64) -> Value {
    json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_received": amount,
        "currency": "usd", "customer": "cus_ann",
        "metadata": { "transaction_id": tx.id.to_string() },
    })
}

fn bind_pi(tx: &Transaction, object: &Value, signal: Signal) -> Binding {
    bind(
        tx,
        StripeObject::new(object),
        Some(&signal),
        Some("cus_ann"),
    )
}

fn is_mismatch(b: &Binding) -> bool {
    matches!(b, Binding::Mismatch(_))
}

#[test]
fn the_recorded_payment_intent_for_the_amount_held_is_bound() {
    let t = tx(TransactionKind::Payment, 5_000);
    assert_eq!(
        bind_pi(&t, &pi("pi_1", &t, 5_000), Signal::Succeeded),
        Binding::Bound
    );
}

#[test]
fn another_payment_intent_carrying_the_transaction_id_is_refused() {
    let t = tx(TransactionKind::Payment, 5_000);
    assert!(is_mismatch(&bind_pi(
        &t,
        &pi("pi_other", &t, 5_000),
        Signal::Succeeded
    )));
}

#[test]
fn an_object_naming_another_transaction_is_refused() {
    let t = tx(TransactionKind::Payment, 5_000);
    let other = tx(TransactionKind::Payment, 5_000);
    assert!(is_mismatch(&bind_pi(
        &t,
        &pi("pi_1", &other, 5_000),
        Signal::Succeeded
    )));
}

#[test]
fn a_success_for_less_than_the_transaction_holds_is_refused() {
    let t = tx(TransactionKind::Payment, 5_000);
    let mut object = pi("pi_1", &t, 5_000);
    object["amount_received"] = json!(50);
    assert!(is_mismatch(&bind_pi(&t, &object, Signal::Succeeded)));
    assert!(is_mismatch(&bind_pi(
        &t,
        &pi("pi_1", &t, 50),
        Signal::Processing
    )));
}

#[test]
fn an_invoice_never_settles_a_card_payment_nor_a_payment_intent_a_coupon() {
    let t = tx(TransactionKind::Payment, 5_000);
    let invoice = json!({
        "id": "in_1", "object": "invoice", "subtotal": 5_000, "currency": "usd",
        "customer": "cus_ann", "metadata": { "transaction_id": t.id.to_string() },
    });
    assert!(is_mismatch(&bind_pi(&t, &invoice, Signal::Succeeded)));
    let coupon = tx(TransactionKind::Coupon, 5_000);
    assert!(is_mismatch(&bind_pi(
        &coupon,
        &pi("pi_1", &coupon, 5_000),
        Signal::Succeeded
    )));
}

#[test]
fn an_unrecorded_object_is_adopted_only_if_kind_amount_currency_and_customer_match() {
    let mut t = tx(TransactionKind::Payment, 5_000);
    t.stripe_payment_intent_id = None;
    let good = pi("pi_new", &t, 5_000);
    assert_eq!(bind_pi(&t, &good, Signal::Succeeded), Binding::Adopt);
    let mut eur = good.clone();
    eur["currency"] = json!("eur");
    let mut stranger = good.clone();
    stranger["customer"] = json!("cus_mallory");
    let mut no_metadata = good.clone();
    no_metadata["metadata"] = json!({});
    for object in [pi("pi_new", &t, 50), eur, stranger, no_metadata] {
        assert!(
            is_mismatch(&bind_pi(&t, &object, Signal::Succeeded)),
            "{object}"
        );
    }
}

#[test]
fn a_charge_is_bound_through_its_charge_or_its_payment_intent() {
    let mut t = tx(TransactionKind::Payment, 5_000);
    let charge = |id: &str, pi: &str| {
        json!({ "id": id, "object": "charge", "amount": 5_000, "currency": "usd",
                "payment_intent": pi, "metadata": {} })
    };
    let refunded = Signal::Refunded {
        refunds: vec![],
        amount_refunded: Some(5_000),
    };
    assert_eq!(
        bind_pi(&t, &charge("ch_1", "pi_1"), refunded.clone()),
        Binding::Bound
    );
    assert!(is_mismatch(&bind_pi(
        &t,
        &charge("ch_d", "pi_d"),
        refunded.clone()
    )));
    t.stripe_charge_id = Some("ch_1".into());
    assert_eq!(
        bind_pi(&t, &charge("ch_1", "pi_1"), refunded.clone()),
        Binding::Bound
    );
    assert!(is_mismatch(&bind_pi(
        &t,
        &charge("ch_d", "pi_1"),
        refunded.clone()
    )));
    t.stripe_charge_id = None;
    t.stripe_payment_intent_id = None;
    assert!(matches!(
        bind_pi(&t, &charge("ch_1", "pi_1"), refunded),
        Binding::NotYet(_)
    ));
}

#[test]
fn a_dispute_is_bound_through_its_charge() {
    let mut t = tx(TransactionKind::Payment, 5_000);
    t.stripe_charge_id = Some("ch_1".into());
    let dispute = |charge: &str| json!({ "id": "dp_1", "object": "dispute", "amount": 5_000, "charge": charge });
    let opened = Signal::Dispute {
        dispute_id: "dp_1".into(),
        amount: 5_000,
        withdrawn: true,
        reinstated: false,
    };
    assert_eq!(
        bind_pi(&t, &dispute("ch_1"), opened.clone()),
        Binding::Bound
    );
    assert!(is_mismatch(&bind_pi(&t, &dispute("ch_2"), opened)));
}

#[test]
fn a_refund_is_bound_through_its_charge() {
    let mut t = tx(TransactionKind::Payment, 5_000);
    t.stripe_charge_id = Some("ch_1".into());
    let refund = |charge: &str| {
        json!({ "id": "re_1", "object": "refund", "amount": 2_000, "currency": "usd",
                "charge": charge, "payment_intent": "pi_1", "status": "failed" })
    };
    let failed = Signal::Refunded {
        refunds: vec![],
        amount_refunded: None,
    };
    assert_eq!(bind_pi(&t, &refund("ch_1"), failed.clone()), Binding::Bound);
    assert!(is_mismatch(&bind_pi(&t, &refund("ch_2"), failed.clone())));
    let coupon = tx(TransactionKind::Coupon, 5_000);
    assert!(is_mismatch(&bind_pi(&coupon, &refund("ch_1"), failed)));
}
