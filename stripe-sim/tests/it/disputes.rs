//! Disputes as Stripe's test mode produces them: the dispute cards, inquiries and chargebacks,
//! evidence, accepting, the bank's decision, escalation, and the events of each step.

use serde_json::{Value, json};
use stripe_sim::StripeSim;

use crate::support::{call, sim};

/// A confirmed PaymentIntent paid with `card`: `(payment intent, charge)`.
pub async fn paid(sim: &StripeSim, card: &str, amount: i64) -> (String, String) {
    let (status, intent) = call(
        sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", &amount.to_string()),
            ("currency", "usd"),
            ("payment_method", card),
            ("confirm", "true"),
            ("metadata[transaction_id]", "tx_dispute"),
        ],
    )
    .await;
    assert_eq!(
        (status, intent["status"].as_str()),
        (200, Some("succeeded")),
        "{intent}"
    );
    let id = |v: &Value| v.as_str().expect("id").to_owned();
    (id(&intent["id"]), id(&intent["latest_charge"]))
}

/// The types of the events emitted since `from` (an index into `sim.events()`).
fn types_since(sim: &StripeSim, from: usize) -> Vec<String> {
    sim.events()[from..]
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect()
}

fn last_event(sim: &StripeSim, event_type: &str) -> Value {
    sim.events()
        .into_iter()
        .rev()
        .find(|e| e["type"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type}"))
}

async fn post_test(sim: &StripeSim, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn disputes_of(sim: &StripeSim, filter: (&str, &str)) -> Vec<Value> {
    let (status, list) = call(sim, "GET", "/v1/disputes", &[filter]).await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().expect("data").clone()
}

#[tokio::test]
async fn the_dispute_card_succeeds_then_is_charged_back_with_funds_withdrawn() {
    let sim = sim().await;
    let (intent, charge) = paid(&sim, "pm_card_createDispute", 4200).await;
    let types = types_since(&sim, 0);
    assert_eq!(
        types,
        [
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded",
            "charge.dispute.created",
            "charge.dispute.funds_withdrawn",
        ]
    );
    let created = last_event(&sim, "charge.dispute.created")["data"]["object"].clone();
    assert_eq!(created["status"], "needs_response");
    assert_eq!(
        (created["amount"].as_i64(), created["currency"].as_str()),
        (Some(4200), Some("usd"))
    );
    assert_eq!(
        (
            created["charge"].as_str(),
            created["payment_intent"].as_str()
        ),
        (Some(charge.as_str()), Some(intent.as_str()))
    );
    assert_eq!(created["is_charge_refundable"], false);
    assert_eq!(created["reason"], "fraudulent");
    assert_eq!(
        created["payment_method_details"]["card"]["case_type"],
        "chargeback"
    );
    let withdrawal = &created["balance_transactions"][0];
    assert_eq!(
        (
            withdrawal["amount"].as_i64(),
            withdrawal["fee"].as_i64(),
            withdrawal["net"].as_i64()
        ),
        (Some(-4200), Some(1500), Some(-5700)),
        "the withdrawal is in the created event already"
    );
    assert_eq!(withdrawal["reporting_category"], "dispute");
    assert_eq!(withdrawal["source"], created["id"]);
    let withdrawn = last_event(&sim, "charge.dispute.funds_withdrawn");
    assert_eq!(withdrawn["data"]["object"]["id"], created["id"]);

    let listed = disputes_of(&sim, ("payment_intent", &intent)).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    let id = created["id"].as_str().expect("id");
    let (status, fetched) = call(&sim, "GET", &format!("/v1/disputes/{id}"), &[]).await;
    assert_eq!((status, &fetched), (200, &created));
    let (_, charge_json) = call(&sim, "GET", &format!("/v1/charges/{charge}"), &[]).await;
    assert_eq!(charge_json["disputed"], true);
}

#[tokio::test]
async fn the_inquiry_card_opens_an_inquiry_that_withdraws_nothing_and_closes_when_accepted() {
    let sim = sim().await;
    let (intent, _) = paid(&sim, "pm_card_createDisputeInquiry", 1900).await;
    assert_eq!(
        types_since(&sim, 2),
        ["payment_intent.succeeded", "charge.dispute.created"],
        "no funds_withdrawn for an inquiry"
    );
    let inquiry = disputes_of(&sim, ("payment_intent", &intent))
        .await
        .remove(0);
    assert_eq!(inquiry["status"], "warning_needs_response");
    assert_eq!(inquiry["balance_transactions"], json!([]));
    assert_eq!(inquiry["is_charge_refundable"], true);
    assert_eq!(
        inquiry["payment_method_details"]["card"]["case_type"],
        "inquiry"
    );

    let id = inquiry["id"].as_str().expect("id");
    let before = sim.events().len();
    let (status, closed) = call(&sim, "POST", &format!("/v1/disputes/{id}/close"), &[]).await;
    assert_eq!(
        (status, closed["status"].as_str()),
        (200, Some("warning_closed"))
    );
    assert_eq!(types_since(&sim, before), ["charge.dispute.closed"]);
    let event = last_event(&sim, "charge.dispute.closed");
    assert_eq!(
        event["data"]["previous_attributes"]["status"],
        "warning_needs_response"
    );
    assert_eq!(event["data"]["object"]["balance_transactions"], json!([]));

    let (status, again) = call(&sim, "POST", &format!("/v1/disputes/{id}/close"), &[]).await;
    assert_eq!(status, 400, "{again}");
}

#[tokio::test]
async fn accepting_a_chargeback_loses_it_and_gives_nothing_back() {
    let sim = sim().await;
    let (_, charge) = paid(&sim, "pm_card_createDispute", 1000).await;
    let dispute = disputes_of(&sim, ("charge", &charge)).await.remove(0);
    let id = dispute["id"].as_str().expect("id");
    let before = sim.events().len();
    let (status, lost) = call(&sim, "POST", &format!("/v1/disputes/{id}/close"), &[]).await;
    assert_eq!((status, lost["status"].as_str()), (200, Some("lost")));
    assert_eq!(types_since(&sim, before), ["charge.dispute.closed"]);
    assert_eq!(
        lost["balance_transactions"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn an_escalated_inquiry_withdraws_then_a_won_chargeback_reinstates() {
    let sim = sim().await;
    let (_, charge) = paid(&sim, "pm_card_createDisputeInquiry", 3000).await;
    let id = disputes_of(&sim, ("charge", &charge)).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let before = sim.events().len();
    let (status, escalated) =
        post_test(&sim, &format!("/test/disputes/{id}/escalate"), json!({})).await;
    assert_eq!(
        (status, escalated["status"].as_str()),
        (200, Some("needs_response")),
        "{escalated}"
    );
    assert_eq!(
        types_since(&sim, before),
        ["charge.dispute.updated", "charge.dispute.funds_withdrawn"]
    );
    let updated = last_event(&sim, "charge.dispute.updated");
    assert_eq!(
        updated["data"]["previous_attributes"]["status"],
        "warning_needs_response"
    );
    assert_eq!(
        updated["data"]["previous_attributes"]["is_charge_refundable"],
        true
    );
    assert_eq!(escalated["is_charge_refundable"], false);
    assert_eq!(escalated["balance_transactions"][0]["amount"], -3000);

    let before = sim.events().len();
    let (status, won) = post_test(
        &sim,
        &format!("/test/disputes/{id}/close"),
        json!({"outcome": "won"}),
    )
    .await;
    assert_eq!((status, won["status"].as_str()), (200, Some("won")));
    assert_eq!(
        types_since(&sim, before),
        ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    );
    let reinstated = last_event(&sim, "charge.dispute.funds_reinstated")["data"]["object"].clone();
    let amounts: Vec<i64> = reinstated["balance_transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| t["amount"].as_i64().expect("amount"))
        .collect();
    assert_eq!(amounts, [-3000, 3000]);
    assert_eq!(
        reinstated["balance_transactions"][1]["reporting_category"],
        "dispute_reversal"
    );

    let (status, _) = post_test(&sim, &format!("/test/disputes/{id}/escalate"), json!({})).await;
    assert_eq!(status, 400, "only an open inquiry escalates");
}

#[tokio::test]
async fn test_mode_evidence_decides_a_submitted_chargeback() {
    let sim = sim().await;
    let (_, winning) = paid(&sim, "pm_card_createDispute", 500).await;
    let (_, losing) = paid(&sim, "pm_card_createDisputeProductNotReceived", 700).await;
    let win_id = disputes_of(&sim, ("charge", &winning)).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let lose_id = disputes_of(&sim, ("charge", &losing)).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let (status, staged) = call(
        &sim,
        "POST",
        &format!("/v1/disputes/{win_id}"),
        &[
            ("evidence[customer_name]", "Jenny Rosen"),
            ("submit", "false"),
            ("metadata[case]", "7"),
        ],
    )
    .await;
    assert_eq!(
        (status, staged["status"].as_str()),
        (200, Some("needs_response")),
        "{staged}"
    );
    assert_eq!(staged["evidence"]["customer_name"], "Jenny Rosen");
    assert_eq!(staged["evidence_details"]["has_evidence"], true);
    assert_eq!(staged["metadata"]["case"], "7");
    assert_eq!(
        last_event(&sim, "charge.dispute.updated")["data"]["object"]["id"],
        win_id.as_str()
    );

    let before = sim.events().len();
    let (status, won) = call(
        &sim,
        "POST",
        &format!("/v1/disputes/{win_id}"),
        &[("evidence[uncategorized_text]", "winning_evidence")],
    )
    .await;
    assert_eq!(
        (status, won["status"].as_str()),
        (200, Some("won")),
        "{won}"
    );
    assert_eq!(
        types_since(&sim, before),
        [
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_reinstated"
        ]
    );
    let submitted = &sim.events()[before];
    assert_eq!(submitted["data"]["object"]["status"], "under_review");
    assert_eq!(
        submitted["data"]["object"]["evidence_details"]["submission_count"],
        1
    );

    let before = sim.events().len();
    let (_, lost) = call(
        &sim,
        "POST",
        &format!("/v1/disputes/{lose_id}"),
        &[("evidence[uncategorized_text]", "losing_evidence")],
    )
    .await;
    assert_eq!(lost["status"], "lost");
    assert_eq!(lost["reason"], "product_not_received");
    assert_eq!(
        types_since(&sim, before),
        ["charge.dispute.updated", "charge.dispute.closed"]
    );

    let (status, unknown) = call(
        &sim,
        "POST",
        &format!("/v1/disputes/{lose_id}"),
        &[("evidence[bogus]", "x")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(unknown["error"]["code"], "parameter_unknown");
}

#[tokio::test]
async fn losing_evidence_on_an_inquiry_escalates_it() {
    let sim = sim().await;
    let (_, charge) = paid(&sim, "pm_card_createDisputeInquiry", 800).await;
    let id = disputes_of(&sim, ("charge", &charge)).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = sim.events().len();
    let (_, escalated) = call(
        &sim,
        "POST",
        &format!("/v1/disputes/{id}"),
        &[("evidence[uncategorized_text]", "losing_evidence")],
    )
    .await;
    assert_eq!(escalated["status"], "needs_response");
    assert_eq!(
        types_since(&sim, before),
        [
            "charge.dispute.updated",
            "charge.dispute.updated",
            "charge.dispute.funds_withdrawn"
        ]
    );
}

#[tokio::test]
async fn a_charge_can_be_disputed_several_times() {
    let sim = sim().await;
    let (_, charge) = paid(&sim, "pm_card_createMultipleDisputes", 2500).await;
    let disputes = disputes_of(&sim, ("charge", &charge)).await;
    assert_eq!(disputes.len(), 2);
    assert!(
        disputes
            .iter()
            .all(|d| d["amount"] == 2500 && d["status"] == "needs_response")
    );
    assert_ne!(disputes[0]["id"], disputes[1]["id"]);
    assert_eq!(
        sim.events()
            .iter()
            .filter(|e| e["type"] == "charge.dispute.funds_withdrawn")
            .count(),
        2
    );

    // And by hand, on any charge, even a fully refunded one: an inquiry after the refund.
    let (intent, visa) = paid(&sim, "pm_card_visa", 900).await;
    call(&sim, "POST", "/v1/refunds", &[("payment_intent", &intent)]).await;
    let (status, inquiry) = post_test(
        &sim,
        &format!("/test/charges/{visa}/dispute"),
        json!({"inquiry": true, "amount": 400, "reason": "general"}),
    )
    .await;
    assert_eq!(
        (status, inquiry["status"].as_str()),
        (200, Some("warning_needs_response")),
        "{inquiry}"
    );
    assert_eq!(inquiry["amount"], 400);
    let (status, _) = post_test(
        &sim,
        &format!("/test/charges/{visa}/dispute"),
        json!({"amount": 901}),
    )
    .await;
    assert_eq!(status, 400, "never more than the captured amount");

    // Listing pages newest first.
    let (_, first) = call(&sim, "GET", "/v1/disputes", &[("limit", "2")]).await;
    assert_eq!(first["has_more"], true);
    assert_eq!(first["data"][0]["id"], inquiry["id"]);
    let last = first["data"][1]["id"].as_str().expect("id");
    let (_, rest) = call(
        &sim,
        "GET",
        "/v1/disputes",
        &[("limit", "2"), ("starting_after", last)],
    )
    .await;
    assert_eq!(
        (
            rest["data"].as_array().map(Vec::len),
            rest["has_more"].as_bool()
        ),
        (Some(1), Some(false))
    );
}

#[tokio::test]
async fn a_held_payment_on_a_dispute_card_is_disputed_only_once_captured() {
    let sim = sim().await;
    let (_, held) = call(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "1200"),
            ("currency", "usd"),
            ("payment_method", "pm_card_createDispute"),
            ("capture_method", "manual"),
            ("confirm", "true"),
        ],
    )
    .await;
    assert_eq!(held["status"], "requires_capture");
    let id = held["id"].as_str().expect("id");
    assert!(disputes_of(&sim, ("payment_intent", id)).await.is_empty());
    call(
        &sim,
        "POST",
        &format!("/v1/payment_intents/{id}/capture"),
        &[("amount_to_capture", "1000")],
    )
    .await;
    let disputes = disputes_of(&sim, ("payment_intent", id)).await;
    assert_eq!(disputes.len(), 1);
    assert_eq!(disputes[0]["amount"], 1000, "the captured amount");
}
