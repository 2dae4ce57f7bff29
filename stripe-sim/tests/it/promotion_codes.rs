//! Promotion codes with every rule Stripe enforces when one is applied to an invoice, several
//! codes of one coupon, and invoices whose payment fails, is found, and is paid after all.

use serde_json::Value;
use stripe_sim::StripeSim;

use crate::support::{call, sim};

async fn ok(sim: &StripeSim, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = call(sim, method, path, form).await;
    assert_eq!(status, 200, "{method} {path}: {body}");
    body
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

async fn customer(sim: &StripeSim) -> String {
    id(&ok(sim, "POST", "/v1/customers", &[]).await)
}

/// A $5 coupon and a promotion code of it with `extra` parameters.
async fn code(sim: &StripeSim, coupon: &str, code: &str, extra: &[(&str, &str)]) -> String {
    let (status, _) = call(sim, "GET", &format!("/v1/coupons/{coupon}"), &[]).await;
    if status == 404 {
        ok(
            sim,
            "POST",
            "/v1/coupons",
            &[("id", coupon), ("amount_off", "500"), ("currency", "usd")],
        )
        .await;
    }
    let mut form = vec![
        ("promotion[type]", "coupon"),
        ("promotion[coupon]", coupon),
        ("code", code),
    ];
    form.extend_from_slice(extra);
    id(&ok(sim, "POST", "/v1/promotion_codes", &form).await)
}

/// A draft invoice of `customer` with the promotion code applied: the answer as it comes.
async fn apply(sim: &StripeSim, customer: &str, promo: &str) -> (u16, Value) {
    call(
        sim,
        "POST",
        "/v1/invoices",
        &[
            ("customer", customer),
            ("discounts[0][promotion_code]", promo),
        ],
    )
    .await
}

/// Adds one `amount` (usd) line to a draft invoice.
async fn add_line(sim: &StripeSim, customer: &str, invoice: &str, amount: i64) {
    let amount = amount.to_string();
    let line = [
        ("customer", customer),
        ("invoice", invoice),
        ("amount", amount.as_str()),
        ("currency", "usd"),
    ];
    ok(sim, "POST", "/v1/invoiceitems", &line).await;
}

async fn finalize(sim: &StripeSim, invoice: &str) -> (u16, Value) {
    call(
        sim,
        "POST",
        &format!("/v1/invoices/{invoice}/finalize"),
        &[],
    )
    .await
}

async fn set_active(sim: &StripeSim, promo: &str, active: &str) {
    let path = format!("/v1/promotion_codes/{promo}");
    ok(sim, "POST", &path, &[("active", active)]).await;
}

/// Applies, adds one `amount` line and finalizes: the finalize answer.
async fn redeem(sim: &StripeSim, customer: &str, promo: &str, amount: i64) -> (u16, Value) {
    let (status, invoice) = apply(sim, customer, promo).await;
    assert_eq!(status, 200, "{invoice}");
    let invoice = id(&invoice);
    add_line(sim, customer, &invoice, amount).await;
    finalize(sim, &invoice).await
}

fn assert_refused(answer: &(u16, Value), param: &str, because: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{body}");
    let error = &body["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], param);
    assert_eq!(
        error["message"],
        format!("This promotion code cannot be redeemed because {because}."),
        "{body}"
    );
}

const APPLIED: &str = "discounts[0][promotion_code]";

#[tokio::test]
async fn inactive_expired_and_exhausted_codes_are_refused() {
    let sim = sim().await;
    let buyer = customer(&sim).await;
    let inactive = code(&sim, "FIVE", "OFF", &[("active", "false")]).await;
    assert_refused(
        &apply(&sim, &buyer, &inactive).await,
        APPLIED,
        "it is inactive",
    );
    let expired = code(&sim, "FIVE", "OLD", &[("expires_at", "1000")]).await;
    assert_refused(
        &apply(&sim, &buyer, &expired).await,
        APPLIED,
        "it has expired",
    );

    let once = code(&sim, "FIVE", "ONCE", &[("max_redemptions", "1")]).await;
    // Two drafts hold the code; the first finalized redeems it, the second is refused then.
    let (_, first) = apply(&sim, &buyer, &once).await;
    let (status, _) = redeem(&sim, &buyer, &once, 500).await;
    assert_eq!(status, 200);
    assert_refused(
        &apply(&sim, &buyer, &once).await,
        APPLIED,
        "it has been used the maximum number of times",
    );
    let first = id(&first);
    add_line(&sim, &buyer, &first, 500).await;
    let late = finalize(&sim, &first).await;
    assert_refused(
        &late,
        "discounts",
        "it has been used the maximum number of times",
    );
    let (_, draft) = call(&sim, "GET", &format!("/v1/invoices/{first}"), &[]).await;
    assert_eq!(
        draft["status"], "draft",
        "a refused finalization changes nothing"
    );

    let (_, promo) = call(&sim, "GET", &format!("/v1/promotion_codes/{once}"), &[]).await;
    assert_eq!(
        (
            promo["times_redeemed"].as_i64(),
            promo["max_redemptions"].as_i64()
        ),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn a_customer_specific_code_serves_its_customer_only() {
    let sim = sim().await;
    let (owner, other) = (customer(&sim).await, customer(&sim).await);
    let mine = code(&sim, "FIVE", "MINE", &[("customer", &owner)]).await;
    assert_refused(
        &apply(&sim, &other, &mine).await,
        APPLIED,
        "it is restricted to another customer",
    );
    let (status, _) = redeem(&sim, &owner, &mine, 500).await;
    assert_eq!(status, 200);
    let (_, listed) = call(&sim, "GET", "/v1/promotion_codes", &[("customer", &owner)]).await;
    assert_eq!(listed["data"][0]["id"], mine.as_str());
}

#[tokio::test]
async fn a_first_time_code_is_refused_after_any_payment_or_paid_invoice() {
    let sim = sim().await;
    let first_time = code(
        &sim,
        "FIVE",
        "HELLO",
        &[("restrictions[first_time_transaction]", "true")],
    )
    .await;
    let (_, promo) = call(
        &sim,
        "GET",
        &format!("/v1/promotion_codes/{first_time}"),
        &[],
    )
    .await;
    assert_eq!(promo["restrictions"]["first_time_transaction"], true);

    let paying = customer(&sim).await;
    ok(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "100"),
            ("currency", "usd"),
            ("customer", &paying),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
        ],
    )
    .await;
    assert_refused(
        &apply(&sim, &paying, &first_time).await,
        APPLIED,
        "the associated customer has prior transactions",
    );

    let new = customer(&sim).await;
    let (status, paid) = redeem(&sim, &new, &first_time, 500).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (200, Some("paid")),
        "a first transaction"
    );
    assert_refused(
        &apply(&sim, &new, &first_time).await,
        APPLIED,
        "the associated customer has prior transactions",
    );
}

#[tokio::test]
async fn a_minimum_amount_is_checked_on_the_finalized_invoice() {
    let sim = sim().await;
    let buyer = customer(&sim).await;
    let minimum = code(
        &sim,
        "FIVE",
        "BIG",
        &[
            ("restrictions[minimum_amount]", "1000"),
            ("restrictions[minimum_amount_currency]", "usd"),
        ],
    )
    .await;
    let short = redeem(&sim, &buyer, &minimum, 999).await;
    assert_refused(
        &short,
        "discounts",
        "the associated purchase does not meet the minimum amount requirement",
    );
    let (status, open) = redeem(&sim, &buyer, &minimum, 1000).await;
    assert_eq!((status, open["total"].as_i64()), (200, Some(500)), "{open}");

    let euros = code(
        &sim,
        "FIVE",
        "EURO",
        &[
            ("restrictions[minimum_amount]", "10"),
            ("restrictions[minimum_amount_currency]", "eur"),
        ],
    )
    .await;
    let other_currency = redeem(&sim, &buyer, &euros, 5000).await;
    assert_refused(
        &other_currency,
        "discounts",
        "the associated purchase does not meet the minimum amount requirement",
    );
}

#[tokio::test]
async fn several_codes_of_one_coupon_share_its_redemptions() {
    let sim = sim().await;
    ok(
        &sim,
        "POST",
        "/v1/coupons",
        &[
            ("id", "TWICE"),
            ("amount_off", "300"),
            ("currency", "usd"),
            ("max_redemptions", "2"),
        ],
    )
    .await;
    let a = code(&sim, "TWICE", "TWICE_A", &[]).await;
    let b = code(&sim, "TWICE", "TWICE_B", &[]).await;
    let (_, by_coupon) = call(&sim, "GET", "/v1/promotion_codes", &[("coupon", "TWICE")]).await;
    let ids: Vec<String> = by_coupon["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(id)
        .collect();
    assert_eq!(ids, [b.clone(), a.clone()], "newest first");
    let (_, by_code) = call(&sim, "GET", "/v1/promotion_codes", &[("code", "twice_a")]).await;
    assert_eq!(
        by_code["data"][0]["id"],
        a.as_str(),
        "codes match case-insensitively"
    );
    assert_eq!(by_code["data"][0]["promotion"]["coupon"], "TWICE");

    let buyer = customer(&sim).await;
    for promo in [&a, &b] {
        let (status, _) = redeem(&sim, &buyer, promo, 300).await;
        assert_eq!(status, 200);
    }
    let coupon = ok(&sim, "GET", "/v1/coupons/TWICE", &[]).await;
    assert_eq!(
        (coupon["times_redeemed"].as_i64(), coupon["valid"].as_bool()),
        (Some(2), Some(false))
    );
    let (status, refused) = apply(&sim, &buyer, &a).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("coupon_expired")),
        "{refused}"
    );
    let (status, by_id) = call(
        &sim,
        "POST",
        "/v1/invoices",
        &[("customer", &buyer), ("discounts[0][coupon]", "TWICE")],
    )
    .await;
    assert_eq!(
        (status, by_id["error"]["code"].as_str()),
        (400, Some("coupon_expired")),
        "the coupon id obeys it too"
    );
}

