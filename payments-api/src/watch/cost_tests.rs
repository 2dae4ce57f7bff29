//! What the hub costs the database: doorbells batched into few reads, stale and unwatched
//! doorbells read nothing, and the safety pass re-reads only the rows that moved.

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt};
use payments_core::{Signal, TRANSACTION_CHANNEL, Transaction, TransactionId, testing::TestDb};

use super::{
    WatchConfig, WatchEnd, WatchHub,
    tests::{NEVER, WAIT, hub, hub_with, new_transaction, signal},
};

type Updates = Pin<Box<dyn Stream<Item = Result<Transaction, WatchEnd>> + Send>>;

/// Opens a stream and takes its snapshot.
async fn watching(hub: &WatchHub, id: TransactionId) -> Updates {
    let watch = hub.watch(id, None).await.expect("watch").expect("exists");
    let mut updates: Updates = Box::pin(watch.into_stream());
    assert!(
        matches!(updates.next().await, Some(Ok(_))),
        "snapshot first"
    );
    updates
}

/// `n` new transactions, each watched by one stream that has taken its snapshot.
async fn watched(db: &TestDb, hub: &WatchHub, n: usize) -> (Vec<TransactionId>, Vec<Updates>) {
    let mut ids = Vec::with_capacity(n);
    let mut watchers = Vec::with_capacity(n);
    for _ in 0..n {
        let id = new_transaction(db).await;
        watchers.push(watching(hub, id).await);
        ids.push(id);
    }
    (ids, watchers)
}

/// Waits for the stream's message carrying `version`, checking none comes out of order.
async fn until_version(updates: &mut Updates, version: i64) {
    let mut last = 0;
    while last < version {
        let next = tokio::time::timeout(WAIT, updates.next())
            .await
            .expect("in time")
            .expect("stream open")
            .expect("no stream error");
        assert!(next.version > last, "versions not increasing");
        last = next.version;
    }
    assert_eq!(last, version, "skipped past the final version");
}

