//! `POST /v1/stripe-webhook`: verify the raw body, parse the envelope, store and apply.
//!
//! Each delivery is one `webhook` span, a child of the sender's W3C trace context when
//! it sends one (Stripe does not; `stripe listen` or a proxy may). Its event id and
//! type, the transaction its metadata names, the outcome and the status are recorded
//! as they become known. No header value or body byte is put on it.

use std::{
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use payments_core::{StripeEvent, store::EventSource};
use tracing::{Instrument as _, Span, field::Empty};

use super::{AppState, error::WebhookError};
use crate::{
    inbox::{self, Received},
    signature::{self, SIGNATURE_HEADER, Verifier},
};

/// What a stored (or already stored) event is acknowledged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Stored,
    Duplicate,
}

impl Ack {
    fn as_str(self) -> &'static str {
        match self {
            Ack::Stored => "stored",
            Ack::Duplicate => "duplicate",
        }
    }
}

impl IntoResponse for Ack {
    fn into_response(self) -> Response {
        (StatusCode::OK, self.as_str()).into_response()
    }
}

pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = tracing::info_span!(
        "webhook",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/v1/stripe-webhook",
        stripe_event_id = Empty,
        stripe_event_type = Empty,
        transaction_id = Empty,
        outcome = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    payments_telemetry::extract_parent(&span, &headers);
    let started = Instant::now();
    async move {
        let result = store_and_apply(&state, &headers, body).await;
        let (status, outcome) = match &result {
            Ok(ack) => (StatusCode::OK, ack.as_str()),
            Err(e) => (e.status(), e.outcome()),
        };
        state.metrics.webhook_answered(outcome, started.elapsed());
        if let Err(e) = &result
            && let Some(reason) = e.rejection_reason()
        {
            state.metrics.webhook_rejected(reason);
        }
        let span = Span::current();
        span.record("outcome", outcome)
            .record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        // Inside the span, so the refusal or failure is logged with the event's ids.
        result.into_response()
    }
    .instrument(span)
    .await
}

async fn store_and_apply(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Ack, WebhookError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => WebhookError::BodyTooLarge,
        _ => WebhookError::UnreadableBody,
    })?;
    let verifier = Verifier {
        secrets: &state.webhook_secrets,
        tolerance: state.signature_tolerance,
    };
    let header = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    signature::verify(verifier, header, &body, unix_now())?;
    state.metrics.webhook_verified();

    let event = StripeEvent::parse(&body)?;
    let span = Span::current();
    span.record("stripe_event_id", event.id.as_str())
        .record("stripe_event_type", event.event_type.as_str());
    if let Some(id) = event.target().transaction_id {
        span.record("transaction_id", tracing::field::display(id));
    }
    let received = match &state.group_commit {
        Some(group) => group.receive(event).await?,
        None => {
            inbox::receive_cached(
                &state.connections,
                &event,
                EventSource::Webhook,
                &state.rules,
                &state.doorbell,
            )
            .await?
        }
    };
    match received {
        Received::Duplicate => {
            state.metrics.webhook_duplicate();
            Ok(Ack::Duplicate)
        }
        Received::Stored(report) => {
            // The transaction the inbox matched (by metadata, PaymentIntent, invoice or
            // charge), which may not be the one the metadata named.
            if let Some(id) = report.transaction_id {
                span.record("transaction_id", tracing::field::display(id));
            }
            report.count(&state.metrics);
            tracing::info!(state = report.state.as_str(), "event stored");
            Ok(Ack::Stored)
        }
    }
}

fn unix_now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}
