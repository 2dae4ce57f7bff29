//! A gRPC proxy in front of payments-api that does, per method, what the test planned:
//! forward, forward and lose the answer (the server did the work, the caller hears
//! UNAVAILABLE), or refuse with UNAVAILABLE (optionally with a RetryInfo delay)
//! without forwarding. It records every call it receives.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes, to_bytes},
    extract::{Request, State},
    response::Response,
};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, transport::Channel};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Forward,
    /// Forwarded and answered by payments-api; the caller gets UNAVAILABLE instead.
    LoseAnswer,
    /// Not forwarded: UNAVAILABLE, with RetryInfo when a delay is given.
    Refuse(Option<Duration>),
}

/// One call as the proxy received it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    body: Bytes,
}

impl Call {
    /// The request message (after gRPC's 5-byte frame header).
    pub fn message<M: prost::Message + Default>(&self) -> M {
        M::decode(self.body.get(5..).unwrap_or_default()).expect("a request message")
    }
}

struct Shared {
    upstream: Channel,
    plans: Mutex<HashMap<String, VecDeque<Fate>>>,
    calls: Mutex<Vec<(String, Call)>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let upstream = Channel::from_shared(upstream.to_owned())
            .expect("upstream URL")
            .connect_lazy();
        let shared = Arc::new(Shared {
            upstream,
            plans: Mutex::default(),
            calls: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("local address");
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let serving =
            axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move { serving.await.expect("the proxy serves") });
        Proxy { addr, shared, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What happens to the next calls of `method` (e.g. `CreatePayment`); after these,
    /// calls are forwarded.
    pub fn plan(&self, method: &str, fates: impl IntoIterator<Item = Fate>) {
        let mut plans = self
            .shared
            .plans
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plans.entry(method.to_owned()).or_default().extend(fates);
    }

    /// Every call of `method` received so far, in order.
    pub fn calls(&self, method: &str) -> Vec<Call> {
        let calls = self
            .shared
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, call)| call.clone())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.expect("the request body");
    let call = Call {
        at: Instant::now(),
        body: body.clone(),
    };
    shared
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((method.clone(), call));
    let fate = shared
        .plans
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_mut(&method)
        .and_then(VecDeque::pop_front)
        .unwrap_or(Fate::Forward);
    if let Fate::Refuse(delay) = fate {
        let details = ErrorDetails::with_retry_info(delay);
        return Status::with_error_details(Code::Unavailable, "refused by the proxy", details)
            .into_http();
    }
    let upstream = http::Request::from_parts(parts, tonic::body::Body::new(Body::from(body)));
    let mut channel = shared.upstream.clone();
    let answer = async {
        std::future::poll_fn(|cx| tower::Service::poll_ready(&mut channel, cx)).await?;
        tower::Service::call(&mut channel, upstream).await
    };
    let response = match answer.await {
        Ok(response) => response,
        Err(e) => return Status::unavailable(format!("upstream: {e}")).into_http(),
    };
    match fate {
        Fate::LoseAnswer => {
            // Read the whole answer first, so payments-api has finished the call.
            let _ = to_bytes(Body::new(response.into_body()), usize::MAX).await;
            Status::unavailable("the proxy lost the answer").into_http()
        }
        _ => response.map(Body::new),
    }
}
