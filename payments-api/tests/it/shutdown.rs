//! Stopping payments-api as a deploy does: new calls are refused, calls in flight
//! finish, open watches end with a status the client retries on, and every task the
//! service started ends before its connections are closed.

use std::{net::SocketAddr, time::Duration};

use futures::StreamExt;
use payments_core::testing::TestDb;
use payments_proto::payments::v1::TransactionStatus as S;
use stripe_sim::StripeSim;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::helpers::{JWT_SECRET, TOPUP, TestApp, assert_refused, stop_servers};

#[tokio::test]
async fn shutdown_lets_an_in_flight_payment_finish_and_ends_open_watches_retryably() {
    let app = TestApp::start().await;
    let three_ds = app.attach("alice", "pm_card_threeDSecure2Required").await;
    let waiting = app
        .create_payment("alice", &three_ds.id, TOPUP, "waits-for-3ds")
        .await
        .expect("payment")
        .transaction
        .expect("tx");
    let mut updates = app.watch("alice", &waiting.id).await;
    let snapshot = updates.next().await.expect("snapshot").expect("ok");
    assert_eq!(
        snapshot.transaction.expect("tx").status,
        S::RequiresAction as i32
    );

    let card = app.attach("bob", "pm_card_visa").await;
    // Stripe's answer is held for a second; its webhooks are refused, so the payment's
    // state comes from the in-flight call alone.
    app.sim.set_webhook_secrets(vec!["whsec_not_ours"]);
    app.sim
        .faults()
        .scope("/v1/payment_intents")
        .delay_next(1, Duration::from_secs(1));
    let pool = sqlx::PgPool::connect(app.db_url()).await.expect("db");
    let call = app.create_payment("bob", &card.id, TOPUP, "in-flight");
    let stop = async {
        // Once the call is at Stripe, stop as SIGTERM would.
        loop {
            let started: Option<uuid::Uuid> =
                sqlx::query_scalar("SELECT id FROM transactions WHERE user_id = 'bob'")
                    .fetch_optional(&pool)
                    .await
                    .expect("read");
            if started.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.begin_shutdown();
    };
    let (paid, ()) = tokio::join!(call, stop);
    let paid = paid.expect("the in-flight call finishes during the drain");
    assert_eq!(
        paid.transaction.expect("tx").status,
        S::Pending as i32,
        "Stripe's answer recorded"
    );

    let end = tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .expect("the watch ends");
    match end {
        Some(Err(status)) => {
            assert_refused(Err::<(), _>(status), Code::Unavailable, "SHUTTING_DOWN");
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn stopping_joins_the_hub_and_the_metrics_endpoint_and_closes_the_pool() {
    let db = TestDb::new().await;
    let sim = StripeSim::builder()
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()
        .await
        .expect("stripe-sim");
    let config = payments_api::Config::for_tests(&db.url, sim.base_url(), JWT_SECRET);
    let app = payments_api::App::build(config)
        .await
        .expect("payments-api starts");
    let (pool, metrics_addr) = (app.pool().clone(), app.metrics_addr());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let scrape = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("the metrics endpoint answers");
    assert!(scrape.status().is_success(), "{scrape:?}");
    assert!(pool.size() > 0, "the hub listens on a pooled connection");

    stop_servers(&shutdown, [server]).await;
    assert!(pool.is_closed(), "the pool is closed on the way out");
    assert_eq!(
        pool.size(),
        0,
        "every connection came back and was closed: the hub's loops have ended"
    );
    assert!(
        tokio::net::TcpStream::connect(metrics_addr).await.is_err(),
        "the metrics endpoint has stopped"
    );
}
