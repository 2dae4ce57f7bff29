//! The database going away, probes, gRPC health and graceful shutdown.

use std::time::Duration;

use payments_core::testing::TestDb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use webhook_ingestor::{Config, signature::signature_header};

use crate::{
    events::{Pi, event_id},
    helpers::{Instance, NO_STRIPE, Result, SECRET, TestApp, now},
    proxy::{Proxy, through},
};

async fn stored(db: &TestDb, id: &str) -> Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(found.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_and_stripe_retries_later() -> Result {
    let db = TestDb::new().await;
    let proxy = Proxy::start(through(&db.url, "127.0.0.1:9".parse()?)?.1).await?;
    let (url, _) = through(&db.url, proxy.addr)?;
    let mut config = Config::for_tests(&url, NO_STRIPE, SECRET);
    config.db_acquire_timeout = Duration::from_millis(500);
    let app = Instance::start(config).await?;
    let pi = Pi {
        id: "pi_outage",
        tx: None,
        amount: 100,
        currency: "usd",
    };

    let before = pi.processing();
    assert_eq!(app.post(&before).await?.0, 200);
    assert_eq!(app.get("/readyz").await?, (200, "ready".into()));

    proxy.cut();
    let during = pi.succeeded();
    assert_eq!(
        app.post(&during).await?,
        (503, "database unavailable".into())
    );
    assert_eq!(app.get("/readyz").await?.0, 503);
    assert_eq!(app.get("/healthz").await?, (200, "ok".into()));
    assert!(
        !stored(&db, &event_id(&during)).await?,
        "a 503 must not store the event"
    );

    // Stripe redelivers the same event once we are back. A pooled connection the outage
    // broke is only found out by using it (connections in steady use are not pinged), so
    // one more delivery may get a 503 before a fresh connection stores it.
    proxy.restore();
    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = app.post(&during).await?;
        let done = answer.0 == 200;
        answers.push(answer);
        if done {
            break;
        }
    }
    assert_eq!(answers.last(), Some(&(200, "stored".into())), "{answers:?}");
    assert!(
        answers[..answers.len() - 1]
            .iter()
            .all(|a| *a == (503, "database unavailable".into())),
        "{answers:?}"
    );
    assert!(stored(&db, &event_id(&during)).await?);
    app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_answer() -> Result {
    let app = TestApp::start().await?;
    assert_eq!(app.get("/healthz").await?, (200, "ok".into()));
    assert_eq!(app.get("/readyz").await?, (200, "ready".into()));
    let (status, metrics) = app.get("/metrics").await?;
    assert_eq!(status, 200);
    for name in [
        "payments_webhooks_verified_total 0",
        "payments_webhooks_duplicate_total 0",
        "payments_events_unmatched_total 0",
        "payments_events_dead_lettered_total 0",
        // Known reasons and event types are exported at 0 before the first one.
        "payments_webhooks_rejected_total{reason=\"no_matching_signature\"} 0",
        "payments_events_applied_total{type=\"payment_intent.succeeded\"} 0",
        // OpenMetrics names a counter's family without `_total`.
        "# TYPE payments_webhooks_rejected counter",
        "# TYPE payments_events_applied counter",
        "# TYPE payments_outbox_depth gauge",
        "# TYPE payments_db_pool_connections gauge",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_reports_serving_on_the_same_port() -> Result {
    let app = TestApp::start().await?;
    let channel = tonic::transport::Channel::from_shared(app.url(""))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    let answer = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_webhook_finish() -> Result {
    let TestApp { app, db } = TestApp::start().await?;
    let event = Pi {
        id: "pi_draining",
        tx: None,
        amount: 100,
        currency: "usd",
    }
    .processing();
    let body = serde_json::to_vec(&event)?;
    let header = signature_header(SECRET, now(), &body);
    let head = format!(
        "POST /v1/stripe-webhook HTTP/1.1\r\nhost: ingestor\r\ncontent-type: application/json\r\n\
         stripe-signature: {header}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(app.addr).await?;
    let (first, rest) = body.split_at(body.len() / 2);
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(first).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let addr = app.addr;
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections are refused while draining"
    );
    socket.write_all(rest).await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    stopping.await??;
    assert!(stored(&db, &event_id(&event)).await?);
    Ok(())
}
