//! Each webhook is one `webhook` span at a real OTLP/gRPC receiver: its Stripe event,
//! the transaction it names, its outcome and status, in the caller's W3C trace; and
//! neither an endpoint secret nor the signature header is anywhere on it.
//!
//! The subscriber is not installed globally: it is the default on the test's own
//! runtime threads only, so the other tests in this binary are unaffected.

use std::future::Future;

use anyhow::Context as _;
use payments_telemetry::{
    OtlpProtocol,
    testing::{self, Span, attribute, hex_id},
};
use webhook_ingestor::signature::signature_header;

use crate::{
    events::{Pi, event_id},
    helpers::{Result, SECRET, TestApp, now},
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";
/// A secret the ingestor does not hold: what it signs is refused.
const OTHER_SECRET: &str = "whsec_someone_else";

#[test]
fn a_stored_webhook_is_one_span_with_its_event_and_transaction_in_the_callers_trace() -> Result {
    let (sent, spans) = traced(deliver(SECRET))?;
    assert_eq!(sent.status, 200);
    let span = webhook_span(&spans, |s| {
        attribute(s, "stripe_event_id").as_deref() == Some(&sent.event_id)
    })?;
    assert_eq!(hex_id(&span.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(hex_id(&span.parent_span_id), CALLER_SPAN_ID);
    let field = |key| attribute(span, key);
    assert_eq!(
        field("stripe_event_type").as_deref(),
        Some("payment_intent.succeeded")
    );
    assert_eq!(field("transaction_id"), Some(sent.transaction_id.clone()));
    assert_eq!(field("outcome").as_deref(), Some("stored"));
    assert_eq!(field("http.response.status_code").as_deref(), Some("200"));
    assert_no_secret(&spans, &sent);
    Ok(())
}

#[test]
fn a_refused_webhook_span_has_its_reason_and_no_event_id() -> Result {
    let (sent, spans) = traced(deliver(OTHER_SECRET))?;
    assert_eq!(sent.status, 400);
    let span = webhook_span(&spans, |s| {
        attribute(s, "outcome").as_deref() == Some("no_matching_signature")
    })?;
    assert_eq!(
        attribute(span, "http.response.status_code").as_deref(),
        Some("400")
    );
    // Nothing from an unverified body is recorded.
    assert_eq!(attribute(span, "stripe_event_id"), None);
    assert_eq!(attribute(span, "transaction_id"), None);
    assert_no_secret(&spans, &sent);
    Ok(())
}

/// Runs `work` on a runtime traced by a subscriber that exports to a real OTLP
/// receiver, then flushes; returns what `work` returned and every span received.
fn traced<T>(work: impl Future<Output = Result<T>>) -> Result<(T, Vec<Span>)> {
    let (output, spans) = testing::traced(OtlpProtocol::Grpc, "webhook-ingestor-test", work)?;
    Ok((output?, spans))
}

/// What one delivery sent and got.
struct Sent {
    event_id: String,
    transaction_id: String,
    signature: String,
    status: u16,
}

/// Delivers a PaymentIntent's success for a fresh transaction, signed with `secret`,
/// in the caller's trace; the ingestor is stopped afterwards, so its spans have ended.
async fn deliver(secret: &str) -> Result<Sent> {
    let app = TestApp::start().await?;
    let tx = app.payment("tracey", 1_200, "pi_traced").await?;
    let event = Pi {
        id: "pi_traced",
        tx: Some(tx.id),
        amount: 1_200,
        currency: "usd",
    }
    .succeeded();
    let body = serde_json::to_vec(&event)?;
    let signature = signature_header(secret, now(), &body);
    let response = reqwest::Client::new()
        .post(app.url("/v1/stripe-webhook"))
        .header("content-type", "application/json")
        .header("stripe-signature", &signature)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .body(body)
        .send()
        .await?;
    let TestApp { app, db } = app;
    app.stop().await?;
    drop(db);
    Ok(Sent {
        event_id: event_id(&event),
        transaction_id: tx.id.to_string(),
        signature,
        status: response.status().as_u16(),
    })
}

fn webhook_span(spans: &[Span], which: impl Fn(&Span) -> bool) -> Result<&Span> {
    spans
        .iter()
        .find(|s| s.name == "webhook" && which(s))
        .with_context(|| format!("no such webhook span among {} exported", spans.len()))
}

/// No exported span, attribute or event carries a secret or the signature.
fn assert_no_secret(spans: &[Span], sent: &Sent) {
    let v1 = sent
        .signature
        .split("v1=")
        .nth(1)
        .unwrap_or(&sent.signature);
    for span in spans {
        let exported = format!("{span:?}");
        for secret in [SECRET, OTHER_SECRET, v1] {
            assert!(!exported.contains(secret), "exported: {exported}");
        }
    }
}
