//! Live mode next to test mode, and objects made by another integration on the same account:
//! what a service must tell apart from its own.

use std::time::Duration;

use serde_json::Value;
use stripe_sim::StripeSim;

use crate::support::{KEY, Receiver, call_with, signed_by};

const LIVE_KEY: &str = "sk_live_integration";

async fn live_sim(receiver: &Receiver) -> StripeSim {
    StripeSim::builder()
        .seed(8)
        .webhook_secret("whsec_modes")
        .webhook_url(&receiver.url)
        .livemode(true)
        .start()
        .await
        .expect("sim starts")
}

async fn as_key(
    sim: &StripeSim,
    key: &str,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    call_with(sim, method, path, form, Some(key), None).await.0
}

#[tokio::test]
async fn a_live_key_works_on_a_live_account_whose_objects_and_events_say_so() {
    let receiver = Receiver::start(0).await;
    let sim = live_sim(&receiver).await;
    let (status, intent) = as_key(
        &sim,
        LIVE_KEY,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "5000"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("metadata[transaction_id]", "tx_from_live"),
            ("expand[]", "latest_charge"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{intent}");
    assert_eq!(intent["livemode"], true);
    assert_eq!(
        intent["latest_charge"]["livemode"], true,
        "nested objects too"
    );
    let id = intent["id"].as_str().expect("id").to_owned();

    receiver
        .wait_until(Duration::from_secs(5), |r| {
            r.iter()
                .any(|d| d.event()["type"] == "payment_intent.succeeded")
        })
        .await;
    for delivery in receiver.received() {
        let event = delivery.event();
        assert!(signed_by(
            &delivery.signature,
            "whsec_modes",
            &delivery.body
        ));
        assert_eq!(event["livemode"], true, "{}", event["type"]);
        assert_eq!(event["data"]["object"]["livemode"], true);
    }
    let succeeded = receiver
        .received()
        .iter()
        .map(|d| d.event())
        .find(|e| e["type"] == "payment_intent.succeeded")
        .expect("succeeded");
    assert_eq!(
        succeeded["data"]["object"]["metadata"]["transaction_id"],
        "tx_from_live"
    );

    // Two accounts: a test key sees none of the live objects or events, and the other way round.
    let (status, _) = as_key(&sim, KEY, "GET", &format!("/v1/payment_intents/{id}"), &[]).await;
    assert_eq!(status, 404);
    let (_, test_events) = as_key(&sim, KEY, "GET", "/v1/events", &[]).await;
    assert_eq!(test_events["data"].as_array().map(Vec::len), Some(0));
    let (_, live_events) = as_key(&sim, LIVE_KEY, "GET", "/v1/events", &[]).await;
    assert!(live_events["data"].as_array().is_some_and(|d| d.len() >= 3));
    let (_, test_intent) = as_key(
        &sim,
        KEY,
        "POST",
        "/v1/payment_intents",
        &[("amount", "100"), ("currency", "usd")],
    )
    .await;
    assert_eq!(test_intent["livemode"], false);
    assert_ne!(test_intent["id"], intent["id"]);
    let (status, _) = as_key(
        &sim,
        LIVE_KEY,
        "GET",
        &format!(
            "/v1/payment_intents/{}",
            test_intent["id"].as_str().expect("id")
        ),
        &[],
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_card_error_in_live_mode_carries_live_objects() {
    let receiver = Receiver::start(0).await;
    let sim = live_sim(&receiver).await;
    let (status, error) = as_key(
        &sim,
        LIVE_KEY,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "5000"),
            ("currency", "usd"),
            ("payment_method", "pm_card_chargeDeclined"),
            ("confirm", "true"),
        ],
    )
    .await;
    assert_eq!(status, 402);
    assert_eq!(error["error"]["payment_intent"]["livemode"], true);
    assert_eq!(error["error"]["payment_method"]["livemode"], true);
}

#[tokio::test]
async fn live_keys_are_refused_unless_livemode_is_on() {
    let sim = crate::support::sim().await;
    let (status, error) = as_key(&sim, LIVE_KEY, "GET", "/v1/customers", &[]).await;
    assert_eq!(status, 401, "{error}");
}

#[tokio::test]
async fn objects_without_our_metadata_are_created_and_their_events_delivered() {
    // A shared account: another integration's payment, charge and invoice carry no metadata
    // of ours, and their events reach our endpoint all the same.
    let receiver = Receiver::start(0).await;
    let sim = live_sim(&receiver).await;
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let sim = &sim;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = as_key(sim, KEY, "POST", &path, &form).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    let intent = post(
        "/v1/payment_intents".into(),
        vec![
            ("amount", "700".into()),
            ("currency", "usd".into()),
            ("payment_method", "pm_card_visa".into()),
            ("confirm", "true".into()),
        ],
    )
    .await;
    let customer = post("/v1/customers".into(), vec![]).await;
    let customer = customer["id"].as_str().expect("id").to_owned();
    let invoice = post("/v1/invoices".into(), vec![("customer", customer.clone())]).await;
    let invoice = invoice["id"].as_str().expect("id").to_owned();
    post(
        "/v1/invoiceitems".into(),
        vec![
            ("customer", customer),
            ("amount", "900".into()),
            ("currency", "usd".into()),
            ("invoice", invoice.clone()),
        ],
    )
    .await;
    post(format!("/v1/invoices/{invoice}/finalize"), vec![]).await;

    receiver
        .wait_until(Duration::from_secs(5), |r| {
            let types: Vec<Value> = r.iter().map(|d| d.event()["type"].clone()).collect();
            [
                "payment_intent.succeeded",
                "charge.succeeded",
                "invoice.finalized",
            ]
            .iter()
            .all(|t| types.contains(&Value::from(*t)))
        })
        .await;
    for delivery in receiver.received() {
        let event = delivery.event();
        let object = &event["data"]["object"];
        assert_eq!(event["livemode"], false);
        if let Some(metadata) = object.get("metadata") {
            assert_eq!(metadata, &serde_json::json!({}), "{}", event["type"]);
        }
    }
    let charge = receiver
        .received()
        .iter()
        .map(|d| d.event())
        .find(|e| e["type"] == "charge.succeeded")
        .expect("charge event");
    assert_eq!(charge["data"]["object"]["payment_intent"], intent["id"]);
}
