//! Every object the simulator emits, parsed with async-stripe's own types, the way a service
//! would parse a webhook payload: a field async-stripe requires and the simulator forgot makes
//! this fail.

use miniserde::json::Value;
use stripe_types::miniserde_helpers::FromValueOpt;

use crate::support::{call, sim};

fn parses(object_name: &str, object: Value) -> bool {
    match object_name {
        "customer" => stripe_core::Customer::from_value(object).is_some(),
        "payment_method" => stripe_payment::PaymentMethod::from_value(object).is_some(),
        "payment_intent" => stripe_core::PaymentIntent::from_value(object).is_some(),
        "charge" => stripe_core::Charge::from_value(object).is_some(),
        "refund" => stripe_core::Refund::from_value(object).is_some(),
        "dispute" => stripe_core::Dispute::from_value(object).is_some(),
        "coupon" => stripe_product::Coupon::from_value(object).is_some(),
        "promotion_code" => stripe_product::PromotionCode::from_value(object).is_some(),
        "invoice" => stripe_billing::Invoice::from_value(object).is_some(),
        "invoiceitem" => stripe_billing::InvoiceItem::from_value(object).is_some(),
        other => panic!("no async-stripe type checked for {other}"),
    }
}

#[tokio::test]
async fn every_event_and_object_parses_with_async_stripe_types() {
    let sim = sim().await;
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        let sim = &sim;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = call(sim, "POST", path, &form).await;
            assert!(status == 200 || status == 402, "{path}: {body}");
            body
        }
    };
    let customer = post("/v1/customers", vec![("email", "w@example.com".into())]).await;
    let cus = customer["id"].as_str().expect("id").to_owned();
    let pm = call(
        &sim,
        "POST",
        "/v1/payment_methods/pm_card_visa/attach",
        &[("customer", &cus)],
    )
    .await
    .1;
    let pm = pm["id"].as_str().expect("id").to_owned();
    call(
        &sim,
        "POST",
        &format!("/v1/customers/{cus}"),
        &[("invoice_settings[default_payment_method]", &pm)],
    )
    .await;
    let paid = post(
        "/v1/payment_intents",
        vec![
            ("amount", "1000".into()),
            ("currency", "usd".into()),
            ("customer", cus.clone()),
            ("payment_method", pm.clone()),
            ("confirm", "true".into()),
        ],
    )
    .await;
    post(
        "/v1/payment_intents",
        vec![
            ("amount", "1000".into()),
            ("currency", "usd".into()),
            ("payment_method", "pm_card_chargeDeclined".into()),
            ("confirm", "true".into()),
        ],
    )
    .await;
    post(
        "/v1/payment_intents",
        vec![
            ("amount", "1000".into()),
            ("currency", "usd".into()),
            ("payment_method", "pm_card_threeDSecure2Required".into()),
            ("confirm", "true".into()),
        ],
    )
    .await;
    post(
        "/v1/refunds",
        vec![
            (
                "payment_intent",
                paid["id"].as_str().expect("id").to_owned(),
            ),
            ("amount", "100".into()),
        ],
    )
    .await;
    let charge = paid["latest_charge"].as_str().expect("charge").to_owned();
    let dispute = sim.open_dispute(&charge, None).expect("dispute");
    sim.close_dispute(dispute["id"].as_str().expect("id"), true)
        .expect("closed");
    // Every step of a dispute's life: the dispute cards, an escalated inquiry, evidence.
    for card in [
        "pm_card_createDisputeInquiry",
        "pm_card_createMultipleDisputes",
    ] {
        post(
            "/v1/payment_intents",
            vec![
                ("amount", "1500".into()),
                ("currency", "usd".into()),
                ("payment_method", card.into()),
                ("confirm", "true".into()),
            ],
        )
        .await;
    }
    let (_, disputes) = call(&sim, "GET", "/v1/disputes", &[("limit", "3")]).await;
    let ids: Vec<String> = disputes["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect();
    let [second, first, inquiry] = &ids[..] else {
        panic!("three disputes: {ids:?}");
    };
    sim.escalate_dispute(inquiry).expect("escalated");
    call(
        &sim,
        "POST",
        &format!("/v1/disputes/{first}"),
        &[("evidence[uncategorized_text]", "winning_evidence")],
    )
    .await;
    call(&sim, "POST", &format!("/v1/disputes/{second}/close"), &[]).await;
    // A refund that fails after the fact.
    let refund_fails = post(
        "/v1/payment_intents",
        vec![
            ("amount", "1500".into()),
            ("currency", "usd".into()),
            ("payment_method", "pm_card_refundFail".into()),
            ("confirm", "true".into()),
        ],
    )
    .await;
    post(
        "/v1/refunds",
        vec![(
            "payment_intent",
            refund_fails["id"].as_str().expect("id").to_owned(),
        )],
    )
    .await;
    post(
        "/v1/coupons",
        vec![
            ("id", "TEN".into()),
            ("percent_off", "10".into()),
            ("duration", "once".into()),
        ],
    )
    .await;
    let promo = post(
        "/v1/promotion_codes",
        vec![
            ("promotion[type]", "coupon".into()),
            ("promotion[coupon]", "TEN".into()),
        ],
    )
    .await;
    post(
        "/v1/invoiceitems",
        vec![
            ("customer", cus.clone()),
            ("amount", "5000".into()),
            ("currency", "usd".into()),
        ],
    )
    .await;
    let invoice = post(
        "/v1/invoices",
        vec![
            ("customer", cus.clone()),
            ("pending_invoice_items_behavior", "include".into()),
            (
                "discounts[0][promotion_code]",
                promo["id"].as_str().expect("id").to_owned(),
            ),
        ],
    )
    .await;
    let invoice_id = invoice["id"].as_str().expect("id").to_owned();
    call(
        &sim,
        "POST",
        &format!("/v1/invoices/{invoice_id}/finalize"),
        &[],
    )
    .await;
    let (status, paid_invoice) =
        call(&sim, "POST", &format!("/v1/invoices/{invoice_id}/pay"), &[]).await;
    assert_eq!(
        (
            status,
            paid_invoice["status"].as_str(),
            paid_invoice["total"].as_i64()
        ),
        (200, Some("paid"), Some(4500))
    );

    let events = sim.events();
    assert!(events.len() > 20, "{}", events.len());
    let mut seen = std::collections::BTreeSet::new();
    for event in events {
        let text = serde_json::to_string(&event).expect("json");
        let parsed: stripe_core::Event =
            miniserde::json::from_str(&text).unwrap_or_else(|_| panic!("event: {text}"));
        assert!(
            !matches!(parsed.type_, stripe_core::EventType::Unknown(_)),
            "{}",
            event["type"]
        );
        let object_name = event["data"]["object"]["object"]
            .as_str()
            .expect("object")
            .to_owned();
        let object: Value = miniserde::json::from_str(
            &serde_json::to_string(&event["data"]["object"]).expect("json"),
        )
        .expect("value");
        assert!(
            parses(&object_name, object),
            "{object_name} in {}: {}",
            event["type"],
            event["data"]["object"]
        );
        seen.insert(object_name);
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
}
