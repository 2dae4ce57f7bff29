//! Against stripe-sim: the other mode's events are never applied, and a card
//! validation's hold is released whichever path settled the validation.

use std::time::Duration;

use payments_core::{Transaction, TransactionKind, TransactionStatus as Status};
use serde_json::{Value, json};
use stripe_sim::StripeSim;

use crate::{
    events::{Pi, event, event_id},
    helpers::{NewTx, Result, SECRET, TestApp, eventually},
};

async fn sim(livemode: bool) -> Result<StripeSim> {
    Ok(StripeSim::builder()
        .webhook_secret(SECRET)
        .seed(7)
        .livemode(livemode)
        .bind("127.0.0.1:0".parse()?)
        .start()
        .await?)
}

/// `POST /v1/{path}` at the simulator with `key`.
async fn post(sim: &StripeSim, key: &str, path: &str, form: &[(&str, &str)]) -> Result<Value> {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/{path}", sim.base_url()))
        .bearer_auth(key)
        .form(form)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
    Ok(body)
}

async fn get(sim: &StripeSim, path: &str) -> Result<Value> {
    Ok(reqwest::Client::new()
        .get(format!("{}/v1/{path}", sim.base_url()))
        .bearer_auth("sk_test_tests")
        .send()
        .await?
        .json()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_mode_event_is_stored_flagged_and_never_applied_with_a_test_key() -> Result {
    let sim = sim(true).await?;
    let app = TestApp::start().await?;
    sim.add_webhook_endpoint(app.url("/v1/stripe-webhook"));
    let tx = app.insert(&NewTx::payment("lia", 1_500)).await?;

    // A live PaymentIntent carrying the test transaction's id, paid.
    let live = post(
        &sim,
        "sk_live_elsewhere",
        "payment_intents",
        &[
            ("amount", "1500"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("metadata[transaction_id]", &tx.id.to_string()),
        ],
    )
    .await?;
    assert_eq!(live["livemode"], json!(true));
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);

    let (state, why): (String, Option<String>) = sqlx::query_as(
        "SELECT state, last_error FROM stripe_events \
         WHERE type = 'payment_intent.succeeded' AND livemode",
    )
    .fetch_one(app.pool())
    .await?;
    assert_eq!(state, "flagged");
    assert!(why.is_some_and(|w| w.contains("live-mode event")));
    let now = app.transaction(tx.id).await?;
    assert_eq!(now.status, Status::Created);
    assert_eq!(now.stripe_payment_intent_id, None);
    assert_eq!(app.balance("lia").await?, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_mode_event_is_never_applied_with_a_live_key() -> Result {
    let app = TestApp::start_with(|c| c.stripe_secret_key = "sk_live_ingestor".into()).await?;
    let tx = app.payment("leo", 700, "pi_leo").await?;
    let test_mode = Pi {
        id: "pi_leo",
        tx: Some(tx.id),
        amount: 700,
        currency: "usd",
    }
    .succeeded();
    app.deliver(&test_mode).await?;
    assert_eq!(app.event_state(&event_id(&test_mode)).await?, "flagged");
    assert_eq!(app.transaction(tx.id).await?.status, Status::Created);
    assert_eq!(app.balance("leo").await?, 0);
    Ok(())
}

/// A card validation with its manual-capture hold placed at the simulator (no
/// webhook endpoint yet: the test delivers the events itself).
async fn held_validation(
    app: &TestApp,
    sim: &StripeSim,
    user: &str,
) -> Result<(Transaction, Value)> {
    let new = NewTx {
        kind: TransactionKind::CardValidation,
        fingerprint: Some(format!("fp_{user}")),
        ..NewTx::payment(user, 100)
    };
    let tx = app.insert(&new).await?;
    let hold = post(
        sim,
        "sk_test_tests",
        "payment_intents",
        &[
            ("amount", "100"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("capture_method", "manual"),
            ("confirm", "true"),
            ("metadata[transaction_id]", &tx.id.to_string()),
        ],
    )
    .await?;
    assert_eq!(hold["status"], json!("requires_capture"));
    app.set_pi(&tx, hold["id"].as_str().unwrap_or_default())
        .await?;
    Ok((tx, hold))
}

async fn released(app: &TestApp, sim: &StripeSim, hold: &Value) -> Result {
    let path = format!(
        "payment_intents/{}",
        hold["id"].as_str().unwrap_or_default()
    );
    eventually("the hold is canceled at Stripe", || async {
        Ok(get(sim, &path).await?["status"] == json!("canceled"))
    })
    .await?;
    eventually("the outbox call is done", || async {
        let pending = app
            .count("SELECT count(*) FROM outbox WHERE state <> 'done'")
            .await?;
        Ok(pending == 0)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_settled_by_a_success_still_releases_its_hold() -> Result {
    let sim = sim(false).await?;
    let base = sim.base_url().to_owned();
    let app = TestApp::start_with(|c| c.stripe_api_base = base).await?;
    let (tx, hold) = held_validation(&app, &sim, "val").await?;

    // A success is seen before the hold is (the capturable event is late).
    let mut object = hold.clone();
    object["status"] = json!("succeeded");
    object["amount_received"] = json!(100);
    app.deliver(&event("payment_intent.succeeded", object))
        .await?;
    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);

    released(&app, &sim, &hold).await?;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_that_becomes_capturable_after_the_validation_succeeded_is_released() -> Result {
    let sim = sim(false).await?;
    let base = sim.base_url().to_owned();
    let app = TestApp::start_with(|c| c.stripe_api_base = base).await?;
    let (tx, hold) = held_validation(&app, &sim, "vic").await?;
    // Settled before its hold was seen (by a release that could not cancel it then,
    // or by an earlier version), with no release pending.
    sqlx::query("UPDATE transactions SET status = 'succeeded' WHERE id = $1")
        .bind(tx.id.as_uuid())
        .execute(app.pool())
        .await?;

    app.deliver(&event(
        "payment_intent.amount_capturable_updated",
        hold.clone(),
    ))
    .await?;
    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);

    released(&app, &sim, &hold).await?;
    sim.shutdown().await;
    Ok(())
}
