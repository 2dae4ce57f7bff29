//! Every refusal answers 4xx with its reason, stores nothing and is counted.

use serde_json::json;
use webhook_ingestor::signature::{sign, signature_header};

use crate::{
    events::{Pi, event_id},
    helpers::{Result, SECRET, TestApp, now},
};

fn body() -> Vec<u8> {
    let pi = Pi {
        id: "pi_reject",
        tx: None,
        amount: 500,
        currency: "usd",
    };
    serde_json::to_vec(&pi.succeeded()).unwrap_or_default()
}

/// Posts, expects `status` and `reason`, and checks that nothing was stored and the
/// refusal was counted under `metric`.
async fn refused(
    app: &TestApp,
    body: Vec<u8>,
    header: Option<String>,
    (status, reason, metric): (u16, &str, &str),
) -> Result {
    let (got, text) = app.post_raw(body, header).await?;
    assert_eq!((got, text.as_str()), (status, reason));
    assert_eq!(app.count("SELECT count(*) FROM stripe_events").await?, 0);
    assert_eq!(app.metrics.webhooks_rejected(metric), 1);
    let (_, metrics) = app.get("/metrics").await?;
    let line = format!("payments_webhooks_rejected_total{{reason=\"{metric}\"}} 1");
    assert!(metrics.contains(&line), "{metrics}");
    // Timed under the same reason.
    let timed = format!("payments_webhook_duration_seconds_count{{outcome=\"{metric}\"}} 1");
    assert!(metrics.contains(&timed), "{metrics}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_signature_is_refused() -> Result {
    let app = TestApp::start().await?;
    let expected = (400, "missing signature", "missing_signature");
    refused(&app, body(), None, expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_signature_header_is_refused() -> Result {
    let app = TestApp::start().await?;
    let sig = sign(SECRET, now(), &body());
    let expected = (400, "malformed signature header", "malformed_header");
    refused(&app, body(), Some(format!("v1={sig}")), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_without_v1_is_refused() -> Result {
    let app = TestApp::start().await?;
    let sig = sign(SECRET, now(), &body());
    let header = format!("t={},v0={sig}", now());
    let expected = (400, "malformed signature header", "malformed_header");
    refused(&app, body(), Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_under_a_wrong_secret_is_refused() -> Result {
    let app = TestApp::start().await?;
    let header = signature_header("whsec_somebody_else", now(), &body());
    let expected = (400, "no matching signature", "no_matching_signature");
    refused(&app, body(), Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_body_is_refused() -> Result {
    let app = TestApp::start().await?;
    let mut tampered = body();
    let header = signature_header(SECRET, now(), &tampered);
    tampered.extend_from_slice(b" ");
    let expected = (400, "no matching signature", "no_matching_signature");
    refused(&app, tampered, Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_timestamp_is_refused() -> Result {
    let app = TestApp::start().await?;
    let body = body();
    let header = signature_header(SECRET, now() - 301, &body);
    let expected = (
        400,
        "timestamp outside tolerance",
        "timestamp_outside_tolerance",
    );
    refused(&app, body, Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_timestamp_is_refused() -> Result {
    let app = TestApp::start().await?;
    let body = body();
    let header = signature_header(SECRET, now() + 3_600, &body);
    let expected = (
        400,
        "timestamp outside tolerance",
        "timestamp_outside_tolerance",
    );
    refused(&app, body, Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() -> Result {
    let app = TestApp::start_with(|c| c.body_limit = 1_000).await?;
    let mut big = serde_json::to_value(json!({"padding": "x".repeat(2_000)}))?;
    big["id"] = json!("evt_big");
    let body = serde_json::to_vec(&big)?;
    let header = signature_header(SECRET, now(), &body);
    let expected = (413, "body too large", "body_too_large");
    refused(&app, body, Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_body_that_is_not_json_is_400() -> Result {
    let app = TestApp::start().await?;
    let body = b"id=evt_1&type=payment_intent.succeeded".to_vec();
    let header = signature_header(SECRET, now(), &body);
    let (status, text) = app.post_raw(body, Some(header)).await?;
    assert_eq!(status, 400);
    assert!(text.starts_with("body is not JSON"), "{text}");
    assert_eq!(app.count("SELECT count(*) FROM stripe_events").await?, 0);
    assert_eq!(app.metrics.webhooks_rejected("not_an_event"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_event_without_an_id_is_400() -> Result {
    let app = TestApp::start().await?;
    let mut event: serde_json::Value = serde_json::from_slice(&body())?;
    if let Some(o) = event.as_object_mut() {
        o.remove("id");
    }
    let body = serde_json::to_vec(&event)?;
    let header = signature_header(SECRET, now(), &body);
    let expected = (400, "not a Stripe event: no id", "not_an_event");
    refused(&app, body, Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_event_without_a_type_is_400() -> Result {
    let app = TestApp::start().await?;
    let mut event: serde_json::Value = serde_json::from_slice(&body())?;
    if let Some(o) = event.as_object_mut() {
        o.remove("type");
    }
    let body = serde_json::to_vec(&event)?;
    let header = signature_header(SECRET, now(), &body);
    let expected = (400, "not a Stripe event: no type", "not_an_event");
    refused(&app, body, Some(header), expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_secret_is_accepted_during_rotation() -> Result {
    const NEW: &str = "whsec_the_new_secret";
    let app = TestApp::start_with(|c| c.webhook_secrets.push(NEW.into())).await?;
    let pi = Pi {
        id: "pi_rotation",
        tx: None,
        amount: 500,
        currency: "usd",
    };
    let (old_event, new_event) = (pi.processing(), pi.canceled());
    for (secret, event) in [(SECRET, &old_event), (NEW, &new_event)] {
        let body = serde_json::to_vec(event)?;
        let header = signature_header(secret, now(), &body);
        assert_eq!(
            app.post_raw(body, Some(header)).await?,
            (200, "stored".into())
        );
        assert!(app.event_row(&event_id(event)).await?.is_some());
    }
    assert_eq!(app.metrics.webhooks_verified(), 2);
    Ok(())
}
