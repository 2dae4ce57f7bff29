//! Refunds and disputes as stripe-sim produces them (its dispute test card, Stripe's
//! refund API, its test routes to fail a refund and decide a dispute), delivered to the
//! ingestor in orders Stripe may use: as emitted, reversed, shuffled, with duplicates.
//! Every order ends in the same wallet.

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde_json::Value;
use stripe_sim::StripeSim;

use crate::helpers::{NewTx, Result, SECRET, TestApp, eventually};

const AMOUNT: i64 = 2_000;

/// `POST {path}` at stripe-sim with a form, as Stripe's API (or a test route) takes it.
async fn post(sim: &StripeSim, path: &str, form: &[(&str, &str)]) -> Result<Value> {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth("sk_test_from_the_tests")
        .form(form)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

/// A top-up on the dispute card, charged back, then won or lost; when won, a refund
/// that fails and one that succeeds. Returns the events Stripe emitted about it and
/// the wallet they should leave.
async fn story(sim: &StripeSim, tx: &str, won: bool) -> Result<(Vec<Value>, i64)> {
    let from = sim.events().len();
    let intent = post(
        sim,
        "/v1/payment_intents",
        &[
            ("amount", &AMOUNT.to_string()),
            ("currency", "usd"),
            ("payment_method", "pm_card_createDispute"),
            ("confirm", "true"),
            ("metadata[transaction_id]", tx),
        ],
    )
    .await?;
    let charge = intent["latest_charge"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let disputes: Value = reqwest::Client::new()
        .get(format!("{}/v1/disputes?charge={charge}", sim.base_url()))
        .bearer_auth("sk_test_from_the_tests")
        .send()
        .await?
        .json()
        .await?;
    let dispute = id(&disputes["data"][0]);
    sim.close_dispute(&dispute, won)
        .map_err(|e| anyhow::anyhow!("closing {dispute}: {e:?}"))?;
    let mut wallet = 0;
    if won {
        let failing = post(
            sim,
            "/v1/refunds",
            &[("charge", &charge), ("amount", "500")],
        )
        .await?;
        post(sim, &format!("/test/refunds/{}/fail", id(&failing)), &[]).await?;
        post(
            sim,
            "/v1/refunds",
            &[("charge", &charge), ("amount", "300")],
        )
        .await?;
        wallet = AMOUNT - 300;
    }
    let pi = id(&intent);
    let ours = |e: &Value| {
        let o = &e["data"]["object"];
        [&o["id"], &o["payment_intent"], &o["charge"]]
            .iter()
            .any(|v| v.as_str() == Some(pi.as_str()) || v.as_str() == Some(charge.as_str()))
    };
    let events = sim.events()[from..]
        .iter()
        .filter(|e| ours(e))
        .cloned()
        .collect();
    Ok((events, wallet))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_and_disputes_in_any_order_end_in_the_same_wallet() -> Result {
    let sim = StripeSim::builder()
        .webhook_secret(SECRET)
        .seed(3)
        .bind("127.0.0.1:0".parse()?)
        .start()
        .await?;
    let app = TestApp::start_with(|c| c.retry.max_attempts = 200).await?;
    let mut rng = StdRng::seed_from_u64(17);
    let mut expected = Vec::new();
    for case in 0..6 {
        let user = format!("order-{case}");
        let tx = app.insert(&NewTx::payment(&user, AMOUNT)).await?;
        let (mut events, wallet) = story(&sim, &tx.id.to_string(), case % 3 != 2).await?;
        match case {
            0 => {}
            1 => events.reverse(),
            _ => {
                let copies: Vec<Value> = events.iter().step_by(2).cloned().collect();
                events.extend(copies);
                events.shuffle(&mut rng);
            }
        }
        for event in &events {
            app.deliver(event).await?;
        }
        expected.push((user, wallet));
    }
    eventually("every event is applied or set aside", || async {
        let waiting = app
            .count("SELECT count(*) FROM stripe_events WHERE state IN ('received', 'unmatched', 'deferred')")
            .await?;
        Ok(waiting == 0)
    })
    .await?;
    for (user, wallet) in expected {
        assert_eq!(app.balance(&user).await?, wallet, "{user}");
    }
    Ok(())
}
