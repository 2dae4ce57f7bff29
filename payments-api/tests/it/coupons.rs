//! ApplyCoupon: a promotion code or coupon id becomes wallet credit once per user.

use payments_proto::payments::v1::TransactionStatus as S;
use stripe::StripeRequest;
use stripe_product::{
    CouponDuration,
    coupon::CreateCoupon,
    promotion_code::{
        CreatePromotionCode, CreatePromotionCodePromotion, CreatePromotionCodePromotionType,
    },
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, assert_code, assert_refused, reason};

const CREDIT: i64 = 500;

impl TestApp {
    /// A fixed-amount coupon, optionally behind a promotion code.
    async fn coupon(&self, id: &str, promotion_code: Option<&str>, max_redemptions: Option<i64>) {
        let mut coupon = CreateCoupon::new()
            .id(id)
            .amount_off(CREDIT)
            .currency(stripe_types::Currency::USD)
            .duration(CouponDuration::Once);
        if let Some(max) = max_redemptions {
            coupon = coupon.max_redemptions(max);
        }
        coupon.send(&self.stripe).await.expect("create coupon");
        if let Some(code) = promotion_code {
            let promotion = CreatePromotionCodePromotion {
                coupon: Some(id.to_owned()),
                ..CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon)
            };
            CreatePromotionCode::new(promotion)
                .code(code)
                .customize()
                .send(&self.stripe)
                .await
                .expect("create promotion code");
        }
    }
}