/// An open $10 invoice of a new customer, with metadata: `(customer, invoice)`.
async fn open_invoice(sim: &StripeSim) -> (String, String) {
    let buyer = customer(sim).await;
    let invoice = id(&ok(
        sim,
        "POST",
        "/v1/invoices",
        &[
            ("customer", &buyer),
            ("metadata[transaction_id]", "tx_coupon"),
        ],
    )
    .await);
    add_line(sim, &buyer, &invoice, 1000).await;
    let (_, open) = finalize(sim, &invoice).await;
    assert_eq!(open["status"], "open", "{open}");
    (buyer, invoice)
}

#[tokio::test]
async fn a_failed_invoice_payment_is_found_through_its_payment_and_paid_after_all() {
    let sim = sim().await;
    let (_, invoice) = open_invoice(&sim).await;
    let fetched = ok(&sim, "GET", &format!("/v1/invoices/{invoice}"), &[]).await;
    assert!(
        fetched.get("payments").is_none(),
        "an includable field: only when expanded"
    );
    assert!(fetched.get("payment_intent").is_none(), "gone since basil");

    let (status, declined) = call(
        &sim,
        "POST",
        &format!("/v1/invoices/{invoice}/pay"),
        &[("payment_method", "pm_card_chargeDeclinedInsufficientFunds")],
    )
    .await;
    assert_eq!(status, 402, "{declined}");
    let failed = sim
        .events()
        .into_iter()
        .rev()
        .find(|e| e["type"] == "invoice.payment_failed")
        .expect("event");
    assert_eq!(failed["data"]["object"]["id"], invoice.as_str());

    // The reader of invoice.payment_failed finds the real failure through the payment.
    let expanded = ok(
        &sim,
        "GET",
        &format!("/v1/invoices/{invoice}"),
        &[("expand[]", "payments.data.payment.payment_intent")],
    )
    .await;
    let payments = expanded["payments"]["data"].as_array().expect("payments");
    assert_eq!(payments.len(), 1);
    let intent = &payments[0]["payment"]["payment_intent"];
    assert_eq!(
        intent["last_payment_error"]["decline_code"],
        "insufficient_funds"
    );
    assert_eq!(
        intent["last_payment_error"]["message"],
        "Your card has insufficient funds."
    );
    assert_eq!(
        intent["metadata"],
        serde_json::json!({}),
        "Stripe does not copy the invoice's metadata"
    );
    assert_eq!(payments[0]["status"], "open");
    // async-stripe reads it too, as a service would with RetrieveInvoice and that expand[].
    let typed: stripe_billing::Invoice = miniserde::json::from_str(&expanded.to_string())
        .unwrap_or_else(|_| panic!("async-stripe parses {expanded}"));
    let payment = &typed.payments.expect("payments").data[0];
    let Some(stripe_types::Expandable::Object(typed_intent)) = &payment.payment.payment_intent
    else {
        panic!("an expanded payment intent");
    };
    let error = typed_intent
        .last_payment_error
        .as_ref()
        .expect("last_payment_error");
    assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
    let listed = ok(
        &sim,
        "GET",
        "/v1/invoice_payments",
        &[
            ("invoice", &invoice),
            ("expand[]", "data.payment.payment_intent"),
        ],
    )
    .await;
    assert_eq!(
        listed["data"][0]["payment"]["payment_intent"]["id"],
        intent["id"]
    );

    let paid = ok(
        &sim,
        "POST",
        &format!("/v1/invoices/{invoice}/pay"),
        &[("payment_method", "pm_card_visa")],
    )
    .await;
    assert_eq!(
        (paid["status"].as_str(), paid["amount_paid"].as_i64()),
        (Some("paid"), Some(1000))
    );
    let payment = ok(
        &sim,
        "GET",
        &format!("/v1/invoice_payments/{}", id(&payments[0])),
        &[],
    )
    .await;
    assert_eq!(
        (payment["status"].as_str(), payment["amount_paid"].as_i64()),
        (Some("paid"), Some(1000))
    );
    let (_, retried) = call(
        &sim,
        "GET",
        &format!("/v1/payment_intents/{}", id(intent)),
        &[],
    )
    .await;
    assert_eq!(
        retried["status"], "succeeded",
        "the same PaymentIntent, confirmed again"
    );
    let types: Vec<String> = sim
        .events()
        .iter()
        .filter_map(|e| {
            e["type"]
                .as_str()
                .filter(|t| t.starts_with("invoice."))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        types,
        [
            "invoice.created",
            "invoice.finalized",
            "invoice.payment_failed",
            "invoice.paid",
            "invoice.payment_succeeded"
        ]
    );
}

#[tokio::test]
async fn voiding_an_open_invoice_cancels_its_payment_and_a_draft_is_deleted_instead() {
    let sim = sim().await;
    let (buyer, invoice) = open_invoice(&sim).await;
    let voided = ok(&sim, "POST", &format!("/v1/invoices/{invoice}/void"), &[]).await;
    assert_eq!(
        (voided["status"].as_str(), voided["amount_due"].as_i64()),
        (Some("void"), Some(0))
    );
    let payments = ok(
        &sim,
        "GET",
        "/v1/invoice_payments",
        &[
            ("invoice", &invoice),
            ("expand[]", "data.payment.payment_intent"),
        ],
    )
    .await;
    assert_eq!(payments["data"][0]["status"], "canceled");
    assert_eq!(
        payments["data"][0]["payment"]["payment_intent"]["status"],
        "canceled"
    );
    let types: Vec<String> = sim
        .events()
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect();
    assert!(
        types.ends_with(&[
            "payment_intent.canceled".to_owned(),
            "invoice.voided".to_owned()
        ]),
        "{types:?}"
    );

    let draft = id(&ok(&sim, "POST", "/v1/invoices", &[("customer", &buyer)]).await);
    let (status, refused) = call(&sim, "POST", &format!("/v1/invoices/{draft}/void"), &[]).await;
    assert_eq!(status, 400, "{refused}");
    let deleted = ok(&sim, "DELETE", &format!("/v1/invoices/{draft}"), &[]).await;
    assert_eq!(deleted["deleted"], true);
    assert_eq!(
        sim.events().last().expect("event")["type"],
        "invoice.deleted"
    );
}

#[tokio::test]
async fn a_refused_finalization_can_succeed_later_and_pay_the_first_invoice_after_all() {
    // A coupon attempt fails (the code was switched off before the invoice was finalized);
    // the code comes back, and the first invoice is finalized and paid after all.
    let sim = sim().await;
    let buyer = customer(&sim).await;
    let promo = code(&sim, "FIVE", "FLAKY", &[]).await;
    let (_, invoice) = apply(&sim, &buyer, &promo).await;
    let invoice = id(&invoice);
    add_line(&sim, &buyer, &invoice, 500).await;
    set_active(&sim, &promo, "false").await;
    let refused = finalize(&sim, &invoice).await;
    assert_refused(&refused, "discounts", "it is inactive");

    set_active(&sim, &promo, "true").await;
    let (status, paid) = finalize(&sim, &invoice).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        (paid["status"].as_str(), paid["total"].as_i64()),
        (Some("paid"), Some(0))
    );
    let paid_event = sim
        .events()
        .into_iter()
        .rev()
        .find(|e| e["type"] == "invoice.paid")
        .expect("paid");
    assert_eq!(paid_event["data"]["object"]["id"], invoice.as_str());
}
