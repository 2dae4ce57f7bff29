//! Against stripe-sim: real PaymentIntents, real signed webhooks, real outbox calls.

use std::{collections::HashMap, time::Duration};

use payments_core::{
    Transaction, TransactionKind, TransactionStatus as Status,
    store::{self, OutboxKind},
};
use stripe::{Client, ClientBuilder};
use stripe_core::{
    PaymentIntent, PaymentIntentCaptureMethod, PaymentIntentStatus,
    payment_intent::{CancelPaymentIntent, CreatePaymentIntent, RetrievePaymentIntent},
};
use stripe_sim::StripeSim;

use crate::helpers::{NewTx, Result, SECRET, TestApp, eventually};

/// A simulator signing with the test secret, and an ingestor calling it.
async fn sim_and_app(
    tweak: impl FnOnce(&mut webhook_ingestor::Config),
) -> Result<(StripeSim, TestApp, Client)> {
    let sim = StripeSim::builder()
        .webhook_secret(SECRET)
        .seed(1)
        .bind("127.0.0.1:0".parse()?)
        .start()
        .await?;
    let base = sim.base_url().to_owned();
    let app = TestApp::start_with(|c| {
        c.stripe_api_base = base.clone();
        tweak(c);
    })
    .await?;
    let client = ClientBuilder::new("sk_test_from_the_tests")
        .url(&base)
        .build()?;
    Ok((sim, app, client))
}

/// Creates and confirms a PaymentIntent for `tx` as payments-api does.
async fn pay(client: &Client, tx: &Transaction, manual_capture: bool) -> Result<PaymentIntent> {
    let metadata = HashMap::from([("transaction_id".to_owned(), tx.id.to_string())]);
    let mut create = CreatePaymentIntent::new(tx.amount.minor(), stripe_types::Currency::USD)
        .payment_method("pm_card_visa")
        .confirm(true)
        .metadata(metadata);
    if manual_capture {
        create = create.capture_method(PaymentIntentCaptureMethod::Manual);
    }
    Ok(create.send(client).await?)
}