async fn version(db: &TestDb, id: TransactionId) -> i64 {
    sqlx::query_scalar("SELECT version FROM transactions WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&db.pool)
        .await
        .expect("version")
}

/// Returns once every doorbell committed so far has been handled and the reads it caused
/// are counted: doorbells are handled in commit order, so it changes a row of its own,
/// waits for the change to arrive, and then for the reader to finish what is queued (a
/// re-read already under way may have published the change before its own doorbell
/// was read).
async fn drain_doorbells(db: &TestDb, hub: &WatchHub) {
    let id = new_transaction(db).await;
    let mut updates = watching(hub, id).await;
    signal(db, id, Signal::RequiresAction).await;
    until_version(&mut updates, version(db, id).await).await;
    tokio::time::timeout(WAIT, async {
        while !hub.inner.is_idle() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("reader idle in time");
}

/// A NOTIFY as the trigger sends it, with whatever payload the test wants.
async fn doorbell(db: &TestDb, id: uuid::Uuid, version: i64) {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(TRANSACTION_CHANNEL)
        .bind(format!("{id}:{version}"))
        .execute(&db.pool)
        .await
        .expect("notify");
}

/// Changes a row as if its doorbell were lost: in replica mode no trigger fires, so
/// the version is bumped by hand and nothing is notified.
async fn change_silently(db: &TestDb, id: TransactionId) -> i64 {
    let mut tx = db.pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("replica mode");
    let version = sqlx::query_scalar(
        "UPDATE transactions SET version = version + 1, updated_at = now() \
         WHERE id = $1 RETURNING version",
    )
    .bind(id.as_uuid())
    .fetch_one(&mut *tx)
    .await
    .expect("update");
    tx.commit().await.expect("commit");
    version
}

#[tokio::test]
async fn a_burst_of_changes_is_read_in_fewer_queries_than_changes() {
    let db = TestDb::new().await;
    let config = WatchConfig {
        safety_reread: NEVER,
        coalesce: Duration::from_secs(1),
        ..WatchConfig::default()
    };
    let (hub, _stop) = hub_with(&db, config).await;
    let (ids, mut watchers) = watched(&db, &hub, 4).await;
    drain_doorbells(&db, &hub).await;
    let (reads, rows) = (hub.reads(), hub.rows_read());
    let mut changes = 0_u64;
    for round in 0..5 {
        let next = if round % 2 == 0 {
            Signal::RequiresAction
        } else {
            Signal::Processing
        };
        for &id in &ids {
            signal(&db, id, next.clone()).await;
            changes += 1;
        }
    }
    for (updates, &id) in watchers.iter_mut().zip(&ids) {
        until_version(updates, version(&db, id).await).await;
    }
    let (reads, rows) = (hub.reads() - reads, hub.rows_read() - rows);
    assert!(reads < changes, "{reads} queries for {changes} changes");
    assert!(rows < changes, "{rows} rows re-read for {changes} changes");
}

#[tokio::test]
async fn stale_and_unwatched_doorbells_read_nothing() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let (a, b) = (new_transaction(&db).await, new_transaction(&db).await);
    let (mut watch_a, mut watch_b) = (watching(&hub, a).await, watching(&hub, b).await);
    signal(&db, a, Signal::RequiresAction).await;
    let current = version(&db, a).await;
    until_version(&mut watch_a, current).await;
    drain_doorbells(&db, &hub).await;
    let (reads, rows) = (hub.reads(), hub.rows_read());

    doorbell(&db, a.as_uuid(), current).await;
    doorbell(&db, a.as_uuid(), current - 1).await;
    doorbell(&db, TransactionId::new().as_uuid(), 99).await;
    // Doorbells arrive in commit order: once b's change is through, the three above
    // have been handled.
    signal(&db, b, Signal::RequiresAction).await;
    until_version(&mut watch_b, version(&db, b).await).await;

    assert_eq!(hub.rows_read() - rows, 1, "only b was re-read");
    assert_eq!(hub.reads() - reads, 1);
}

#[tokio::test]
async fn the_safety_pass_checks_versions_and_rereads_only_the_rows_that_moved() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let (ids, mut watchers) = watched(&db, &hub, 20).await;
    // The inserts' doorbells are handled first: one read late enough would otherwise
    // pick up a silent change below before the safety pass does.
    drain_doorbells(&db, &hub).await;
    let moved = [
        change_silently(&db, ids[3]).await,
        change_silently(&db, ids[11]).await,
    ];
    let (reads, rows) = (hub.reads(), hub.rows_read());

    hub.inner.resync.notify_one();
    until_version(&mut watchers[3], moved[0]).await;
    until_version(&mut watchers[11], moved[1]).await;

    assert_eq!(hub.rows_read() - rows, 2, "only the moved rows in full");
    // One version check for all twenty, one re-read of the two that moved.
    assert_eq!(hub.reads() - reads, 2);
}

#[tokio::test]
async fn a_lost_doorbell_is_made_up_for_by_the_periodic_safety_pass() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, Duration::from_millis(100)).await;
    let id = new_transaction(&db).await;
    let mut updates = watching(&hub, id).await;
    let moved = change_silently(&db, id).await;
    until_version(&mut updates, moved).await;
}

#[tokio::test]
async fn idle_watchers_cost_the_database_nothing_and_the_safety_reread_is_one_query() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, Duration::from_millis(200)).await;
    let (_ids, _watchers) = watched(&db, &hub, 50).await;
    drain_doorbells(&db, &hub).await;
    let (reads, rows) = (hub.reads(), hub.rows_read());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let reads = hub.reads() - reads;
    // About five ticks, each one version check for all fifty watched transactions;
    // nothing moved, so no row is re-read.
    assert!((3..=7).contains(&reads), "{reads} reads in 1.1 s");
    assert_eq!(hub.rows_read() - rows, 0);
}
