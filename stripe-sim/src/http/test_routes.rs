//! `/test/*`: what a browser or a test does outside Stripe's API. No secret key (the browser
//! calls these); the 3DS endpoint checks the PaymentIntent's `client_secret` instead.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use crate::config::WebhookSecret;
use crate::error::ApiError;
use crate::params::Params;
use crate::resources::dispute_lifecycle::{self, Opening};
use crate::resources::{confirmation, refunds};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/payment_intents/{id}/authenticate",
            get(challenge_page).post(authenticate),
        )
        .route("/charges/{id}/dispute", post(open_dispute))
        .route("/disputes/{id}/close", post(close_dispute))
        .route("/disputes/{id}/escalate", post(escalate_dispute))
        .route("/refunds/{id}/fail", post(fail_refund))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/webhook_endpoints", post(add_webhook_endpoint))
        .route("/webhook_secrets", post(set_webhook_secrets))
        .route("/delivery_stats", get(delivery_stats))
}

/// `outcome=succeed|fail` and `client_secret=…`; with `return_url`, answers with the redirect
/// Stripe's hosted page would make, else with the PaymentIntent.
async fn authenticate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let succeed = match params.str("outcome") {
        Some("succeed" | "success" | "succeeded" | "complete") => true,
        Some("fail" | "failure" | "failed") => false,
        _ => {
            return ApiError::invalid_param("outcome", "outcome must be `succeed` or `fail`.")
                .into_response();
        }
    };
    let secret = match params.required_str("client_secret") {
        Ok(secret) => secret.to_owned(),
        Err(error) => return error.into_response(),
    };
    let result = state.with_store_owning(&id, |store| {
        confirmation::authenticate(store, &id, succeed, Some(&secret))
    });
    let intent = match result {
        Ok(intent) => intent,
        Err(error) => return error.into_response(),
    };
    match params.str("return_url") {
        Some(return_url) => {
            let separator = if return_url.contains('?') { '&' } else { '?' };
            let status = if intent["status"] == "requires_payment_method" {
                "failed"
            } else {
                "succeeded"
            };
            let target = format!(
                "{return_url}{separator}payment_intent={id}&payment_intent_client_secret={secret}&redirect_status={status}"
            );
            Redirect::to(&target).into_response()
        }
        None => Json(intent).into_response(),
    }
}

/// The page a `redirect_to_url` next action points at: two buttons, like Stripe's test page.
async fn challenge_page(Path(id): Path<String>, params: Params) -> Response {
    let attr = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    let secret = attr(params.str("client_secret").unwrap_or_default());
    let return_url = attr(params.str("return_url").unwrap_or_default());
    let id = attr(&id);
    let form = |outcome: &str, label: &str| {
        format!(
            r#"<form method="post" action="/test/payment_intents/{id}/authenticate">
<input type="hidden" name="client_secret" value="{secret}"><input type="hidden" name="return_url" value="{return_url}">
<input type="hidden" name="outcome" value="{outcome}"><button type="submit">{label}</button></form>"#
        )
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>3D Secure 2 test page</title></head><body>\
         <h1>3D Secure 2 test page</h1><p>PaymentIntent {id}</p>{}{}</body></html>",
        form("succeed", "Complete authentication"),
        form("fail", "Fail authentication"),
    ))
    .into_response()
}

/// `inquiry=true` for an inquiry, `amount` (default: the captured amount), `reason`.
async fn open_dispute(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let opening = Opening::from_params(&params)?;
    state
        .with_store_owning(&id, |store| dispute_lifecycle::open(store, &id, &opening))
        .map(Json)
}

/// The bank decides: `outcome=won|lost`.
async fn close_dispute(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let won = match params.required_str("outcome")? {
        "won" => true,
        "lost" => false,
        _ => {
            return Err(ApiError::invalid_param(
                "outcome",
                "outcome must be `won` or `lost`.",
            ));
        }
    };
    state
        .with_store_owning(&id, |store| dispute_lifecycle::decide(store, &id, won))
        .map(Json)
}

async fn escalate_dispute(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .with_store_owning(&id, |store| dispute_lifecycle::escalate(store, &id))
        .map(Json)
}

/// The refund fails after the fact: `failure_reason` (default `expired_or_canceled_card`).
async fn fail_refund(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let reason = params
        .str("failure_reason")
        .unwrap_or("expired_or_canceled_card")
        .to_owned();
    state
        .with_store_owning(&id, |store| refunds::fail(store, &id, &reason))
        .map(Json)
}

/// `action=fail_next|fail_rate|delay_next|delay_all`, with `count`, `status`, `rate`,
/// `delay_ms`, and an optional `path_prefix`.
async fn add_fault(State(state): State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    let faults = match params.str("path_prefix") {
        Some(prefix) => state.0.faults.scope(prefix),
        None => state.0.faults.clone(),
    };
    let count = u32::try_from(params.i64("count")?.unwrap_or(1))
        .map_err(|_| ApiError::invalid_param("count", "count must be positive."))?;
    let delay =
        Duration::from_millis(u64::try_from(params.i64("delay_ms")?.unwrap_or(0)).unwrap_or(0));
    match params.required_str("action")? {
        "fail_next" => {
            let status = params.i64("status")?.unwrap_or(500);
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| {
                    ApiError::invalid_param("status", "status must be a 4xx or 5xx code.")
                })?;
            faults.fail_next_with_status(count, status);
        }
        "fail_rate" => faults.fail_rate(
            params
                .f64("rate")?
                .ok_or_else(|| ApiError::missing_param("rate"))?,
        ),
        "delay_next" => faults.delay_next(count, delay),
        "delay_all" => faults.delay_all(delay),
        "delay_rate" => faults.delay_rate(
            params
                .f64("rate")?
                .ok_or_else(|| ApiError::missing_param("rate"))?,
            delay,
        ),
        other => {
            return Err(ApiError::invalid_param(
                "action",
                format!("Unknown action: {other}"),
            ));
        }
    }
    Ok(Json(json!({"ok": true})))
}

async fn clear_faults(State(state): State<AppState>) -> Json<Value> {
    state.0.faults.clear();
    Json(json!({"ok": true}))
}

async fn add_webhook_endpoint(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let url = params.required_str("url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::invalid_param(
            "url",
            "url must start with http:// or https://",
        ));
    }
    state.0.webhooks.add_endpoint(url.to_owned());
    Ok(Json(json!({"endpoints": state.0.webhooks.endpoints()})))
}

/// `secrets[]=whsec_…`: replaces the active signing secrets (rotation).
async fn set_webhook_secrets(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let secrets = params.str_list("secrets");
    if secrets.is_empty() {
        return Err(ApiError::missing_param("secrets"));
    }
    state
        .0
        .webhooks
        .set_secrets(secrets.into_iter().map(WebhookSecret::new).collect());
    Ok(Json(json!({"ok": true})))
}

async fn delivery_stats(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.0.webhooks.stats()))
}
