//! Money after a top-up, as Stripe's test mode produces it (stripe-sim's dispute and
//! refund test cards, its test routes and Stripe's own API), settled by the ingestor
//! from the real webhooks: disputes move money only when Stripe moves the funds, a
//! failed refund gives its money back once, and nothing takes more than the top-up.

use std::time::Duration;

use payments_proto::payments::v1::TransactionStatus as S;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TOPUP, TestApp};

/// A top-up of [`TOPUP`] by `user` with the test card `card`, settled: its transaction
/// id and Stripe charge.
async fn top_up(app: &TestApp, user: &str, card: &str) -> (String, String) {
    let card = app.attach(user, card).await;
    let paid = app
        .create_payment(user, &card.id, TOPUP, &format!("{user}-top-up"))
        .await
        .expect("payment");
    let tx = paid.transaction.expect("transaction");
    let done = app.wait_for(user, &tx.id, S::Succeeded).await;
    let intent = app
        .sim_get(&format!(
            "payment_intents/{}",
            done.stripe_payment_intent_id
        ))
        .await;
    let charge = intent["latest_charge"].as_str().expect("charge").to_owned();
    (tx.id, charge)
}

/// `POST /v1/{path}` at stripe-sim, as a Stripe client would.
async fn stripe_post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/{path}", app.sim.base_url()))
        .bearer_auth("sk_test_tests")
        .form(form)
        .send()
        .await
        .expect("stripe-sim answers");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

async fn pool(app: &TestApp) -> PgPool {
    PgPool::connect(app.db_url()).await.expect("database")
}

/// Waits until the ingestor has processed every event Stripe sent about `object` (a
/// dispute or refund id) and of `event_type`, `count` of them; returns their states.
async fn processed(db: &PgPool, event_type: &str, object: &str, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let states: Vec<String> = sqlx::query_scalar(
            "SELECT state FROM stripe_events WHERE type = $1 \
             AND payload #>> '{data,object,id}' = $2 ORDER BY created, received_at",
        )
        .bind(event_type)
        .bind(object)
        .fetch_all(db)
        .await
        .expect("events");
        let waiting = ["received", "unmatched", "deferred"];
        if states.len() >= count && states.iter().all(|s| !waiting.contains(&s.as_str())) {
            return states;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{event_type} of {object}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The transaction's ledger: (kind, key, amount), in order.
async fn ledger(db: &PgPool, tx: &str) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT kind, movement_key, amount FROM ledger_entries \
         WHERE transaction_id = $1::uuid ORDER BY id",
    )
    .bind(tx)
    .fetch_all(db)
    .await
    .expect("ledger")
}

fn movement(kind: &str, key: &str, amount: i64) -> (String, String, i64) {
    (kind.to_owned(), key.to_owned(), amount)
}

/// The dispute the simulator opened on `charge` (the first if several).
async fn dispute_of(app: &TestApp, charge: &str) -> String {
    let list = app.sim_get(&format!("disputes?charge={charge}")).await;
    list["data"][0]["id"]
        .as_str()
        .expect("a dispute")
        .to_owned()
}

#[tokio::test]
async fn a_chargeback_debits_once_and_winning_it_gives_the_money_back_once() {
    let app = TestApp::start().await;
    let db = pool(&app).await;
    let (tx, charge) = top_up(&app, "ada", "pm_card_createDispute").await;
    let dispute = dispute_of(&app, &charge).await;
    // charge.dispute.created carries the withdrawal and funds_withdrawn follows: both
    // say the funds were withdrawn, the first to arrive debits, the other is stale.
    let mut states = processed(&db, "charge.dispute.funds_withdrawn", &dispute, 1).await;
    states.extend(processed(&db, "charge.dispute.created", &dispute, 1).await);
    states.sort();
    assert_eq!(states, ["applied", "stale"]);
    app.wait_for_balance("ada", 0).await;

    let won = app.sim.close_dispute(&dispute, true).expect("won");
    assert_eq!(won["status"], "won");
    let mut states = processed(&db, "charge.dispute.funds_reinstated", &dispute, 1).await;
    states.extend(processed(&db, "charge.dispute.closed", &dispute, 1).await);
    states.sort();
    assert_eq!(states, ["applied", "stale"]);
    app.wait_for_balance("ada", TOPUP).await;
    assert_eq!(
        ledger(&db, &tx).await,
        [
            movement("payment_credit", "", TOPUP),
            movement("dispute_debit", &dispute, -TOPUP),
            movement("dispute_reversal", &dispute, TOPUP),
        ]
    );
    assert_eq!(
        app.transaction("ada", &tx).await.status,
        S::Succeeded as i32
    );
    app.stop().await;
}

