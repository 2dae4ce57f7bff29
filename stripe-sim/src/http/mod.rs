//! The HTTP surface: `/v1/*` (Stripe's API, behind the key check, fault injection and
//! idempotency in `middleware.rs`) and `/test/*` (helpers for tests and the browser demo: no key,
//! permissive CORS).

mod middleware;
mod test_routes;
mod v1;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::faults::Faults;
use crate::idempotency::IdempotencyKeys;
use crate::store::{RequestCtx, Store};
use crate::webhooks::WebhookState;

/// Everything the handlers share.
pub(crate) struct Shared {
    store: Mutex<Store>,
    pub idempotency: IdempotencyKeys,
    pub faults: Faults,
    pub webhooks: Arc<WebhookState>,
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Shared>);

impl AppState {
    pub fn new(store: Store, faults: Faults, webhooks: Arc<WebhookState>) -> Self {
        Self(Arc::new(Shared {
            store: Mutex::new(store),
            idempotency: IdempotencyKeys::default(),
            faults,
            webhooks,
        }))
    }

    /// Runs one synchronous operation on the store, attributing its events to `ctx`.
    /// The lock is never held across an `.await`.
    pub fn with_store<T>(&self, ctx: RequestCtx, op: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self
            .0
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        store.request = ctx;
        let result = op(&mut store);
        store.request = RequestCtx::default();
        result
    }
}

pub(crate) fn router(state: AppState) -> Router {
    // `/v1` routes carry their full paths (no `nest`), so the middleware sees the real path for
    // fault scopes and idempotency.
    let v1 = v1::routes().layer(from_fn_with_state(state.clone(), middleware::api));
    let test = test_routes::routes().layer(from_fn(cors));
    Router::new()
        .merge(v1)
        .nest("/test", test)
        .route("/health", axum::routing::get(|| async { "ok" }))
        .fallback(|method: Method, uri: axum::http::Uri| async move {
            ApiError::unknown_route(method.as_str(), uri.path())
        })
        .with_state(state)
}

/// Permissive CORS for `/test/*`, which the browser demo calls from another origin.
async fn cors(request: Request, next: Next) -> Response {
    let requested_headers = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        requested_headers.unwrap_or_else(|| HeaderValue::from_static("content-type")),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}
