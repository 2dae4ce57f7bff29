//! The webhook path's connection cache: a connection is reused only after its work ended
//! in a completed COMMIT or ROLLBACK; anything else goes back to the pool.

use std::time::Duration;

use anyhow::Context as _;
use payments_core::{
    RetryPolicy, StripeEvent, TransactionStatus as Status,
    inbox::{self, Received},
    store::{ConnectionCache, Doorbell, EventSource},
};
use sqlx::{Connection as _, PgConnection, postgres::PgPoolOptions};

use crate::{
    events::event_id,
    helpers::{Result, TestApp},
};

const HOUR: Duration = Duration::from_secs(3600);

async fn backend_pid(conn: &mut PgConnection) -> Result<i32> {
    Ok(sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await?)
}

/// A `payment_intent.succeeded` for a new CREATED payment of 500.
async fn succeeded(app: &TestApp, user: &str) -> Result<(StripeEvent, payments_core::Transaction)> {
    let (tx, event) = app.payment_and_success(user, 500).await?;
    Ok((StripeEvent::from_value(event)?, tx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_is_handed_out_again_and_a_dropped_one_is_not() -> Result {
    let app = TestApp::start().await?;
    let cache = ConnectionCache::new(app.pool().clone(), 2, HOUR);

    let mut first = cache.acquire().await?;
    let pid = backend_pid(&mut first).await?;
    first.keep();
    assert_eq!(cache.idle_count(), 1);

    let mut again = cache.acquire().await?;
    assert_eq!(backend_pid(&mut again).await?, pid);
    assert_eq!(cache.idle_count(), 0);
    drop(again);
    assert_eq!(
        cache.idle_count(),
        0,
        "a dropped connection goes to the pool"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_holds_at_most_its_capacity_and_gives_idle_ones_back() -> Result {
    let app = TestApp::start().await?;
    let cache = ConnectionCache::new(app.pool().clone(), 2, HOUR);
    let held = [
        cache.acquire().await?,
        cache.acquire().await?,
        cache.acquire().await?,
    ];
    for conn in held {
        conn.keep();
    }
    assert_eq!(cache.idle_count(), 2);

    cache.release_idle(HOUR);
    assert_eq!(cache.idle_count(), 2, "nothing has been idle for an hour");
    tokio::time::sleep(Duration::from_millis(20)).await;
    cache.release_idle(Duration::from_millis(10));
    assert_eq!(cache.idle_count(), 0);

    cache.acquire().await?.keep();
    cache.clear();
    assert_eq!(cache.idle_count(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_not_kept_while_a_caller_waits_for_the_pool() -> Result {
    let app = TestApp::start().await?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&app.db.url)
        .await?;
    let cache = ConnectionCache::new(pool, 2, HOUR);
    let (mut first, second) = (cache.acquire().await?, cache.acquire().await?);
    let first_pid = backend_pid(&mut first).await?;

    // The waiter holds what it gets: were it to keep it, it could land in the cache
    // before the assertion below looks.
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.acquire().await }
    });
    while cache.waiting_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Kept while the waiter queues at the pool, it would idle here and the waiter would
    // wait for the pool's timeout.
    first.keep();
    assert_eq!(cache.idle_count(), 0);
    let mut handed = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .context("the waiter got no connection")???;
    assert_eq!(
        backend_pid(&mut handed).await?,
        first_pid,
        "the waiter got the connection given up for it"
    );
    assert_eq!(cache.waiting_count(), 0);
    handed.keep();
    second.keep();
    assert_eq!(cache.idle_count(), 2, "kept again once nobody waits");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_broke_while_cached_is_replaced_before_use() -> Result {
    let app = TestApp::start().await?;
    // Every cached connection is pinged before it is handed out.
    let cache = ConnectionCache::new(app.pool().clone(), 2, Duration::ZERO);
    let mut conn = cache.acquire().await?;
    let pid = backend_pid(&mut conn).await?;
    conn.keep();

    let mut admin = PgConnection::connect(&app.db.url).await?;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await?;
    assert!(terminated);

    let mut replaced = cache.acquire().await?;
    let new_pid = backend_pid(&mut replaced).await?;
    assert_ne!(new_pid, pid);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_received_through_the_cache_reuse_one_connection() -> Result {
    let app = TestApp::start().await?;
    let cache = ConnectionCache::new(app.pool().clone(), 2, HOUR);
    let policy = inbox::Rules {
        retry: RetryPolicy::DEFAULT,
        mode: payments_core::StripeMode::Test,
    };
    let in_commit = Doorbell::in_commit();
    let mut pids = Vec::new();
    for round in 0..3 {
        let user = format!("cached-{round}");
        let (event, tx) = succeeded(&app, &user).await?;
        let received =
            inbox::receive_cached(&cache, &event, EventSource::Webhook, &policy, &in_commit)
                .await?;
        assert!(matches!(received, Received::Stored(_)), "{received:?}");
        // A duplicate ends in a ROLLBACK: the connection is clean and kept as well.
        let again =
            inbox::receive_cached(&cache, &event, EventSource::Webhook, &policy, &in_commit)
                .await?;
        assert!(matches!(again, Received::Duplicate), "{again:?}");
        assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
        assert_eq!(app.balance(&user).await?, 500);

        assert_eq!(cache.idle_count(), 1);
        let mut conn = cache.acquire().await?;
        pids.push(backend_pid(&mut conn).await?);
        conn.keep();
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "every event used the same connection");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_abandoned_mid_transaction_stores_nothing_and_its_connection_is_not_reused()
-> Result {
    let app = TestApp::start().await?;
    let cache = ConnectionCache::new(app.pool().clone(), 2, HOUR);
    let policy = inbox::Rules {
        retry: RetryPolicy::DEFAULT,
        mode: payments_core::StripeMode::Test,
    };
    let in_commit = Doorbell::in_commit();
    let (event, tx) = succeeded(&app, "abandoned").await?;

    // Another session holds the transaction's row, so the delivery waits inside its
    // database transaction (after storing the event, before applying it).
    let mut locker = app.pool().begin().await?;
    sqlx::query("SELECT id FROM transactions WHERE id = $1 FOR UPDATE")
        .bind(tx.id.as_uuid())
        .execute(&mut *locker)
        .await?;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        inbox::receive_cached(&cache, &event, EventSource::Webhook, &policy, &in_commit),
    )
    .await;
    assert!(abandoned.is_err(), "the delivery was still waiting");
    assert_eq!(cache.idle_count(), 0, "its connection was not kept");
    locker.rollback().await?;

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id = $1")
        .bind(event.id.as_str())
        .fetch_one(app.pool())
        .await?;
    assert_eq!(
        stored,
        0,
        "{} was stored without being applied",
        event_id(&event.payload)
    );
    assert_eq!(app.balance("abandoned").await?, 0);

    // Stripe's retry is applied in full, once.
    let received =
        inbox::receive_cached(&cache, &event, EventSource::Webhook, &policy, &in_commit).await?;
    assert!(matches!(received, Received::Stored(_)), "{received:?}");
    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    assert_eq!(app.balance("abandoned").await?, 500);
    assert_eq!(app.ledger_entries(tx.id).await?.len(), 1);
    assert_eq!(cache.idle_count(), 1);
    Ok(())
}
