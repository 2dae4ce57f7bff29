//! The HTTP surface: the webhook, the probes, the metrics, and the standard gRPC
//! health service, all on one port (gRPC needs HTTP/2, which the server speaks
//! in clear text next to HTTP/1.1).
//!
//! - this file: the router, `/healthz`, `/readyz` and `/metrics`.
//! - [`webhook`]: `POST /v1/stripe-webhook`, verify, parse, store and apply.
//! - [`error`]: the webhook's errors and the one place they become statuses.

mod error;
mod webhook;

pub use error::{REJECTION_REASONS, WebhookError};

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    routing::{get, post},
};
use payments_core::store::{ConnectionCache, Doorbell};
use secrecy::SecretString;
use sqlx::PgPool;
use tonic_health::server::HealthReporter;

use payments_telemetry::metrics::MetricsRegistry;

use crate::{group_commit::GroupCommit, inbox::Rules, metrics::Metrics};

/// How long `/readyz` waits for `SELECT 1`.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers share.
pub struct AppState {
    pub pool: PgPool,
    /// Where the webhook path takes its connections from.
    pub connections: ConnectionCache,
    /// Where the webhook path's commits ring the watchers' doorbell.
    pub doorbell: Doorbell,
    pub metrics: Arc<Metrics>,
    /// Everything `GET /metrics` shows: this service's metrics, the pool, the process.
    pub registry: Arc<MetricsRegistry>,
    pub webhook_secrets: Vec<SecretString>,
    pub signature_tolerance: Duration,
    pub rules: Rules,
    /// Set when group commit is on: webhooks are committed in groups.
    pub group_commit: Option<GroupCommit>,
}

pub fn router(state: Arc<AppState>, body_limit: usize) -> (Router, HealthReporter) {
    let (health, health_service) = tonic_health::server::health_reporter();
    let grpc = tonic::service::Routes::new(health_service)
        .prepare()
        .into_axum_router();
    let http = Router::new()
        .route(
            "/v1/stripe-webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            payments_telemetry::metrics::route(state.registry.clone()),
        )
        .with_state(state);
    (http.merge(grpc), health)
}

/// The process is up and serving.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers: this instance can store events.
async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(READY_TIMEOUT, ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::error_chain(&e), "not ready: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}
