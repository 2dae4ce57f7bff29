//! A tiny HTTP relay: forwards each request, byte for byte, to the next of its upstreams
//! in turn and remembers what came back. In front of two ingestors it spreads Stripe's
//! webhooks over both (Stripe delivers to one URL); in front of stripe-sim it counts
//! the calls a service makes.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    body::{Bytes, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio_util::sync::CancellationToken;

/// One forwarded request and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub method: String,
    pub path: String,
    /// Index of the upstream it went to.
    pub upstream: usize,
    /// None when the upstream could not be reached (the caller got a 502).
    pub status: Option<u16>,
}

struct Shared {
    upstreams: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
    hops: Mutex<Vec<Hop>>,
}

pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Relay {
    /// Listens on a loopback port and forwards to `upstreams` (`http://host:port`).
    pub async fn start(upstreams: Vec<String>) -> Relay {
        assert!(!upstreams.is_empty(), "a relay needs an upstream");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let shared = Arc::new(Shared {
            upstreams,
            next: AtomicUsize::new(0),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("relay HTTP client"),
            hops: Mutex::new(Vec::new()),
        });
        let stop = CancellationToken::new();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let serving =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                eprintln!("relay stopped: {e}");
            }
        });
        Relay { addr, shared, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request forwarded so far, in the order their answers came back.
    pub fn hops(&self) -> Vec<Hop> {
        self.shared
            .hops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let upstream = shared.next.fetch_add(1, Ordering::Relaxed) % shared.upstreams.len();
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path_and_query}", shared.upstreams[upstream]);
    let outgoing = shared
        .http
        .request(parts.method.clone(), url)
        .headers(without_hop_headers(&parts.headers))
        .body(body);
    let answered = match outgoing.send().await {
        Ok(response) => {
            let status = response.status();
            let headers = without_hop_headers(response.headers());
            let body = response.bytes().await.unwrap_or_else(|_| Bytes::new());
            Ok((status, headers, body))
        }
        Err(e) => Err(e),
    };
    let hop = Hop {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        upstream,
        status: answered.as_ref().ok().map(|(status, ..)| status.as_u16()),
    };
    shared
        .hops
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(hop);
    match answered {
        Ok(answer) => answer.into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The headers to pass on: all but those that describe one connection.
fn without_hop_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for name in [
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ] {
        kept.remove(name);
    }
    kept
}
