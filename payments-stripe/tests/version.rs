//! Every request goes out at the one pinned API version, whatever it asks for.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use payments_core::reconcile::{ObjectKind, ObjectRef, StripeReader};
use payments_stripe::{StripeClient, StripeConfig, api_version};
use stripe::StripeRequest as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[test]
fn the_pinned_version_is_the_one_stripe_sim_speaks() {
    assert_eq!(api_version(), stripe_sim::API_VERSION);
}

/// A server on port 0 that records each request's head and answers every request
/// with `body`.
async fn recording_server(body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), heads)
}

#[tokio::test]
async fn reads_writes_and_searches_all_send_the_pinned_version() {
    let (base, heads) = recording_server(
        r#"{"id":"pi_1","object":"payment_intent","status":"succeeded","data":[],"has_more":false}"#,
    )
    .await;
    let client = StripeClient::new(&StripeConfig {
        api_base: base,
        secret_key: "sk_test_version".to_owned().into(),
        timeout: Duration::from_secs(5),
    })
    .expect("client");
    client
        .retrieve(ObjectRef::PaymentIntent("pi_1"))
        .await
        .expect("retrieve");
    client
        .retrieve(ObjectRef::Invoice("in_1"))
        .await
        .expect("retrieve an invoice");
    client
        .search(ObjectKind::PaymentIntent, "metadata['transaction_id']:'x'")
        .await
        .expect("search");
    client
        .events_page(
            payments_stripe::reader::EventsFrom::Newest { older_than: None },
            Some(0),
            &["payment_intent.succeeded"],
        )
        .await
        .expect("events");
    let cancel = stripe_core::payment_intent::CancelPaymentIntent::new("pi_1").build();
    client
        .send_json("cancel", cancel.customize())
        .await
        .expect("a request built by async-stripe");

    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 5, "{heads:#?}");
    let header = format!("stripe-version: {}\r\n", api_version());
    for head in &heads {
        assert!(head.contains(&header), "no pinned version in {head}");
    }
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("get /v1/payment_intents/pi_1 "))
    );
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("get /v1/invoices/in_1 "))
    );
    assert!(heads.iter().any(|h| h.starts_with(
        "get /v1/events?limit=100&created%5bgte%5d=0&types%5b%5d=payment_intent.succeeded "
    )));
}