#[tokio::test]
async fn an_inquiry_moves_no_money_until_it_escalates_into_a_chargeback() {
    let app = TestApp::start().await;
    let db = pool(&app).await;
    let (tx, charge) = top_up(&app, "bob", "pm_card_createDisputeInquiry").await;
    let inquiry = dispute_of(&app, &charge).await;
    assert_eq!(
        processed(&db, "charge.dispute.created", &inquiry, 1).await,
        ["ignored"]
    );
    assert_eq!(app.wallet("bob").await.balance, TOPUP);

    let escalated = app.sim.escalate_dispute(&inquiry).expect("escalated");
    assert_eq!(escalated["status"], "needs_response");
    processed(&db, "charge.dispute.funds_withdrawn", &inquiry, 1).await;
    app.wait_for_balance("bob", 0).await;

    // Lost: the funds stay withdrawn, nothing more moves.
    app.sim.close_dispute(&inquiry, false).expect("lost");
    processed(&db, "charge.dispute.closed", &inquiry, 1).await;
    assert_eq!(app.wallet("bob").await.balance, 0);
    assert_eq!(
        ledger(&db, &tx).await,
        [
            movement("payment_credit", "", TOPUP),
            movement("dispute_debit", &inquiry, -TOPUP),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn an_inquiry_closed_by_the_merchant_moves_nothing() {
    let app = TestApp::start().await;
    let db = pool(&app).await;
    let (_, charge) = top_up(&app, "cid", "pm_card_createDisputeInquiry").await;
    let inquiry = dispute_of(&app, &charge).await;
    let closed = stripe_post(&app, &format!("disputes/{inquiry}/close"), &[]).await;
    assert_eq!(closed["status"], "warning_closed");
    processed(&db, "charge.dispute.closed", &inquiry, 1).await;
    processed(&db, "charge.dispute.created", &inquiry, 1).await;
    assert_eq!(app.wallet("cid").await.balance, TOPUP);
    app.stop().await;
}

#[tokio::test]
async fn an_inquiry_after_a_full_refund_leaves_the_wallet_at_zero_not_below() {
    let app = TestApp::start().await;
    let db = pool(&app).await;
    let (tx, charge) = top_up(&app, "dee", "pm_card_visa").await;
    let refund = stripe_post(&app, "refunds", &[("charge", &charge)]).await;
    app.wait_for("dee", &tx, S::Refunded).await;
    app.wait_for_balance("dee", 0).await;
    processed(&db, "refund.created", refund["id"].as_str().expect("id"), 1).await;

    let inquiry = app.sim.open_inquiry(&charge, None).expect("inquiry");
    let inquiry = inquiry["id"].as_str().expect("id");
    processed(&db, "charge.dispute.created", inquiry, 1).await;
    assert_eq!(app.wallet("dee").await.balance, 0);
    app.stop().await;
}

#[tokio::test]
async fn several_disputes_of_one_charge_never_debit_more_than_the_charge() {
    let app = TestApp::start().await;
    let db = pool(&app).await;
    let (tx, charge) = top_up(&app, "eli", "pm_card_createMultipleDisputes").await;
    let list = app.sim_get(&format!("disputes?charge={charge}")).await;
    let disputes: Vec<&str> = list["data"]
        .as_array()
        .expect("disputes")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert_eq!(disputes.len(), 2);
    for dispute in &disputes {
        processed(&db, "charge.dispute.funds_withdrawn", dispute, 1).await;
    }
    app.wait_for_balance("eli", 0).await;
    let debits = ledger(&db, &tx)
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "dispute_debit")
        .count();
    assert_eq!(debits, 1, "the second dispute is flagged, not debited");
    app.stop().await;
}

#[tokio::test]
async fn a_refund_that_fails_gives_its_money_back_once() {
    let app = TestApp::start().await;
    let db = pool(&app).await;
    let (tx, charge) = top_up(&app, "fox", "pm_card_refundFail").await;
    let refund = stripe_post(&app, "refunds", &[("charge", &charge), ("amount", "600")]).await;
    let refund = refund["id"].as_str().expect("id");
    for event_type in ["refund.failed", "refund.updated", "charge.refund.updated"] {
        processed(&db, event_type, refund, 1).await;
    }
    processed(&db, "refund.created", refund, 1).await;
    app.wait_for_balance("fox", TOPUP).await;
    let now = app.transaction("fox", &tx).await;
    assert_eq!((now.status, now.amount_refunded), (S::Succeeded as i32, 0));
    assert_eq!(
        ledger(&db, &tx).await,
        [
            movement("payment_credit", "", TOPUP),
            movement("refund_debit", refund, -600),
            movement("refund_reversal", refund, 600),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refund_after_a_failed_one_debits_again() {
    let app = TestApp::start().await;
    let db = pool(&app).await;
    let (tx, charge) = top_up(&app, "gia", "pm_card_visa").await;
    let first = stripe_post(&app, "refunds", &[("charge", &charge), ("amount", "400")]).await;
    let first = first["id"].as_str().expect("id");
    processed(&db, "refund.created", first, 1).await;
    app.wait_for_balance("gia", TOPUP - 400).await;
    let failed = reqwest::Client::new()
        .post(format!("{}/test/refunds/{first}/fail", app.sim.base_url()))
        .form(&[("failure_reason", "expired_or_canceled_card")])
        .send()
        .await
        .expect("fail the refund");
    assert!(failed.status().is_success(), "{}", failed.status());
    processed(&db, "refund.failed", first, 1).await;
    app.wait_for_balance("gia", TOPUP).await;

    // The same amount again, now a refund that succeeds.
    let second = stripe_post(&app, "refunds", &[("charge", &charge), ("amount", "400")]).await;
    let second = second["id"].as_str().expect("id");
    processed(&db, "refund.created", second, 1).await;
    app.wait_for_balance("gia", TOPUP - 400).await;
    let now = app.transaction("gia", &tx).await;
    assert_eq!(
        (now.status, now.amount_refunded),
        (S::Succeeded as i32, 400)
    );
    app.stop().await;
}
