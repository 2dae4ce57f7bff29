use std::time::Duration;

use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_core::customer::CreateCustomer;
use stripe_core::payment_intent::{CreatePaymentIntent, RetrievePaymentIntent};
use stripe_types::Currency;

use crate::support::{KEY, call, call_with, client, sim, stripe_error};

#[tokio::test]
async fn requests_without_a_test_key_are_401() {
    let sim = sim().await;
    let ((status, body), _) = call_with(&sim, "POST", "/v1/customers", &[], None, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let ((status, _), _) =
        call_with(&sim, "GET", "/v1/events", &[], Some("sk_live_abc"), None).await;
    assert_eq!(status, 401);
    let bad = stripe::ClientBuilder::new("not_a_key")
        .url(sim.base_url())
        .build()
        .expect("client");
    let (_, status) = stripe_error(CreateCustomer::new().send(&bad).await);
    assert_eq!(status, 401);
    let response = reqwest::Client::new()
        .get(format!("{}/v1/events", sim.base_url()))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status().as_u16(),
        200,
        "basic auth with the key as user name works"
    );
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_response() {
    let sim = sim().await;
    let form = [("email", "same@example.com")];
    let ((s1, first), h1) = call_with(
        &sim,
        "POST",
        "/v1/customers",
        &form,
        Some(KEY),
        Some("key-1"),
    )
    .await;
    let ((s2, second), h2) = call_with(
        &sim,
        "POST",
        "/v1/customers",
        &form,
        Some(KEY),
        Some("key-1"),
    )
    .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first, second);
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(sim.events().len(), 1, "the request ran once");

    let ((status, body), _) = call_with(
        &sim,
        "POST",
        "/v1/customers",
        &[("email", "other@example.com")],
        Some(KEY),
        Some("key-1"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "idempotency_error");
}

#[tokio::test]
async fn a_declined_payment_is_replayed_too_so_a_retry_never_charges_twice() {
    let sim = sim().await;
    let form = [
        ("amount", "100"),
        ("currency", "usd"),
        ("payment_method", "pm_card_chargeDeclined"),
        ("confirm", "true"),
    ];
    let ((s1, first), _) = call_with(
        &sim,
        "POST",
        "/v1/payment_intents",
        &form,
        Some(KEY),
        Some("decline-1"),
    )
    .await;
    let ((s2, second), headers) = call_with(
        &sim,
        "POST",
        "/v1/payment_intents",
        &form,
        Some(KEY),
        Some("decline-1"),
    )
    .await;
    assert_eq!((s1, s2), (402, 402));
    assert_eq!(first, second);
    assert_eq!(headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_run_once() {
    let sim = sim().await;
    let form = [
        ("amount", "100"),
        ("currency", "usd"),
        ("payment_method", "pm_card_visa"),
        ("confirm", "true"),
    ];
    let (a, b, c) = tokio::join!(
        call_with(
            &sim,
            "POST",
            "/v1/payment_intents",
            &form,
            Some(KEY),
            Some("race")
        ),
        call_with(
            &sim,
            "POST",
            "/v1/payment_intents",
            &form,
            Some(KEY),
            Some("race")
        ),
        call_with(
            &sim,
            "POST",
            "/v1/payment_intents",
            &form,
            Some(KEY),
            Some("race")
        ),
    );
    assert_eq!(a.0.1["id"], b.0.1["id"]);
    assert_eq!(b.0.1["id"], c.0.1["id"]);
    let created = sim
        .events()
        .iter()
        .filter(|e| e["type"] == "payment_intent.created")
        .count();
    assert_eq!(created, 1);
}

#[tokio::test]
async fn async_stripe_idempotency_keys_work_and_gets_ignore_them() {
    let sim = sim().await;
    let client = client(&sim);
    let key = IdempotencyKey::new("pi-create-1").expect("key");
    let create = CreatePaymentIntent::new(100, Currency::USD);
    let a = create
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&client)
        .await
        .expect("a");
    let b = create
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&client)
        .await
        .expect("b");
    assert_eq!(a.id, b.id);
    // The same key on GETs (clients send one automatically) is not honoured.
    let get = RetrievePaymentIntent::new(a.id.clone());
    get.customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&client)
        .await
        .expect("get");
    get.customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(&client)
        .await
        .expect("get again");
}

#[tokio::test]
async fn a_trailing_question_mark_and_expand_are_accepted() {
    let sim = sim().await;
    let (_, intent) = call(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "100"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
        ],
    )
    .await;
    let url = format!(
        "{}/v1/payment_intents/{}?",
        sim.base_url(),
        intent["id"].as_str().expect("id")
    );
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    let expanded: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{url}expand[]=latest_charge&expand[]=payment_method"
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(expanded["latest_charge"]["object"], "charge");
    assert_eq!(expanded["payment_method"]["object"], "payment_method");
    let (status, body) = call(&sim, "GET", "/v1/nothing_here", &[]).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (404, Some("invalid_request_error"))
    );
}

#[tokio::test]
async fn injected_failures_reject_requests_before_they_run() {
    let sim = sim().await;
    sim.faults().scope("/v1/customers").fail_next(2);
    let (s1, body) = call(&sim, "POST", "/v1/customers", &[]).await;
    let (s2, _) = call(&sim, "POST", "/v1/customers", &[]).await;
    let (s3, _) = call(&sim, "POST", "/v1/customers", &[]).await;
    assert_eq!((s1, s2, s3), (500, 500, 200));
    assert_eq!(body["error"]["type"], "api_error");
    assert_eq!(sim.events().len(), 1, "failed requests changed nothing");
    assert_eq!(sim.faults().injected(), 2);
    let (status, _) = call(&sim, "GET", "/v1/events", &[]).await;
    assert_eq!(status, 200, "other paths were not affected");

    let (status, _) = call(&sim, "POST", "/v1/customers", &[]).await;
    assert_eq!(status, 200);
    reqwest::Client::new()
        .post(format!("{}/test/faults", sim.base_url()))
        .form(&[("action", "fail_next"), ("count", "1"), ("status", "503")])
        .send()
        .await
        .expect("sent");
    let (status, _) = call(&sim, "GET", "/v1/events", &[]).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn an_injected_delay_makes_the_client_time_out_after_the_change_happened() {
    let sim = sim().await;
    sim.faults().delay_next(1, Duration::from_millis(600));
    let impatient = stripe::ClientBuilder::new(KEY)
        .url(sim.base_url())
        .timeout(Duration::from_millis(150))
        .build()
        .expect("client");
    let key = IdempotencyKey::new("slow-1").expect("key");
    let create = CreateCustomer::new().email("slow@example.com");
    let result = create
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&impatient)
        .await;
    assert!(
        matches!(result, Err(stripe::StripeError::Timeout)),
        "{result:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        sim.events().len(),
        1,
        "the request ran although the client gave up"
    );
    let retried = create
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(&impatient)
        .await
        .expect("replayed");
    assert_eq!(
        retried.id.as_str(),
        sim.events()[0]["data"]["object"]["id"]
            .as_str()
            .expect("id")
    );
}
