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

fn types_since(sim: &stripe_sim::StripeSim, from: usize) -> Vec<String> {
    sim.events()[from..]
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect()
}

#[tokio::test]
async fn a_refund_on_the_refund_fail_card_succeeds_then_fails_and_gives_the_amount_back() {
    let sim = sim().await;
    let (intent, charge) = crate::disputes::paid(&sim, "pm_card_refundFail", 2000).await;
    let before = sim.events().len();
    let (status, refund) = call(
        &sim,
        "POST",
        "/v1/refunds",
        &[("payment_intent", &intent), ("amount", "1500")],
    )
    .await;
    assert_eq!(status, 200, "{refund}");
    assert_eq!(refund["status"], "succeeded", "answered as created");
    assert_eq!(
        types_since(&sim, before),
        [
            "charge.refunded",
            "refund.created",
            "charge.refund.updated",
            "refund.updated",
            "refund.failed",
            "charge.updated",
        ]
    );
    let events = sim.events();
    let refunded = &events[before]["data"]["object"];
    assert_eq!(refunded["amount_refunded"], 1500);
    for failed in &events[before + 2..before + 5] {
        let object = &failed["data"]["object"];
        assert_eq!(object["id"], refund["id"]);
        assert_eq!(
            (object["status"].as_str(), object["failure_reason"].as_str()),
            (Some("failed"), Some("expired_or_canceled_card"))
        );
        assert!(
            object["failure_balance_transaction"]
                .as_str()
                .is_some_and(|t| t.starts_with("txn_"))
        );
        assert_eq!(failed["data"]["previous_attributes"]["status"], "succeeded");
        assert_eq!(
            failed["data"]["previous_attributes"]["failure_reason"],
            serde_json::Value::Null
        );
    }
    let updated = &events[before + 5]["data"];
    assert_eq!(updated["object"]["amount_refunded"], 0);
    assert_eq!(updated["previous_attributes"]["amount_refunded"], 1500);

    let id = refund["id"].as_str().expect("id");
    let (_, fetched) = call(&sim, "GET", &format!("/v1/refunds/{id}"), &[]).await;
    assert_eq!(fetched["status"], "failed");
    let (_, charge_json) = call(&sim, "GET", &format!("/v1/charges/{charge}"), &[]).await;
    assert_eq!(
        (
            charge_json["amount_refunded"].as_i64(),
            charge_json["refunded"].as_bool()
        ),
        (Some(0), Some(false))
    );
    assert_eq!(charge_json["refunds"]["data"][0]["status"], "failed");

    // The whole amount can be refunded again; on this card, that refund fails too.
    let (status, again) = call(&sim, "POST", "/v1/refunds", &[("charge", &charge)]).await;
    assert_eq!((status, again["amount"].as_i64()), (200, Some(2000)));
    let (_, listed) = call(&sim, "GET", "/v1/refunds", &[("charge", &charge)]).await;
    let statuses: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["failed", "failed"]);
}

#[tokio::test]
async fn any_refund_can_be_failed_and_a_later_refund_of_the_charge_succeeds() {
    let sim = sim().await;
    let (intent, charge) = paid_intent(&sim, 1000).await;
    let (_, first) = call(
        &sim,
        "POST",
        "/v1/refunds",
        &[("payment_intent", &intent), ("amount", "300")],
    )
    .await;
    let first_id = first["id"].as_str().expect("id");
    let http = reqwest::Client::new();
    let fail = |reason: Option<&'static str>| {
        let url = format!("{}/test/refunds/{first_id}/fail", sim.base_url());
        let request = http.post(url);
        async move {
            let request = match reason {
                Some(reason) => request.form(&[("failure_reason", reason)]),
                None => request,
            };
            let response = request.send().await.expect("sent");
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    };
    let (status, _) = fail(Some("bogus")).await;
    assert_eq!(status, 400);
    let (status, failed) = fail(Some("lost_or_stolen_card")).await;
    assert_eq!(
        (status, failed["failure_reason"].as_str()),
        (200, Some("lost_or_stolen_card"))
    );
    let (status, _) = fail(None).await;
    assert_eq!(status, 400, "a refund fails once");

    let (status, second) = call(&sim, "POST", "/v1/refunds", &[("charge", &charge)]).await;
    assert_eq!(
        (status, second["amount"].as_i64(), second["status"].as_str()),
        (200, Some(1000), Some("succeeded"))
    );
    let (_, charge_json) = call(&sim, "GET", &format!("/v1/charges/{charge}"), &[]).await;
    assert_eq!(
        (
            charge_json["amount_refunded"].as_i64(),
            charge_json["refunded"].as_bool()
        ),
        (Some(1000), Some(true))
    );
}

#[tokio::test]
async fn a_charged_back_charge_cannot_be_refunded_but_an_inquired_one_can() {
    let sim = sim().await;
    let (disputed, _) = crate::disputes::paid(&sim, "pm_card_createDispute", 1000).await;
    let (error, status) = stripe_error(
        CreateRefund::new()
            .payment_intent(disputed.as_str())
            .send(&client(&sim))
            .await,
    );
    assert_eq!(
        (status, error.code.expect("code").as_str()),
        (400, "charge_disputed")
    );
    let (inquired, _) = crate::disputes::paid(&sim, "pm_card_createDisputeInquiry", 1000).await;
    let refund = CreateRefund::new()
        .payment_intent(inquired.as_str())
        .send(&client(&sim))
        .await
        .expect("an inquiry's charge is refundable");
    assert_eq!(refund.amount, 1000);
}