async fn status_of(app: &TestApp, tx: &Transaction) -> Result<Status> {
    Ok(app.transaction(tx.id).await?.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_at_stripe_sim_is_settled_by_its_webhook() -> Result {
    let (sim, app, client) = sim_and_app(|_| {}).await?;
    sim.add_webhook_endpoint(app.url("/v1/stripe-webhook"));
    let tx = app.insert(&NewTx::payment("vera", 4_200)).await?;

    let pi = pay(&client, &tx, false).await?;
    app.set_pi(&tx, pi.id.as_str()).await?;

    eventually("the webhook settles the payment", || async {
        Ok(status_of(&app, &tx).await? == Status::Succeeded)
    })
    .await?;
    assert_eq!(app.balance("vera").await?, 4_200);
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);
    assert_eq!(app.balance("vera").await?, 4_200);
    assert!(app.metrics.webhooks_verified() >= 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_releases_a_validation_hold_at_stripe() -> Result {
    let (sim, app, client) = sim_and_app(|_| {}).await?;
    sim.add_webhook_endpoint(app.url("/v1/stripe-webhook"));
    let new = NewTx {
        kind: TransactionKind::CardValidation,
        fingerprint: Some("fp_sim".into()),
        ..NewTx::payment("wes", 100)
    };
    let tx = app.insert(&new).await?;
    let pi = pay(&client, &tx, true).await?;
    assert_eq!(pi.status, PaymentIntentStatus::RequiresCapture);
    app.set_pi(&tx, pi.id.as_str()).await?;

    eventually("the hold is released at Stripe", || async {
        let now = RetrievePaymentIntent::new(pi.id.clone())
            .send(&client)
            .await?;
        Ok(now.status == PaymentIntentStatus::Canceled)
    })
    .await?;
    eventually("the outbox row is done", || async {
        let state: String =
            sqlx::query_scalar("SELECT state FROM outbox WHERE transaction_id = $1")
                .bind(tx.id.as_uuid())
                .fetch_one(app.pool())
                .await?;
        Ok(state == "done")
    })
    .await?;
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);
    // The cancellation's own webhook arrived and changed nothing.
    assert_eq!(status_of(&app, &tx).await?, Status::Succeeded);
    let canceled: String = sqlx::query_scalar(
        "SELECT state FROM stripe_events WHERE type = 'payment_intent.canceled'",
    )
    .fetch_one(app.pool())
    .await?;
    assert_eq!(canceled, "stale");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_canceled_payment_intent_counts_as_done() -> Result {
    let (sim, app, client) = sim_and_app(|_| {}).await?;
    let tx = app.insert(&NewTx::payment("xena", 100)).await?;
    let pi = pay(&client, &tx, true).await?;
    CancelPaymentIntent::new(pi.id.clone())
        .send(&client)
        .await?;

    let mut conn = app.pool().acquire().await?;
    let key = format!("release-hold-{}", tx.id);
    store::enqueue(
        &mut conn,
        OutboxKind::CancelPaymentIntent,
        tx.id,
        pi.id.as_str(),
        &key,
    )
    .await?;
    drop(conn);

    eventually("the outbox row is done", || async {
        let state: String =
            sqlx::query_scalar("SELECT state FROM outbox WHERE idempotency_key = $1")
                .bind(&key)
                .fetch_one(app.pool())
                .await?;
        Ok(state == "done")
    })
    .await?;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_webhook_was_lost_is_reconciled() -> Result {
    let (sim, app, client) = sim_and_app(|c| {
        c.reconcile_after = Duration::from_millis(200);
        c.reconcile_interval = Some(Duration::from_millis(100));
    })
    .await?;
    // No webhook endpoint: every event is lost.
    let tx = app.insert(&NewTx::payment("yuri", 3_000)).await?;
    let pi = pay(&client, &tx, false).await?;
    app.set_pi(&tx, pi.id.as_str()).await?;

    eventually("the sweeper settles the payment", || async {
        Ok(status_of(&app, &tx).await? == Status::Succeeded)
    })
    .await?;
    assert_eq!(app.balance("yuri").await?, 3_000);
    let cause: String = sqlx::query_scalar(
        "SELECT cause FROM transaction_transitions WHERE transaction_id = $1 AND to_status = 'succeeded'",
    )
    .bind(tx.id.as_uuid())
    .fetch_one(app.pool())
    .await?;
    assert_eq!(cause, "reconciliation");
    assert!(app.metrics.reconciliations("applied") >= 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_event_is_caught_up_from_the_event_list() -> Result {
    let (sim, app, client) = sim_and_app(|c| {
        c.catch_up_interval = Some(Duration::from_millis(100));
    })
    .await?;
    // No webhook endpoint: the event exists only in Stripe's list.
    let tx = app.insert(&NewTx::payment("zoe", 1_100)).await?;
    let pi = pay(&client, &tx, false).await?;
    app.set_pi(&tx, pi.id.as_str()).await?;

    eventually("the catch-up pass applies the event", || async {
        Ok(status_of(&app, &tx).await? == Status::Succeeded)
    })
    .await?;
    let sources: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT source FROM stripe_events WHERE type = 'payment_intent.succeeded'",
    )
    .fetch_all(app.pool())
    .await?;
    assert_eq!(sources, ["catch_up"]);
    assert_eq!(app.balance("zoe").await?, 1_100);
    assert!(app.metrics.caught_up_events("stored") >= 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_transactions_are_canceled_at_stripe_and_read_back_ever_less_often() -> Result {
    let (sim, app, client) = sim_and_app(|c| {
        c.reconcile_after = Duration::from_millis(200);
        c.reconcile_interval = Some(Duration::from_millis(50));
        c.abandon_after = Duration::from_secs(3);
    })
    .await?;
    sim.add_webhook_endpoint(app.url("/v1/stripe-webhook"));
    // A 3DS challenge the customer never answers, and a request that never reached Stripe.
    let waiting = app.insert(&NewTx::payment("uma", 2_000)).await?;
    let metadata = HashMap::from([("transaction_id".to_owned(), waiting.id.to_string())]);
    let pi = CreatePaymentIntent::new(2_000, stripe_types::Currency::USD)
        .payment_method("pm_card_threeDSecure2Required")
        .confirm(true)
        .metadata(metadata)
        .send(&client)
        .await?;
    app.set_pi(&waiting, pi.id.as_str()).await?;
    let lost = app.insert(&NewTx::payment("uma", 700)).await?;
    eventually("the challenge is recorded", || async {
        Ok(status_of(&app, &waiting).await? == Status::RequiresAction)
    })
    .await?;

    eventually("both abandoned transactions end canceled", || async {
        Ok(status_of(&app, &waiting).await? == Status::Canceled
            && status_of(&app, &lost).await? == Status::Canceled)
    })
    .await?;
    let at_stripe = RetrievePaymentIntent::new(pi.id.as_str())
        .send(&client)
        .await?;
    assert_eq!(at_stripe.status, PaymentIntentStatus::Canceled);
    // Two rows read back every 50 ms for 3 s would be some 120 reads; backing off
    // (200 ms, doubling) keeps it to a handful each.
    let reads =
        app.metrics.reconciliations("unchanged") + app.metrics.reconciliations("not_at_stripe");
    assert!(
        reads <= 12,
        "the sweeper kept re-reading the same rows: {reads}"
    );
    assert_eq!(app.balance("uma").await?, 0);
    sim.shutdown().await;
    Ok(())
}

/// `POST /v1{path}` at stripe-sim with a form, as any Stripe client would: the status
/// and the body.
async fn sim_post(
    sim: &StripeSim,
    path: &str,
    form: &[(&str, &str)],
) -> Result<(u16, serde_json::Value)> {
    let response = reqwest::Client::new()
        .post(format!("{}/v1{path}", sim.base_url()))
        .bearer_auth("sk_test_from_the_tests")
        .form(form)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// The `id` of an object stripe-sim answered with.
fn id_of(object: &serde_json::Value) -> Result<String> {
    object["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no id in {object}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_invoice_payment_records_the_real_reason_before_the_invoice_is_voided() -> Result
{
    let (sim, app, _client) = sim_and_app(|_| {}).await?;
    sim.add_webhook_endpoint(app.url("/v1/stripe-webhook"));
    let new = NewTx {
        kind: TransactionKind::Coupon,
        payment_method: None,
        coupon: Some("FIVE_OFF".into()),
        ..NewTx::payment("ivy", 1_000)
    };
    let tx = app.insert(&new).await?;
    // The attempt's invoice, open with an amount due that a card must pay.
    let (_, customer) = sim_post(&sim, "/customers", &[]).await?;
    let customer = id_of(&customer)?;
    app.customer("ivy", &customer).await?;
    let tx_id = tx.id.to_string();
    let invoice = [
        ("customer", customer.as_str()),
        ("auto_advance", "false"),
        ("metadata[transaction_id]", tx_id.as_str()),
    ];
    let (_, invoice) = sim_post(&sim, "/invoices", &invoice).await?;
    let invoice = id_of(&invoice)?;
    let item = [
        ("customer", customer.as_str()),
        ("invoice", invoice.as_str()),
        ("amount", "1000"),
        ("currency", "usd"),
    ];
    sim_post(&sim, "/invoiceitems", &item).await?;
    app.set_refs(
        tx.id,
        &store::StripeRefs {
            invoice_id: Some(&invoice),
            ..store::StripeRefs::default()
        },
    )
    .await?;
    sim_post(&sim, &format!("/invoices/{invoice}/finalize"), &[]).await?;

    let card = [("payment_method", "pm_card_chargeDeclinedInsufficientFunds")];
    let (status, declined) = sim_post(&sim, &format!("/invoices/{invoice}/pay"), &card).await?;
    assert_eq!(status, 402, "{declined}");

    // invoice.payment_failed names no error; the invoice's payment does.
    eventually("the invoice is voided at Stripe", || async {
        let now: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/invoices/{invoice}", sim.base_url()))
            .bearer_auth("sk_test_from_the_tests")
            .send()
            .await?
            .json()
            .await?;
        Ok(now["status"] == "void")
    })
    .await?;
    let failed = app.transaction(tx.id).await?;
    assert_eq!(
        (
            failed.failure_code.as_deref(),
            failed.failure_message.as_deref()
        ),
        (
            Some("insufficient_funds"),
            Some("Your card has insufficient funds.")
        ),
        "{failed:?}"
    );
    // The failure first said only that the payment failed; the reason was recorded
    // through the state machine, in the audit trail, with a new version (the doorbell).
    let trail: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT from_status, cause, version FROM transaction_transitions \
         WHERE transaction_id = $1 AND to_status = 'failed' ORDER BY version",
    )
    .bind(tx.id.as_uuid())
    .fetch_all(app.pool())
    .await?;
    let causes: Vec<(&str, &str)> = trail
        .iter()
        .map(|(from, cause, _)| (from.as_str(), cause.as_str()))
        .collect();
    assert_eq!(
        causes,
        [("created", "stripe_event"), ("failed", "reconciliation")]
    );
    assert!(trail[1].2 > trail[0].2, "{trail:?}");
    // Our own void's `invoice.voided` changes nothing: the attempt stays FAILED.
    eventually("the void's event is applied", || async {
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM stripe_events WHERE type = 'invoice.voided' \
             AND payload #>> '{data,object,id}' = $1",
        )
        .bind(&invoice)
        .fetch_optional(app.pool())
        .await?;
        Ok(state.as_deref() == Some("stale"))
    })
    .await?;
    assert_eq!(app.transaction(tx.id).await?.status, Status::Failed);
    assert_eq!(app.balance("ivy").await?, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_of_a_customer_we_do_not_know_end_foreign_never_dead() -> Result {
    let (sim, app, _client) = sim_and_app(|_| {}).await?;
    sim.add_webhook_endpoint(app.url("/v1/stripe-webhook"));
    // Another integration on the shared account: its customer, its card, attached and
    // detached. Nothing in the events is ours, and nothing of ours ever matches them.
    let (_, customer) = sim_post(&sim, "/customers", &[]).await?;
    let customer = id_of(&customer)?;
    let attach = [("customer", customer.as_str())];
    let (_, card) = sim_post(&sim, "/payment_methods/pm_card_visa/attach", &attach).await?;
    let card = id_of(&card)?;
    sim_post(&sim, &format!("/payment_methods/{card}/detach"), &[]).await?;
    assert!(sim.wait_for_deliveries(Duration::from_secs(10)).await);

    let states = || async {
        let rows: Vec<(String, String, i32)> = sqlx::query_as(
            "SELECT type, state, attempts FROM stripe_events \
             WHERE type LIKE 'payment_method.%' ORDER BY type",
        )
        .fetch_all(app.pool())
        .await?;
        anyhow::Ok(rows)
    };
    eventually("both retry budgets are spent", || async {
        let rows = states().await?;
        Ok(rows.len() == 2 && rows.iter().all(|(_, state, _)| state != "unmatched"))
    })
    .await?;
    // Retried first (an attach may beat payments-api's customer row), then foreign.
    assert_eq!(
        states().await?,
        [
            ("payment_method.attached".into(), "foreign".into(), 5),
            ("payment_method.detached".into(), "foreign".into(), 5),
        ]
    );
    assert_eq!(app.metrics.events_dead_lettered(), 0);
    sim.shutdown().await;
    Ok(())
}
