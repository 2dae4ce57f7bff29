//! Nothing from another object is applied. Each test is an attack tried from outside
//! with a key on the same Stripe account: stripe-sim makes the objects and sends the
//! correctly signed webhooks to the real ingestor, which must flag the event, move
//! nothing, and leave it for an operator to see (the event's state and reason).

use std::time::Duration;

use payments_proto::payments::v1::{self as pb, payments_admin_client::PaymentsAdminClient};
use pb::TransactionStatus as S;
use serde_json::Value;
use sqlx::PgPool;
use tonic::Code;

use crate::helpers::{TestApp, assert_refused, service_token, with_token};

const WAIT: Duration = Duration::from_secs(15);

/// `POST /v1/{path}` to the simulator with a form, as anyone holding a key would.
async fn sim_post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/{path}", app.sim.base_url()))
        .bearer_auth("sk_test_outsider")
        .form(form)
        .send()
        .await
        .expect("post to stripe-sim");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// The state and reason of the stored event of `event_type` about `object`, once it
/// has been processed (waits for the webhook and its processing).
async fn processed_event(pool: &PgPool, event_type: &str, object: &str) -> (String, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT state, last_error FROM stripe_events \
             WHERE type = $1 AND payload #>> '{data,object,id}' = $2 AND state <> 'received'",
        )
        .bind(event_type)
        .bind(object)
        .fetch_optional(pool)
        .await
        .expect("read the inbox");
        if let Some((state, why)) = row {
            return (state, why.unwrap_or_default());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no processed {event_type} about {object}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pool(app: &TestApp) -> PgPool {
    PgPool::connect(app.db_url()).await.expect("db")
}

async fn pay(app: &TestApp, user: &str, card: &str, amount: i64) -> pb::CreatePaymentResponse {
    app.create_payment(user, card, amount, &format!("{user}-{amount}"))
        .await
        .expect("create payment")
}

#[tokio::test]
async fn another_users_payment_intent_carrying_a_transaction_id_credits_nothing() {
    let app = TestApp::start().await;
    let pool = pool(&app).await;
    let ann_card = app.attach("ann", "pm_card_threeDSecure2Required").await;
    let ben_card = app.attach("ben", "pm_card_threeDSecure2Required").await;
    let ben = pay(&app, "ben", &ben_card.id, 5_000).await;
    let ann = pay(&app, "ann", &ann_card.id, 1_000).await;
    let (ben_tx, ann_tx) = (ben.transaction.expect("tx"), ann.transaction.expect("tx"));
    assert_eq!(ann_tx.status, S::RequiresAction as i32);
    let ann_pi = ann_tx.stripe_payment_intent_id.clone();

    // Ann's PaymentIntent is made to carry Ben's (larger) transaction, then paid.
    let metadata = [("metadata[transaction_id]", ben_tx.id.as_str())];
    sim_post(&app, &format!("payment_intents/{ann_pi}"), &metadata).await;
    app.authenticate_3ds(&ann_pi, &ann.client_secret, true)
        .await;

    let (state, why) = processed_event(&pool, "payment_intent.succeeded", &ann_pi).await;
    assert_eq!(state, "flagged");
    assert!(why.contains("is not the transaction's"), "{why}");
    let ben_now = app.transaction("ben", &ben_tx.id).await;
    assert_eq!(ben_now.status, S::RequiresAction as i32);
    assert_eq!(app.wallet("ben").await.balance, 0);
    assert_eq!(app.wallet("ann").await.balance, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_refund_of_someone_elses_charge_carrying_a_transaction_id_refunds_nothing() {
    let app = TestApp::start().await;
    let pool = pool(&app).await;
    let card = app.attach("cleo", "pm_card_visa").await;
    let cleo = pay(&app, "cleo", &card.id, 2_000)
        .await
        .transaction
        .expect("tx");
    app.wait_for("cleo", &cleo.id, S::Succeeded).await;
    app.wait_for_balance("cleo", 2_000).await;

    // Someone else's payment, made directly at Stripe with Cleo's transaction id…
    let other = sim_post(
        &app,
        "payment_intents",
        &[
            ("amount", "2000"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("metadata[transaction_id]", cleo.id.as_str()),
        ],
    )
    .await;
    let other_pi = other["id"].as_str().expect("id");
    // …is refunded: its charge carries the id too.
    sim_post(&app, "refunds", &[("payment_intent", other_pi)]).await;
    let other_charge = other["latest_charge"].as_str().expect("charge");

    let (state, why) = processed_event(&pool, "charge.refunded", other_charge).await;
    assert_eq!(state, "flagged");
    assert!(why.contains("is not the transaction's"), "{why}");
    let cleo_now = app.transaction("cleo", &cleo.id).await;
    assert_eq!(cleo_now.status, S::Succeeded as i32);
    assert_eq!(cleo_now.amount_refunded, 0);
    assert_eq!(app.wallet("cleo").await.balance, 2_000);
    app.stop().await;
}

#[tokio::test]
async fn a_small_payment_is_not_adopted_by_a_large_transaction_whose_answer_was_lost() {
    let app = TestApp::start().await;
    let pool = pool(&app).await;
    let card = app.attach("eve", "pm_card_visa").await;
    // Eve's request never got Stripe's answer: no PaymentIntent is recorded.
    app.sim.faults().scope("/v1/payment_intents").fail_next(1);
    let lost = app.create_payment("eve", &card.id, 5_000, "eve-lost").await;
    assert_refused(lost, Code::Unavailable, "STRIPE_UNAVAILABLE");
    let eve = app.transactions("eve").await.remove(0);
    assert!(eve.stripe_payment_intent_id.is_empty());
    let customer = app.sim_get(&format!("payment_methods/{}", card.id)).await["customer"]
        .as_str()
        .expect("Eve's customer")
        .to_owned();

    // A PaymentIntent of 50 carrying Eve's transaction id, her customer and card.
    let small = sim_post(
        &app,
        "payment_intents",
        &[
            ("amount", "50"),
            ("currency", "usd"),
            ("customer", customer.as_str()),
            ("payment_method", card.id.as_str()),
            ("confirm", "true"),
            ("metadata[transaction_id]", eve.id.as_str()),
        ],
    )
    .await;
    let small_pi = small["id"].as_str().expect("id");

    let (state, why) = processed_event(&pool, "payment_intent.succeeded", small_pi).await;
    assert_eq!(state, "flagged");
    assert!(why.contains("amount"), "{why}");
    let eve_now = app.transaction("eve", &eve.id).await;
    assert_eq!(eve_now.status, S::Created as i32);
    assert!(eve_now.stripe_payment_intent_id.is_empty(), "not adopted");
    assert_eq!(app.wallet("eve").await.balance, 0);

    // Reconciliation's search finds it by the metadata, and does not adopt it either.
    let mut admin = PaymentsAdminClient::connect(app.admin_url())
        .await
        .expect("admin");
    let request = pb::ReconcileTransactionRequest {
        transaction_id: eve.id.clone(),
    };
    let reconciled = admin
        .reconcile_transaction(with_token(&service_token(), request))
        .await
        .expect("reconcile")
        .into_inner();
    assert_eq!(reconciled.status, S::Created as i32);
    assert!(
        reconciled.stripe_payment_intent_id.is_empty(),
        "not adopted"
    );

    // Eve's own retry makes her PaymentIntent, which settles her top-up.
    let retried = app.create_payment("eve", &card.id, 5_000, "eve-lost").await;
    let tx = retried.expect("the retry").transaction.expect("tx");
    assert_eq!(tx.id, eve.id);
    app.wait_for("eve", &eve.id, S::Succeeded).await;
    app.wait_for_balance("eve", 5_000).await;
    app.stop().await;
}

#[tokio::test]
async fn an_invoice_never_settles_a_failed_card_top_up() {
    let app = TestApp::start().await;
    let pool = pool(&app).await;
    let card = app.attach("fay", "pm_card_chargeDeclined").await;
    let fay = pay(&app, "fay", &card.id, 3_000)
        .await
        .transaction
        .expect("tx");
    app.wait_for("fay", &fay.id, S::Failed).await;

    // An invoice nobody of ours made, carrying the failed top-up's id, is paid.
    let customer = sim_post(&app, "customers", &[("email", "x@example.com")]).await;
    let invoice = sim_post(
        &app,
        "invoices",
        &[
            ("customer", customer["id"].as_str().expect("id")),
            ("currency", "usd"),
            ("metadata[transaction_id]", fay.id.as_str()),
        ],
    )
    .await;
    let invoice_id = invoice["id"].as_str().expect("id");
    sim_post(&app, &format!("invoices/{invoice_id}/finalize"), &[]).await;

    let (state, why) = processed_event(&pool, "invoice.paid", invoice_id).await;
    assert_eq!(state, "flagged");
    assert!(why.contains("invoice cannot settle a payment"), "{why}");
    assert_eq!(
        app.transaction("fay", &fay.id).await.status,
        S::Failed as i32
    );
    assert_eq!(app.wallet("fay").await.balance, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_attach_changes_nothing_at_stripe() {
    let app = TestApp::start().await;
    let pool = pool(&app).await;
    // A card Stripe holds unattached, recorded here for Ada.
    let card = sim_post(
        &app,
        "payment_methods",
        &[("type", "card"), ("card[token]", "tok_visa")],
    )
    .await;
    let card_id = card["id"].as_str().expect("id");
    sqlx::query(
        "INSERT INTO payment_methods (id, user_id, brand, last4, fingerprint) \
         VALUES ($1, 'ada', 'visa', '4242', 'fp')",
    )
    .bind(card_id)
    .execute(&pool)
    .await
    .expect("Ada's card");

    let refused = app.try_attach("bob", card_id).await;
    assert_refused(
        refused,
        Code::FailedPrecondition,
        "PAYMENT_METHOD_ATTACHED_ELSEWHERE",
    );
    let at_stripe = app.sim_get(&format!("payment_methods/{card_id}")).await;
    assert!(at_stripe["customer"].is_null(), "{at_stripe}");
    assert!(app.sim_list("customers").await.is_empty());

    // A detached card cannot be attached again, at Stripe as here.
    let mine = app.attach("ada", "pm_card_visa").await;
    let detach = pb::DetachPaymentMethodRequest {
        user_id: "ada".into(),
        payment_method_id: mine.id.clone(),
    };
    app.client()
        .detach_payment_method(crate::helpers::as_user("ada", detach))
        .await
        .expect("detach");
    let again = app.try_attach("ada", &mine.id).await;
    assert!(again.is_err(), "{again:?}");
    let at_stripe = app.sim_get(&format!("payment_methods/{}", mine.id)).await;
    assert!(at_stripe["customer"].is_null(), "{at_stripe}");
    app.stop().await;
}