#[tokio::test]
async fn a_promotion_code_credits_the_wallet_through_a_zero_invoice() {
    let app = TestApp::start().await;
    app.coupon("FIVE_OFF", Some("WELCOME5"), None).await;
    let tx = app
        .apply_coupon("alice", "WELCOME5", "coupon-1")
        .await
        .expect("coupon");
    assert!(tx.stripe_invoice_id.starts_with("in_"), "{tx:?}");
    assert_eq!(tx.amount, CREDIT);
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    app.wait_for_balance("alice", CREDIT).await;
    let invoice = app
        .sim_get(&format!("invoices/{}", tx.stripe_invoice_id))
        .await;
    assert_eq!(invoice["status"], "paid", "{invoice}");
    assert_eq!(invoice["metadata"]["transaction_id"], tx.id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn a_raw_coupon_id_is_refused_unless_accepted_by_configuration() {
    let app = TestApp::start().await;
    app.coupon("plain-coupon", None, None).await;
    assert_refused(
        app.apply_coupon("alice", "plain-coupon", "coupon-id").await,
        Code::InvalidArgument,
        "COUPON_NOT_FOUND",
    );
    app.stop().await;

    let app = TestApp::start_with(|c| c.wallet.accept_coupon_ids = true).await;
    app.coupon("plain-coupon", None, None).await;
    let tx = app
        .apply_coupon("alice", "plain-coupon", "coupon-id")
        .await
        .expect("coupon");
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    app.wait_for_balance("alice", CREDIT).await;
    app.stop().await;
}

#[tokio::test]
async fn a_code_redeemed_again_by_the_same_user_is_refused() {
    let app = TestApp::start().await;
    app.coupon("ONCE", Some("ONCE5"), None).await;
    let first = app
        .apply_coupon("alice", "ONCE5", "first")
        .await
        .expect("coupon");
    let retried = app
        .apply_coupon("alice", "ONCE5", "first")
        .await
        .expect("a retry with the same key");
    assert_eq!(retried.id, first.id);
    let status = assert_refused(
        app.apply_coupon("alice", "once5", "second").await,
        Code::AlreadyExists,
        "COUPON_ALREADY_REDEEMED",
    );
    assert!(status.message().contains("already redeemed"), "{status:?}");
    app.wait_for("alice", &first.id, S::Succeeded).await;
    app.wait_for_balance("alice", CREDIT).await;
    let other = app
        .apply_coupon("bob", "ONCE5", "bob")
        .await
        .expect("another user may redeem it");
    app.wait_for("bob", &other.id, S::Succeeded).await;
    app.stop().await;
}

#[tokio::test]
async fn one_coupon_credits_once_whichever_code_or_id_names_it() {
    let app = TestApp::start_with(|c| c.wallet.accept_coupon_ids = true).await;
    app.coupon("SHARED", Some("SPRING5"), None).await;
    let promotion = CreatePromotionCodePromotion {
        coupon: Some("SHARED".to_owned()),
        ..CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon)
    };
    CreatePromotionCode::new(promotion)
        .code("SUMMER5")
        .customize()
        .send(&app.stripe)
        .await
        .expect("a second promotion code of the coupon");
    let first = app
        .apply_coupon("alice", "SPRING5", "spring")
        .await
        .expect("coupon");
    // Another promotion code of the same coupon, and the coupon id itself.
    for (code, key) in [("SUMMER5", "summer"), ("SHARED", "raw")] {
        assert_refused(
            app.apply_coupon("alice", code, key).await,
            Code::AlreadyExists,
            "COUPON_ALREADY_REDEEMED",
        );
    }
    app.wait_for("alice", &first.id, S::Succeeded).await;
    app.wait_for_balance("alice", CREDIT).await;
    // The coupon id first, then a promotion code of it.
    let raw = app
        .apply_coupon("bob", "SHARED", "raw")
        .await
        .expect("the coupon id, where accepted");
    assert_refused(
        app.apply_coupon("bob", "SUMMER5", "summer").await,
        Code::AlreadyExists,
        "COUPON_ALREADY_REDEEMED",
    );
    app.wait_for("bob", &raw.id, S::Succeeded).await;
    app.wait_for_balance("bob", CREDIT).await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_percent_off_and_exhausted_codes_are_refused_with_the_reason() {
    // Raw coupon ids too, to see the coupon's own rules.
    let app = TestApp::start_with(|c| c.wallet.accept_coupon_ids = true).await;
    let status = assert_refused(
        app.apply_coupon("alice", "NOPE", "k1").await,
        Code::InvalidArgument,
        "COUPON_NOT_FOUND",
    );
    assert!(status.message().contains("code"), "{status:?}");

    CreateCoupon::new()
        .id("HALF")
        .percent_off(50.0)
        .duration(CouponDuration::Once)
        .send(&app.stripe)
        .await
        .expect("percent coupon");
    let status = assert_refused(
        app.apply_coupon("alice", "HALF", "k2").await,
        Code::InvalidArgument,
        "COUPON_NOT_FIXED_AMOUNT",
    );
    assert!(status.message().contains("percent"), "{status:?}");

    app.coupon("SINGLE", Some("SINGLE5"), Some(1)).await;
    let used = app
        .apply_coupon("alice", "SINGLE5", "k3")
        .await
        .expect("first redemption");
    app.wait_for("alice", &used.id, S::Succeeded).await;
    let status = assert_code(
        app.apply_coupon("bob", "SINGLE5", "k4").await,
        Code::FailedPrecondition,
    );
    assert!(
        status.message().contains("no longer valid") || status.message().contains("maximum"),
        "{status:?}"
    );
    assert!(
        ["COUPON_INACTIVE", "COUPON_EXHAUSTED"].contains(&reason(&status).as_str()),
        "{status:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_expired_code_and_a_coupon_in_another_currency_say_why() {
    // Raw coupon ids too, to see the coupon's own rules.
    let app = TestApp::start_with(|c| c.wallet.accept_coupon_ids = true).await;
    app.coupon("LATE", None, None).await;
    let promotion = CreatePromotionCodePromotion {
        coupon: Some("LATE".to_owned()),
        ..CreatePromotionCodePromotion::new(CreatePromotionCodePromotionType::Coupon)
    };
    CreatePromotionCode::new(promotion)
        .code("LATE5")
        .expires_at(chrono::Utc::now().timestamp() - 60)
        .customize()
        .send(&app.stripe)
        .await
        .expect("create an expired promotion code");
    assert_refused(
        app.apply_coupon("alice", "LATE5", "late").await,
        Code::FailedPrecondition,
        "COUPON_EXPIRED",
    );

    CreateCoupon::new()
        .id("EURO")
        .amount_off(CREDIT)
        .currency(stripe_types::Currency::EUR)
        .duration(CouponDuration::Once)
        .send(&app.stripe)
        .await
        .expect("create a euro coupon");
    let status = assert_refused(
        app.apply_coupon("alice", "EURO", "euro").await,
        Code::FailedPrecondition,
        "COUPON_CURRENCY_MISMATCH",
    );
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["coupon_currency"], "eur");
    assert_eq!(info.metadata["wallet_currency"], "usd");
    assert!(
        app.transactions("alice").await.is_empty(),
        "nothing created"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failed_coupon_attempt_leaves_no_invoice_behind_and_may_be_retried() {
    let app = TestApp::start().await;
    app.coupon("RETRY", Some("RETRY5"), None).await;
    // Stripe refuses the finalization: the attempt fails with its draft invoice created.
    app.sim
        .faults()
        .scope("/v1/invoices/")
        .fail_next_with_status(1, axum::http::StatusCode::BAD_REQUEST);
    let failed = app
        .apply_coupon("alice", "RETRY5", "first")
        .await
        .expect("the attempt is answered");
    assert_eq!(failed.status, S::Failed as i32, "{failed:?}");
    let invoice = failed.stripe_invoice_id.clone();
    assert!(invoice.starts_with("in_"), "{failed:?}");

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let found = app.sim_get(&format!("invoices/{invoice}")).await;
        if found["error"]["code"] == "resource_missing" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failed attempt's invoice is still there: {found}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let deleted =
        app.sim.events().into_iter().any(|e| {
            e["type"] == "invoice.deleted" && e["data"]["object"]["id"] == invoice.as_str()
        });
    assert!(deleted, "the draft was deleted at Stripe");

    let retried = app
        .apply_coupon("alice", "RETRY5", "second")
        .await
        .expect("a failed attempt may be retried");
    app.wait_for("alice", &retried.id, S::Succeeded).await;
    app.wait_for_balance("alice", CREDIT).await;
    assert_eq!(
        app.transaction("alice", &failed.id).await.status,
        S::Failed as i32
    );
    app.stop().await;
}

#[tokio::test]
async fn an_inactive_promotion_code_is_refused_as_inactive() {
    let app = TestApp::start().await;
    app.coupon("PAUSED", Some("PAUSED5"), None).await;
    let promo = app.sim_get("promotion_codes?code=PAUSED5").await;
    let id = promo["data"][0]["id"]
        .as_str()
        .expect("promotion code id")
        .to_owned();
    reqwest::Client::new()
        .post(format!("{}/v1/promotion_codes/{id}", app.sim.base_url()))
        .bearer_auth("sk_test_tests")
        .form(&[("active", "false")])
        .send()
        .await
        .expect("deactivate")
        .error_for_status()
        .expect("deactivated");
    assert_refused(
        app.apply_coupon("alice", "PAUSED5", "paused").await,
        Code::FailedPrecondition,
        "COUPON_INACTIVE",
    );
    assert!(
        app.transactions("alice").await.is_empty(),
        "nothing created"
    );
    app.stop().await;
}

impl TestApp {
    /// A promotion code of coupon `coupon` with `extra` parameters, made at stripe-sim.
    async fn restricted_code(&self, coupon: &str, code: &str, extra: &[(&str, &str)]) {
        let mut form = vec![
            ("promotion[type]", "coupon"),
            ("promotion[coupon]", coupon),
            ("code", code),
        ];
        form.extend_from_slice(extra);
        reqwest::Client::new()
            .post(format!("{}/v1/promotion_codes", self.sim.base_url()))
            .bearer_auth("sk_test_tests")
            .form(&form)
            .send()
            .await
            .expect("create a promotion code")
            .error_for_status()
            .expect("the promotion code");
    }
}

fn restriction(status: &tonic::Status) -> String {
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    info.metadata["restriction"].clone()
}

#[tokio::test]
async fn a_promotion_codes_restrictions_are_enforced_with_the_reason() {
    let app = TestApp::start().await;
    app.coupon("RULES", Some("WELCOME5"), None).await;
    let other: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/customers", app.sim.base_url()))
        .bearer_auth("sk_test_tests")
        .send()
        .await
        .expect("customer")
        .json()
        .await
        .expect("customer body");
    let other = other["id"].as_str().expect("customer id");
    app.restricted_code("RULES", "THEIRS5", &[("customer", other)])
        .await;
    app.restricted_code(
        "RULES",
        "FIRST5",
        &[("restrictions[first_time_transaction]", "true")],
    )
    .await;
    app.restricted_code(
        "RULES",
        "BIG5",
        &[
            ("restrictions[minimum_amount]", "1000"),
            ("restrictions[minimum_amount_currency]", "usd"),
        ],
    )
    .await;

    for (code, why) in [("THEIRS5", "customer"), ("BIG5", "minimum_amount")] {
        let status = assert_refused(
            app.apply_coupon("alice", code, code).await,
            Code::FailedPrecondition,
            "COUPON_NOT_ELIGIBLE",
        );
        assert_eq!(restriction(&status), why, "{status:?}");
    }
    let first = app
        .apply_coupon("alice", "WELCOME5", "welcome")
        .await
        .expect("a plain code");
    app.wait_for("alice", &first.id, S::Succeeded).await;
    let status = assert_refused(
        app.apply_coupon("alice", "FIRST5", "first").await,
        Code::FailedPrecondition,
        "COUPON_NOT_ELIGIBLE",
    );
    assert_eq!(restriction(&status), "first_time_transaction");
    let newcomer = app
        .apply_coupon("bob", "FIRST5", "bob-first")
        .await
        .expect("a first-time user may");
    app.wait_for("bob", &newcomer.id, S::Succeeded).await;
    app.wait_for_balance("alice", CREDIT).await;
    app.stop().await;
}

impl TestApp {
    /// A coupon attempt that failed (Stripe refused the finalization) while its draft
    /// invoice survived (the outbox's read of it was refused too): it can still be paid.
    async fn failed_attempt_left_payable(&self, user: &str, code: &str, key: &str) -> String {
        let before = self.sim.faults().injected();
        self.sim
            .faults()
            .scope("/v1/invoices/")
            .fail_next_with_status(2, axum::http::StatusCode::BAD_REQUEST);
        let failed = self
            .apply_coupon(user, code, key)
            .await
            .expect("the attempt is answered");
        assert_eq!(failed.status, S::Failed as i32, "{failed:?}");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.sim.faults().injected() < before + 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the outbox never tried"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.sim.faults().clear();
        let invoice = self
            .sim_get(&format!("invoices/{}", failed.stripe_invoice_id))
            .await;
        assert_eq!(invoice["status"], "draft", "{invoice}");
        failed.id
    }

    /// Stripe pays the failed attempt's invoice after all.
    async fn pay_late(&self, user: &str, id: &str) {
        let invoice = self.transaction(user, id).await.stripe_invoice_id;
        stripe_billing::invoice::FinalizeInvoiceInvoice::new(invoice.as_str())
            .customize()
            .send(&self.stripe)
            .await
            .expect("finalize the late invoice");
    }
}

#[tokio::test]
async fn a_late_success_of_a_failed_attempt_is_credited_and_cancels_the_unsettled_retry() {
    let app = TestApp::start().await;
    app.coupon("LATE", Some("LATE5"), None).await;
    let first = app
        .failed_attempt_left_payable("alice", "LATE5", "first")
        .await;
    // The retry's finalization fails at Stripe's side: it stays unsettled.
    app.sim
        .faults()
        .scope("/v1/invoices/")
        .fail_next_with_status(1, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    let _ = app.apply_coupon("alice", "LATE5", "second").await;
    app.sim.faults().clear();
    let second = app
        .transactions("alice")
        .await
        .into_iter()
        .find(|t| t.id != first)
        .expect("the retry");
    assert_ne!(second.status, S::Succeeded as i32, "{second:?}");
    let retry_invoice = second.stripe_invoice_id.clone();
    assert!(retry_invoice.starts_with("in_"), "{second:?}");

    app.pay_late("alice", &first).await;
    app.wait_for("alice", &first, S::Succeeded).await;
    app.wait_for("alice", &second.id, S::Canceled).await;
    app.wait_for_balance("alice", CREDIT).await;
    // Nothing payable is left behind the canceled retry.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let found = app.sim_get(&format!("invoices/{retry_invoice}")).await;
        if found["error"]["code"] == "resource_missing" || found["status"] == "void" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retry's invoice is still payable: {found}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_late_success_after_the_retry_succeeded_is_flagged_not_retried() {
    let app = TestApp::start().await;
    app.coupon("LATER", Some("LATER5"), None).await;
    let first = app
        .failed_attempt_left_payable("alice", "LATER5", "first")
        .await;
    let second = app
        .apply_coupon("alice", "LATER5", "second")
        .await
        .expect("the retry");
    app.wait_for("alice", &second.id, S::Succeeded).await;

    app.pay_late("alice", &first).await;
    let pool = sqlx::PgPool::connect(app.db_url()).await.expect("db");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let flagged: bool =
            sqlx::query_scalar("SELECT flagged IS NOT NULL FROM transactions WHERE id = $1::uuid")
                .bind(&first)
                .fetch_one(&pool)
                .await
                .expect("the late attempt");
        if flagged {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late success was not flagged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let state: String = sqlx::query_scalar(
        "SELECT state FROM stripe_events WHERE type = 'invoice.paid' \
         AND payload -> 'data' -> 'object' ->> 'id' = $1",
    )
    .bind(app.transaction("alice", &first).await.stripe_invoice_id)
    .fetch_one(&pool)
    .await
    .expect("the late invoice.paid");
    assert_eq!(state, "flagged");
    assert_eq!(
        app.transaction("alice", &first).await.status,
        S::Failed as i32
    );
    assert_eq!(app.wallet("alice").await.balance, CREDIT);
    app.stop().await;
}
