use stripe_core::PaymentIntentStatus;
use stripe_core::payment_intent::{CreatePaymentIntent, RetrievePaymentIntent};
use stripe_types::Currency;

use crate::support::{client, sim, stripe_error};

async fn authenticate(
    sim: &stripe_sim::StripeSim,
    id: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    // No secret key: the browser calls this endpoint.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/test/payment_intents/{id}/authenticate",
            sim.base_url()
        ))
        .form(form)
        .send()
        .await
        .expect("sent");
    (
        response.status().as_u16(),
        response.json().await.expect("json"),
    )
}

#[tokio::test]
async fn a_3ds_card_requires_action_and_succeeds_once_authenticated() {
    let sim = sim().await;
    let client = client(&sim);
    let intent = CreatePaymentIntent::new(4200, Currency::USD)
        .payment_method("pm_card_threeDSecure2Required")
        .confirm(true)
        .send(&client)
        .await
        .expect("created");
    assert_eq!(intent.status, PaymentIntentStatus::RequiresAction);
    let next_action = intent.next_action.expect("next_action");
    assert_eq!(next_action.type_, "use_stripe_sdk");
    assert!(next_action.use_stripe_sdk.is_some());
    let secret = intent.client_secret.expect("secret");

    let (status, body) = authenticate(
        &sim,
        intent.id.as_str(),
        &[("outcome", "succeed"), ("client_secret", "wrong")],
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = authenticate(
        &sim,
        intent.id.as_str(),
        &[("outcome", "succeed"), ("client_secret", &secret)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded");

    let fetched = RetrievePaymentIntent::new(intent.id.clone())
        .send(&client)
        .await
        .expect("retrieved");
    assert_eq!(fetched.status, PaymentIntentStatus::Succeeded);
    assert!(fetched.next_action.is_none());
    let types: Vec<String> = sim
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "payment_intent.created",
            "payment_intent.requires_action",
            "charge.succeeded",
            "payment_intent.succeeded"
        ]
    );
}

#[tokio::test]
async fn a_failed_challenge_returns_the_intent_to_requires_payment_method() {
    let sim = sim().await;
    let client = client(&sim);
    let intent = CreatePaymentIntent::new(4200, Currency::USD)
        .payment_method("pm_card_threeDSecure2Required")
        .confirm(true)
        .send(&client)
        .await
        .expect("created");
    let secret = intent.client_secret.expect("secret");
    let (status, body) = authenticate(
        &sim,
        intent.id.as_str(),
        &[("outcome", "fail"), ("client_secret", &secret)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let fetched = RetrievePaymentIntent::new(intent.id.clone())
        .send(&client)
        .await
        .expect("retrieved");
    assert_eq!(fetched.status, PaymentIntentStatus::RequiresPaymentMethod);
    let error = fetched.last_payment_error.expect("last error");
    assert_eq!(
        error.code.expect("code").as_str(),
        "payment_intent_authentication_failure"
    );
    assert!(
        sim.events()
            .iter()
            .any(|e| e["type"] == "payment_intent.payment_failed")
    );
}

#[tokio::test]
async fn manual_capture_after_3ds_waits_for_capture_and_the_rust_helper_works() {
    let sim = sim().await;
    let client = client(&sim);
    let intent = CreatePaymentIntent::new(900, Currency::USD)
        .payment_method("pm_card_threeDSecure2Required")
        .capture_method(stripe_core::PaymentIntentCaptureMethod::Manual)
        .confirm(true)
        .send(&client)
        .await
        .expect("created");
    let after = sim
        .authenticate_3ds(intent.id.as_str(), true)
        .expect("authenticated");
    assert_eq!(after["status"], "requires_capture");
    assert!(
        sim.authenticate_3ds(intent.id.as_str(), true).is_err(),
        "only once"
    );
}

#[tokio::test]
async fn an_off_session_3ds_payment_is_declined_with_authentication_required() {
    let sim = sim().await;
    let client = client(&sim);
    let (error, status) = stripe_error(
        CreatePaymentIntent::new(900, Currency::USD)
            .payment_method("pm_card_threeDSecure2Required")
            .off_session(stripe_core::payment_intent::CreatePaymentIntentOffSession::Bool(true))
            .confirm(true)
            .send(&client)
            .await,
    );
    assert_eq!(status, 402);
    assert_eq!(
        error.code.expect("code").as_str(),
        "authentication_required"
    );
}

#[tokio::test]
async fn a_return_url_gives_a_redirect_and_the_test_page_redirects_back() {
    let sim = sim().await;
    let (_, intent) = crate::support::call(
        &sim,
        "POST",
        "/v1/payment_intents",
        &[
            ("amount", "700"),
            ("currency", "usd"),
            ("payment_method", "pm_card_threeDSecure2Required"),
            ("confirm", "true"),
            ("return_url", "https://shop.example/done"),
        ],
    )
    .await;
    assert_eq!(intent["next_action"]["type"], "redirect_to_url");
    let url = intent["next_action"]["redirect_to_url"]["url"]
        .as_str()
        .expect("url");
    let page = reqwest::get(url)
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Complete authentication"));
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = no_redirect
        .post(format!(
            "{}/test/payment_intents/{}/authenticate",
            sim.base_url(),
            intent["id"].as_str().expect("id")
        ))
        .form(&[
            ("outcome", "succeed"),
            (
                "client_secret",
                intent["client_secret"].as_str().expect("secret"),
            ),
            ("return_url", "https://shop.example/done"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().expect("location");
    assert!(location.starts_with("https://shop.example/done?payment_intent=pi_"));
    assert!(location.ends_with("redirect_status=succeeded"));
}

#[tokio::test]
async fn the_test_endpoints_answer_cors_preflights() {
    let sim = sim().await;
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/test/payment_intents/pi_x/authenticate", sim.base_url()),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}
