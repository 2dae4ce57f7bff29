use stripe_core::payment_intent::CreatePaymentIntent;
use stripe_core::refund::CreateRefund;
use stripe_types::Currency;

use crate::support::{call, client, sim, stripe_error};

async fn paid_intent(sim: &stripe_sim::StripeSim, amount: i64) -> (String, String) {
    let intent = CreatePaymentIntent::new(amount, Currency::USD)
        .payment_method("pm_card_visa")
        .confirm(true)
        .send(&client(sim))
        .await
        .expect("paid");
    let charge = intent
        .latest_charge
        .expect("charge")
        .id()
        .as_str()
        .to_owned();
    (intent.id.as_str().to_owned(), charge)
}

#[tokio::test]
async fn partial_refunds_accumulate_until_the_charge_is_fully_refunded() {
    let sim = sim().await;
    let client = client(&sim);
    let (intent, charge) = paid_intent(&sim, 1000).await;
    let first = CreateRefund::new()
        .payment_intent(intent.as_str())
        .amount(300)
        .send(&client)
        .await
        .expect("refund");
    assert_eq!(first.amount, 300);
    assert_eq!(first.status.as_deref(), Some("succeeded"));
    let (_, after_first) = call(&sim, "GET", &format!("/v1/charges/{charge}"), &[]).await;
    assert_eq!(
        (
            after_first["amount_refunded"].as_i64(),
            after_first["refunded"].as_bool()
        ),
        (Some(300), Some(false))
    );

    let rest = CreateRefund::new()
        .charge(charge.as_str())
        .send(&client)
        .await
        .expect("refund the rest");
    assert_eq!(rest.amount, 700);
    let (_, after_all) = call(&sim, "GET", &format!("/v1/charges/{charge}"), &[]).await;
    assert_eq!(
        (
            after_all["amount_refunded"].as_i64(),
            after_all["refunded"].as_bool()
        ),
        (Some(1000), Some(true))
    );
    assert_eq!(
        after_all["refunds"]["data"].as_array().map(Vec::len),
        Some(2)
    );

    let (error, status) = stripe_error(
        CreateRefund::new()
            .charge(charge.as_str())
            .amount(1)
            .send(&client)
            .await,
    );
    assert_eq!(
        (status, error.code.expect("code").as_str()),
        (400, "charge_already_refunded")
    );

    let refunded_events: Vec<serde_json::Value> = sim
        .events()
        .into_iter()
        .filter(|e| e["type"] == "charge.refunded")
        .collect();
    assert_eq!(refunded_events.len(), 2);
    assert_eq!(refunded_events[0]["data"]["object"]["object"], "charge");
    assert_eq!(
        refunded_events[0]["data"]["previous_attributes"]["amount_refunded"],
        0
    );
    assert_eq!(
        refunded_events[1]["data"]["object"]["amount_refunded"],
        1000
    );
    assert_eq!(
        sim.events()
            .iter()
            .filter(|e| e["type"] == "refund.created")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_refund_larger_than_the_rest_is_refused() {
    let sim = sim().await;
    let (intent, _) = paid_intent(&sim, 1000).await;
    let (error, status) = stripe_error(
        CreateRefund::new()
            .payment_intent(intent.as_str())
            .amount(1001)
            .send(&client(&sim))
            .await,
    );
    assert_eq!(
        (status, error.code.expect("code").as_str()),
        (400, "amount_too_large")
    );
}

#[tokio::test]
async fn a_dispute_opens_and_closes_through_the_test_endpoints() {
    let sim = sim().await;
    let (intent, charge) = paid_intent(&sim, 2500).await;
    let http = reqwest::Client::new();
    let opened: serde_json::Value = http
        .post(format!("{}/test/charges/{charge}/dispute", sim.base_url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(opened["status"], "needs_response");
    assert_eq!(
        (opened["amount"].as_i64(), opened["charge"].as_str()),
        (Some(2500), Some(charge.as_str()))
    );
    assert_eq!(opened["payment_intent"], intent.as_str());
    let dispute = opened["id"].as_str().expect("id").to_owned();

    let closed: serde_json::Value = http
        .post(format!("{}/test/disputes/{dispute}/close", sim.base_url()))
        .json(&serde_json::json!({"outcome": "lost"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(closed["status"], "lost");
    let events = sim.events();
    let created = events
        .iter()
        .find(|e| e["type"] == "charge.dispute.created")
        .expect("created");
    assert_eq!(created["data"]["object"]["object"], "dispute");
    let closed_event = events
        .iter()
        .find(|e| e["type"] == "charge.dispute.closed")
        .expect("closed");
    assert_eq!(closed_event["data"]["object"]["status"], "lost");
    assert_eq!(
        closed_event["data"]["previous_attributes"]["status"],
        "needs_response"
    );

    let (status, fetched) = call(&sim, "GET", &format!("/v1/disputes/{dispute}"), &[]).await;
    assert_eq!((status, fetched["status"].as_str()), (200, Some("lost")));
    let (_, charge_json) = call(&sim, "GET", &format!("/v1/charges/{charge}"), &[]).await;
    assert_eq!(charge_json["disputed"], true);

    let second = sim
        .open_dispute(&charge, Some(100))
        .expect("opened in-process");
    let won = sim
        .close_dispute(second["id"].as_str().expect("id"), true)
        .expect("closed");
    assert_eq!(won["status"], "won");
}
