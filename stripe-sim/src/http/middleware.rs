//! What every `/v1` request goes through, in order: a request id; the secret key check (401);
//! injected failures; the idempotency key (replay, conflict, or run and store); the handler;
//! injected delays; Stripe's response headers.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::AppState;
use crate::error::ApiError;
use crate::idempotency::{Stored, storable};
use crate::params::Params;
use crate::store::{API_VERSION, Mode, RequestCtx};

/// Bodies larger than this are refused (Stripe's own limit is far lower for form posts).
const MAX_BODY: usize = 4 * 1024 * 1024;

pub(super) async fn api(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = format!("req_{}", &uuid::Uuid::new_v4().simple().to_string()[..14]);
    let idempotency_key = idempotency_key(request.method(), request.headers());
    let mut response = match check_key(request.headers(), state.0.livemode) {
        Err(error) => error.into_response(),
        Ok(mode) => {
            let decision = state.0.faults.decide(request.uri().path());
            if let Some(status) = decision.fail {
                ApiError::injected(status).into_response()
            } else {
                let ctx = RequestCtx {
                    request_id: Some(request_id.clone()),
                    idempotency_key: idempotency_key.clone(),
                    mode,
                };
                request.extensions_mut().insert(ctx);
                let response = match &idempotency_key {
                    // Keys are scoped to the account, and each mode is one.
                    Some(key) => {
                        let slot = format!("{mode:?}:{key}");
                        run_idempotent(&state, &slot, request, next).await
                    }
                    None => next.run(request).await,
                };
                if !decision.delay.is_zero() {
                    tokio::time::sleep(decision.delay).await;
                }
                response
            }
        }
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", value);
    }
    headers.insert("stripe-version", HeaderValue::from_static(API_VERSION));
    if let Some(value) = idempotency_key.and_then(|key| HeaderValue::from_str(&key).ok()) {
        headers.insert("idempotency-key", value);
    }
    response
}

/// Keys are honoured on POST and DELETE only: clients may send one on every GET.
fn idempotency_key(method: &Method, headers: &HeaderMap) -> Option<String> {
    if method != Method::POST && method != Method::DELETE {
        return None;
    }
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

/// Any `sk_test_…` (or restricted `rk_test_…`) key, as a Bearer token or Basic user name: test
/// mode. `sk_live_…`/`rk_live_…`: live mode, only when `livemode` is enabled.
fn check_key(headers: &HeaderMap, livemode: bool) -> Result<Mode, ApiError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        ));
    };
    let key = if let Some(token) = value.strip_prefix("Bearer ") {
        token.trim().to_owned()
    } else if let Some(encoded) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&decoded).into_owned();
        text.split(':').next().unwrap_or_default().to_owned()
    } else {
        String::new()
    };
    let live = key.starts_with("sk_live_") || key.starts_with("rk_live_");
    if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
        Ok(Mode::Test)
    } else if live && livemode {
        Ok(Mode::Live)
    } else if live {
        Err(ApiError::unauthorized(
            "This is a local test double and live mode is off: use a test mode key (sk_test_…), or start stripe-sim with livemode enabled (--livemode true) to get a live-mode account.",
        ))
    } else {
        let shown: String = key.chars().take(12).collect();
        Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {shown}…"
        )))
    }
}

async fn run_idempotent(state: &AppState, key: &str, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return ApiError::invalid("The request body is too large.").into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = match Params::from_parts(parts.uri.query(), content_type, &bytes) {
        Ok(params) => params.0,
        Err(error) => return error.into_response(),
    };
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let slot = state.0.idempotency.slot(key);
    let mut stored = slot.lock().await;
    if let Some(previous) = stored.as_ref() {
        return match previous.matches(&method, &path, &params) {
            Ok(()) => replay(previous),
            Err(message) => ApiError::idempotency(message).into_response(),
        };
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !storable(response.status()) {
        return response;
    }
    let (response_parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    *stored = Some(Stored {
        method,
        path,
        params,
        status: response_parts.status,
        body: body.clone(),
    });
    Response::from_parts(response_parts, Body::from(body))
}

fn replay(stored: &Stored) -> Response {
    let mut response = (stored.status, Bytes::clone(&stored.body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("valid header"),
        );
        headers
    }

    #[test]
    fn test_keys_pass_as_bearer_or_basic() {
        assert!(check_key(&headers("Bearer sk_test_123"), false).is_ok());
        let basic = base64::engine::general_purpose::STANDARD.encode("sk_test_123:");
        assert!(check_key(&headers(&format!("Basic {basic}")), false).is_ok());
    }

    #[test]
    fn missing_live_or_malformed_keys_are_refused() {
        assert!(check_key(&HeaderMap::new(), false).is_err());
        assert!(check_key(&headers("Bearer sk_live_123"), false).is_err());
        assert!(check_key(&headers("Bearer pk_test_123"), false).is_err());
        assert!(check_key(&headers("sk_test_123"), false).is_err());
    }

    #[test]
    fn with_livemode_on_a_key_chooses_its_mode() {
        let mode = |key: &str| check_key(&headers(&format!("Bearer {key}")), true).ok();
        assert_eq!(mode("sk_test_123"), Some(Mode::Test));
        assert_eq!(mode("sk_live_123"), Some(Mode::Live));
        assert_eq!(mode("rk_live_123"), Some(Mode::Live));
        assert_eq!(mode("pk_live_123"), None);
    }

    #[test]
    fn idempotency_keys_are_ignored_on_get() {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_static("k1"));
        assert_eq!(idempotency_key(&Method::GET, &headers), None);
        assert_eq!(
            idempotency_key(&Method::POST, &headers).as_deref(),
            Some("k1")
        );
    }
}
