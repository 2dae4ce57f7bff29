use std::collections::HashMap;

use stripe_billing::InvoiceStatus;
use stripe_billing::invoice::{
    CreateInvoice, CreateInvoiceDiscounts, CreateInvoicePendingInvoiceItemsBehavior,
    FinalizeInvoiceInvoice, PayInvoice, RetrieveInvoice, VoidInvoiceInvoice,
};
use stripe_billing::invoice_item::CreateInvoiceItem;
use stripe_core::customer::CreateCustomer;
use stripe_product::CouponDuration;
use stripe_product::coupon::{CreateCoupon, RetrieveCoupon};
use stripe_product::promotion_code::{
    CreatePromotionCode, CreatePromotionCodePromotion, CreatePromotionCodePromotionType,
    ListPromotionCode, RetrievePromotionCode,
};
use stripe_types::Currency;

use crate::support::{call, client, sim, stripe_error};

fn promotion(coupon: &str) -> CreatePromotionCodePromotion {
    let mut promotion = CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon);
    promotion.coupon = Some(coupon.to_owned());
    promotion
}

fn discount_promo(promo: &str) -> CreateInvoiceDiscounts {
    let mut discount = CreateInvoiceDiscounts::new();
    discount.promotion_code = Some(promo.to_owned());
    discount
}

#[tokio::test]
async fn coupons_and_promotion_codes_are_created_listed_by_code_and_retrieved() {
    let sim = sim().await;
    let client = client(&sim);
    let coupon = CreateCoupon::new()
        .id("FIVE_OFF")
        .amount_off(500)
        .currency(Currency::USD)
        .duration(CouponDuration::Once)
        .max_redemptions(10)
        .name("Five off")
        .send(&client)
        .await
        .expect("coupon");
    assert_eq!(coupon.id.as_str(), "FIVE_OFF");
    assert!(coupon.valid);
    assert_eq!(coupon.times_redeemed, 0);
    let percent = CreateCoupon::new()
        .percent_off(25.0)
        .duration(CouponDuration::Forever)
        .send(&client)
        .await
        .expect("coupon");
    assert_eq!(percent.percent_off, Some(25.0));

    let promo = CreatePromotionCode::new(promotion("FIVE_OFF"))
        .code("WELCOME5")
        .max_redemptions(3)
        .send(&client)
        .await
        .expect("promo");
    assert_eq!(promo.code, "WELCOME5");
    assert!(promo.active);
    let listed = ListPromotionCode::new()
        .code("WELCOME5")
        .active(true)
        .send(&client)
        .await
        .expect("listed");
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].id, promo.id);
    let none = ListPromotionCode::new()
        .code("NOPE")
        .send(&client)
        .await
        .expect("listed");
    assert!(none.data.is_empty());
    let fetched = RetrievePromotionCode::new(promo.id.clone())
        .send(&client)
        .await
        .expect("retrieved");
    assert_eq!(
        fetched.promotion.coupon.expect("coupon").id().as_str(),
        "FIVE_OFF"
    );
    let fetched_coupon = RetrieveCoupon::new("FIVE_OFF")
        .send(&client)
        .await
        .expect("coupon");
    assert_eq!(fetched_coupon.amount_off, Some(500));

    let (status, _) = call(
        &sim,
        "POST",
        "/v1/promotion_codes",
        &[("coupon", "FIVE_OFF"), ("code", "OLDSTYLE")],
    )
    .await;
    assert_eq!(
        status, 200,
        "the pre-endive `coupon=` parameter is accepted too"
    );
    let (error, status) = stripe_error(
        CreatePromotionCode::new(promotion("FIVE_OFF"))
            .code("welcome5")
            .send(&client)
            .await,
    );
    assert_eq!(
        (status, error.param.as_deref()),
        (400, Some("code")),
        "codes are unique, case-insensitively"
    );
}

#[tokio::test]
async fn a_fully_discounted_invoice_is_paid_on_finalization_and_counts_a_redemption() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new()
        .email("c@example.com")
        .send(&client)
        .await
        .expect("customer");
    CreateCoupon::new()
        .id("FREE")
        .percent_off(100.0)
        .duration(CouponDuration::Once)
        .max_redemptions(1)
        .send(&client)
        .await
        .expect("coupon");
    let promo = CreatePromotionCode::new(promotion("FREE"))
        .code("FREEBIE")
        .send(&client)
        .await
        .expect("promo");

    let invoice = CreateInvoice::new()
        .customer(customer.id.as_str())
        .discounts(vec![discount_promo(promo.id.as_str())])
        .metadata(HashMap::from([(
            "transaction_id".to_owned(),
            "tx_9".to_owned(),
        )]))
        .send(&client)
        .await
        .expect("invoice");
    assert_eq!(invoice.status, Some(InvoiceStatus::Draft));
    let invoice_id = invoice.id.clone().expect("id");
    CreateInvoiceItem::new()
        .customer(customer.id.as_str())
        .amount(1999)
        .currency(Currency::USD)
        .description("Gift card")
        .invoice(invoice_id.as_str())
        .send(&client)
        .await
        .expect("item");

    let finalized = FinalizeInvoiceInvoice::new(invoice_id.clone())
        .send(&client)
        .await
        .expect("finalized");
    assert_eq!(finalized.status, Some(InvoiceStatus::Paid));
    assert_eq!(
        (finalized.subtotal, finalized.total, finalized.amount_due),
        (1999, 0, 0)
    );
    assert_eq!(finalized.lines.data.len(), 1);
    assert_eq!(
        finalized.total_discount_amounts.expect("discounts")[0].amount,
        1999
    );
    assert_eq!(
        finalized.metadata.expect("metadata")["transaction_id"],
        "tx_9"
    );

    let coupon = RetrieveCoupon::new("FREE")
        .send(&client)
        .await
        .expect("coupon");
    assert_eq!(coupon.times_redeemed, 1);
    assert!(!coupon.valid, "max_redemptions reached");
    let promo = RetrievePromotionCode::new(promo.id.clone())
        .send(&client)
        .await
        .expect("promo");
    assert_eq!(promo.times_redeemed, 1);

    let events = sim.events();
    let types: Vec<&str> = events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("invoice."))
        .collect();
    assert_eq!(
        types,
        [
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded"
        ]
    );
    let paid = events
        .iter()
        .find(|e| e["type"] == "invoice.paid")
        .expect("paid event");
    assert_eq!(paid["data"]["object"]["metadata"]["transaction_id"], "tx_9");

    let second = CreateInvoice::new()
        .customer(customer.id.as_str())
        .discounts(vec![discount_promo(promo.id.as_str())])
        .send(&client)
        .await;
    let (_, status) = stripe_error(second);
    assert_eq!(status, 400, "an exhausted promotion code cannot be applied");
}

