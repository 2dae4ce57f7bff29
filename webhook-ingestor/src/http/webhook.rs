//! `POST /v1/stripe-webhook`: verify the raw body, parse the envelope, store and apply.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use payments_core::{StripeEvent, store::EventSource};
use tracing::Span;

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

impl IntoResponse for Ack {
    fn into_response(self) -> Response {
        let body = match self {
            Ack::Stored => "stored",
            Ack::Duplicate => "duplicate",
        };
        (StatusCode::OK, body).into_response()
    }
}

#[tracing::instrument(skip_all, fields(event_id, event_type))]
pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Ack, WebhookError> {
    let result = store_and_apply(&state, &headers, body).await;
    if let Err(e) = &result
        && let Some(reason) = e.rejection_reason()
    {
        state.metrics.webhook_rejected(reason);
    }
    result
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
    Span::current()
        .record("event_id", event.id.as_str())
        .record("event_type", event.event_type.as_str());
    match inbox::receive(&state.pool, &event, EventSource::Webhook, &state.retry).await? {
        Received::Duplicate => {
            state.metrics.webhook_duplicate();
            Ok(Ack::Duplicate)
        }
        Received::Stored(report) => {
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
