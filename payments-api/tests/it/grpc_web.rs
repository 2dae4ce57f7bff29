//! The HTTP surface besides plain gRPC: grpc-web over HTTP/1.1 with CORS, and health.

use payments_proto::payments::v1 as pb;
use prost::Message;

use crate::helpers::{TestApp, user_token};

/// A grpc-web data frame: flag 0, big-endian length, message.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// Splits a grpc-web response body into its data message and its trailers.
fn unframe(mut body: &[u8]) -> (Vec<u8>, String) {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + len];
        if body[0] & 0x80 == 0 {
            data.extend_from_slice(payload);
        } else {
            trailers.push_str(&String::from_utf8_lossy(payload));
        }
        body = &body[5 + len..];
    }
    (data, trailers)
}

#[tokio::test]
async fn a_grpc_web_call_over_http1_gets_the_wallet() {
    let app = TestApp::start().await;
    let http1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let url = format!("http://{}/payments.v1.PaymentsService/GetWallet", app.addr);
    let request = pb::GetWalletRequest {
        user_id: "alice".into(),
    };
    let response = http1
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "http://localhost:5173")
        .header("authorization", format!("Bearer {}", user_token("alice")))
        .body(frame(&request))
        .send()
        .await
        .expect("grpc-web request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let exposed = response
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(exposed.contains("grpc-status"), "{exposed:?}");
    let body = response.bytes().await.expect("body");
    let (data, trailers) = unframe(&body);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    let wallet = pb::Wallet::decode(data.as_slice()).expect("a Wallet");
    assert_eq!((wallet.user_id.as_str(), wallet.balance), ("alice", 0));
    assert_eq!(wallet.currency, "usd");

    app.stop().await;
}

#[tokio::test]
async fn a_browser_preflight_allows_the_grpc_web_headers() {
    let app = TestApp::start().await;
    let url = format!("http://{}/payments.v1.PaymentsService/GetWallet", app.addr);
    let http1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let preflight = http1
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-user-agent,traceparent,tracestate",
        )
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    for header in [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        // A browser's trace continues on the server.
        "traceparent",
        "tracestate",
    ] {
        assert!(allowed.contains(header), "{header} not in {allowed:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_health_service_reports_serving() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let app = TestApp::start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    let answer = health
        .check(HealthCheckRequest {
            service: "payments.v1.PaymentsService".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(answer.status, ServingStatus::Serving as i32);
    app.stop().await;
}

/// Reads grpc-web frames off a streaming HTTP/1.1 body as they arrive.
struct FrameReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

enum Frame {
    Data(Vec<u8>),
    Trailers(String),
}

impl FrameReader {
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buffer.len() >= 5 {
                let len = u32::from_be_bytes([
                    self.buffer[1],
                    self.buffer[2],
                    self.buffer[3],
                    self.buffer[4],
                ]) as usize;
                if self.buffer.len() >= 5 + len {
                    let flag = self.buffer[0];
                    let payload = self.buffer[5..5 + len].to_vec();
                    self.buffer.drain(..5 + len);
                    return Some(if flag & 0x80 == 0 {
                        Frame::Data(payload)
                    } else {
                        Frame::Trailers(String::from_utf8_lossy(&payload).into_owned())
                    });
                }
            }
            let chunk = self.response.chunk().await.expect("body chunk")?;
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

#[tokio::test]
async fn a_grpc_web_client_streams_a_watch_until_the_payment_settles() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_threeDSecure2Required").await;
    let created = app
        .create_payment("alice", &card.id, 1_500, "grpc-web-watch")
        .await
        .expect("create payment");
    let tx = created.transaction.expect("transaction");
    let http1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let request = pb::WatchTransactionRequest {
        transaction_id: tx.id.clone(),
        await_status: None,
    };
    let response = http1
        .post(format!(
            "http://{}/payments.v1.PaymentsService/WatchTransaction",
            app.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {}", user_token("alice")))
        .body(frame(&request))
        .send()
        .await
        .expect("grpc-web request");
    assert_eq!(
        (response.status().as_u16(), response.version()),
        (200, reqwest::Version::HTTP_11)
    );
    let mut frames = FrameReader {
        response,
        buffer: Vec::new(),
    };
    let status_of = |data: &[u8]| {
        pb::TransactionUpdate::decode(data)
            .expect("an update")
            .transaction
            .expect("transaction")
            .status
    };

    // The first message arrives while the stream stays open, before the customer acts.
    let Some(Frame::Data(first)) = frames.next().await else {
        panic!("a first message")
    };
    assert_eq!(
        status_of(&first),
        pb::TransactionStatus::RequiresAction as i32
    );
    app.authenticate_3ds(&tx.stripe_payment_intent_id, &created.client_secret, true)
        .await;

    let mut last = None;
    let trailers = loop {
        match frames.next().await.expect("the stream ends with trailers") {
            Frame::Data(data) => last = Some(status_of(&data)),
            Frame::Trailers(t) => break t,
        }
    };
    assert_eq!(last, Some(pb::TransactionStatus::Succeeded as i32));
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_stripe_calls_and_open_watch_streams() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    app.create_payment("alice", &card.id, 1_000, "metrics")
        .await
        .expect("payment");
    let declined = app.attach("alice", "pm_card_chargeDeclined").await;
    app.create_payment("alice", &declined.id, 1_000, "metrics-declined")
        .await
        .expect("declined is an answer");
    let response = reqwest::get(format!("http://{}/metrics", app.metrics_addr))
        .await
        .expect("metrics request");
    assert_eq!(response.status(), 200, "{:?}", response.headers());
    let metrics = response.text().await.expect("metrics body");
    assert!(
        metrics.contains("payments_watch_streams_open 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "payments_stripe_call_duration_seconds_count{operation=\"create_payment_intent\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("payments_stripe_call_errors_total{operation=\"create_payment_intent\",kind=\"declined\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}