#[tokio::test]
async fn an_amount_off_is_capped_and_an_open_invoice_is_paid_or_declined_with_a_card() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new().send(&client).await.expect("customer");
    let mut coupon = CreateInvoiceDiscounts::new();
    coupon.coupon = Some(
        CreateCoupon::new()
            .amount_off(300)
            .currency(Currency::USD)
            .send(&client)
            .await
            .expect("coupon")
            .id
            .to_string(),
    );
    CreateInvoiceItem::new()
        .customer(customer.id.as_str())
        .amount(1000)
        .currency(Currency::USD)
        .send(&client)
        .await
        .expect("item");
    let invoice = CreateInvoice::new()
        .customer(customer.id.as_str())
        .discounts(vec![coupon])
        .pending_invoice_items_behavior(CreateInvoicePendingInvoiceItemsBehavior::Include)
        .send(&client)
        .await
        .expect("invoice");
    let id = invoice.id.clone().expect("id");
    let open = FinalizeInvoiceInvoice::new(id.clone())
        .send(&client)
        .await
        .expect("finalized");
    assert_eq!(
        (open.status, open.total, open.amount_due),
        (Some(InvoiceStatus::Open), 700, 700)
    );
    assert!(open.number.is_some());

    let declined = PayInvoice::new(id.clone())
        .payment_method("pm_card_chargeDeclined")
        .send(&client)
        .await;
    let (error, status) = stripe_error(declined);
    assert_eq!(
        (status, error.decline_code.as_deref()),
        (402, Some("generic_decline"))
    );
    assert!(
        sim.events()
            .iter()
            .any(|e| e["type"] == "invoice.payment_failed")
    );

    let paid = PayInvoice::new(id.clone())
        .payment_method("pm_card_visa")
        .send(&client)
        .await
        .expect("paid");
    assert_eq!(
        (paid.status, paid.amount_paid, paid.amount_remaining),
        (Some(InvoiceStatus::Paid), 700, 0)
    );
    assert_eq!(paid.attempt_count, 2);
    let fetched = RetrieveInvoice::new(id)
        .send(&client)
        .await
        .expect("retrieved");
    assert_eq!(fetched.status, Some(InvoiceStatus::Paid));
}

#[tokio::test]
async fn an_open_invoice_can_be_voided_and_drafts_cannot() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = CreateCustomer::new().send(&client).await.expect("customer");
    let invoice = CreateInvoice::new()
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .expect("invoice");
    let id = invoice.id.expect("id");
    let (_, status) = stripe_error(VoidInvoiceInvoice::new(id.clone()).send(&client).await);
    assert_eq!(status, 400);
    CreateInvoiceItem::new()
        .customer(customer.id.as_str())
        .amount(100)
        .invoice(id.as_str())
        .send(&client)
        .await
        .expect("item");
    FinalizeInvoiceInvoice::new(id.clone())
        .send(&client)
        .await
        .expect("finalized");
    let voided = VoidInvoiceInvoice::new(id)
        .send(&client)
        .await
        .expect("voided");
    assert_eq!(voided.status, Some(InvoiceStatus::Void));
    assert!(sim.events().iter().any(|e| e["type"] == "invoice.voided"));
}

#[tokio::test]
async fn a_coupon_past_redeem_by_is_invalid_and_refused() {
    let sim = sim().await;
    let (status, coupon) = call(
        &sim,
        "POST",
        "/v1/coupons",
        &[
            ("percent_off", "10"),
            ("duration", "once"),
            ("redeem_by", "1000"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(coupon["valid"], false);
    let (_, customer) = call(&sim, "POST", "/v1/customers", &[]).await;
    let (status, body) = call(
        &sim,
        "POST",
        "/v1/invoices",
        &[
            ("customer", customer["id"].as_str().expect("id")),
            ("discounts[0][coupon]", coupon["id"].as_str().expect("id")),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
