//! The HTTP surface: `/v1/*` (Stripe's API, in `v1.rs`, behind the key check, fault
//! injection and idempotency in `middleware.rs`) and `/test/*` (helpers for tests and the
//! browser demo in `test_routes.rs`: no key, permissive CORS).

mod middleware;
mod test_routes;
mod v1;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::idempotency::IdempotencyKeys;
use crate::store::{Mode, RequestCtx, Store};
use crate::webhooks::WebhookState;

/// Everything the handlers share.
pub(crate) struct Shared {
    /// The test-mode account and the live-mode one.
    stores: [Mutex<Store>; 2],
    /// Whether live-mode keys are accepted.
    pub livemode: bool,
    pub idempotency: IdempotencyKeys,
    pub faults: Faults,
    pub webhooks: Arc<WebhookState>,
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Shared>);

impl AppState {
    pub fn new(
        stores: [Store; 2],
        livemode: bool,
        faults: Faults,
        webhooks: Arc<WebhookState>,
    ) -> Self {
        Self(Arc::new(Shared {
            stores: stores.map(Mutex::new),
            livemode,
            idempotency: IdempotencyKeys::default(),
            faults,
            webhooks,
        }))
    }

    /// Runs one synchronous operation on the account of `ctx.mode`, attributing its events to
    /// `ctx`. The lock is never held across an `.await`.
    pub fn with_store<T>(&self, ctx: RequestCtx, op: impl FnOnce(&mut Store) -> T) -> T {
        let index = match ctx.mode {
            Mode::Test => 0,
            Mode::Live => 1,
        };
        let mut store = self.0.stores[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        store.request = ctx;
        let result = op(&mut store);
        store.request = RequestCtx::default();
        result
    }

    /// `with_store` for an operation that answers JSON: the answer (and the objects an error
    /// carries) as the account shows them.
    pub fn run_json(&self, ctx: RequestCtx, op: impl FnOnce(&mut Store) -> ApiResult) -> ApiResult {
        self.with_store(ctx, |store| {
            let mode = store.mode;
            let result = op(store);
            present(mode, result)
        })
    }

    /// `run_json` on the account that holds `id` (the test account when none does, so the
    /// operation's own 404 answers): for `/test/*` and in-process helpers, which have no key.
    pub fn with_store_owning(
        &self,
        id: &str,
        op: impl FnOnce(&mut Store) -> ApiResult,
    ) -> ApiResult {
        let live = self.with_store(ctx_for(Mode::Live), |store| store.render(id).is_some());
        let mode = if live { Mode::Live } else { Mode::Test };
        self.run_json(ctx_for(mode), op)
    }
}

fn ctx_for(mode: Mode) -> RequestCtx {
    RequestCtx {
        mode,
        ..RequestCtx::default()
    }
}

fn present(mode: Mode, result: ApiResult) -> ApiResult {
    if !mode.is_live() {
        return result;
    }
    match result {
        Ok(value) => Ok(crate::store::present(mode, value)),
        Err(mut error) => {
            for value in error.extra.values_mut() {
                *value = crate::store::present(mode, std::mem::take(value));
            }
            Err(error)
        }
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
