//! Helpers shared by the integration tests: a simulator, an async-stripe client pointed at it,
//! raw HTTP calls, and a webhook receiver that verifies signatures with its own HMAC.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stripe_sim::StripeSim;

pub const KEY: &str = "sk_test_integration";

pub async fn sim() -> StripeSim {
    StripeSim::builder()
        .seed(42)
        .webhook_secret("whsec_test")
        .start()
        .await
        .expect("sim starts")
}

pub fn client(sim: &StripeSim) -> stripe::Client {
    stripe::ClientBuilder::new(KEY)
        .url(sim.base_url())
        .build()
        .expect("client builds")
}

/// A raw call: `(status, json body)`. `form` is sent form-encoded.
pub async fn call(
    sim: &StripeSim,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    call_with(sim, method, path, form, Some(KEY), None).await.0
}

pub async fn call_with(
    sim: &StripeSim,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
    key: Option<&str>,
    idempotency_key: Option<&str>,
) -> ((u16, Value), HeaderMap) {
    let url = format!("{}{path}", sim.base_url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = reqwest::Client::new().request(method.clone(), url);
    if method == reqwest::Method::GET {
        request = request.query(form);
    } else {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("idempotency-key", idempotency_key);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    ((status, json), headers)
}

/// HMAC-SHA256 written out from RFC 2104, independent of the `hmac` crate the simulator uses.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block_key.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block_key.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

/// Whether `header` (`t=…,v1=…,…`) carries a valid `v1` for `secret` over `body`.
pub fn signed_by(header: &str, secret: &str, body: &[u8]) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = Some(t.to_owned()),
            Some(("v1", v)) => signatures.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let expected = hmac_sha256(secret.as_bytes(), &message);
    signatures.contains(&expected)
}

/// One webhook request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub user_agent: String,
    pub content_type: String,
    pub body: Bytes,
    pub status: u16,
}

impl Received {
    pub fn event(&self) -> Value {
        serde_json::from_slice(&self.body).expect("event json")
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// The first `fail_first` requests get a 500.
    fail_first: usize,
}

/// An axum server that records every webhook request.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<ReceiverState>>,
    pub url: String,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            received: Vec::new(),
            fail_first,
        }));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Receiver { state, url }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    /// Event ids of the requests answered with 2xx, in arrival order.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.status < 300)
            .map(|r| r.event()["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until `predicate` holds for what was received, or panics after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, predicate: impl Fn(&[Received]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if predicate(&self.received()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out; received {:?}",
                self.delivered_ids()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut state = state.lock().expect("lock");
    let status = if state.received.len() < state.fail_first {
        500
    } else {
        200
    };
    state.received.push(Received {
        signature: header("stripe-signature"),
        user_agent: header("user-agent"),
        content_type: header("content-type"),
        body,
        status,
    });
    StatusCode::from_u16(status).expect("status")
}

/// The `error` object of a 402/4xx from async-stripe.
pub fn stripe_error(
    result: Result<impl std::fmt::Debug, stripe::StripeError>,
) -> (Box<stripe::ApiErrors>, u16) {
    match result {
        Err(stripe::StripeError::Stripe(error, status)) => (error, status),
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}
