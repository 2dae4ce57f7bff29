//! The hub against a real database: every path by which a change reaches a watcher.

use std::time::Duration;

use futures::{StreamExt, stream::FuturesUnordered};
use payments_core::{
    Currency, Money, Signal, Transaction, TransactionId, TransactionKind, TransactionStatus,
    UserId,
    settle::{self, Cause, Context},
    store::{self, Inserted, NewTransaction},
    testing::TestDb,
};
use payments_service_kit::Tasks;
use tokio_util::sync::CancellationToken;

use super::{Watch, WatchConfig, WatchEnd, WatchHub};

pub(super) const WAIT: Duration = Duration::from_secs(10);

pub(super) async fn new_transaction(db: &TestDb) -> TransactionId {
    let new = NewTransaction {
        user_id: UserId::parse("watcher").expect("valid user"),
        kind: TransactionKind::Payment,
        amount: Money::new(1_000, Currency::USD).expect("positive"),
        payment_method_id: Some("pm_1".into()),
        coupon_code: None,
        card_fingerprint: None,
        trial_credit: None,
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        request_fingerprint: "test".into(),
    };
    let mut conn = db.pool.acquire().await.expect("connection");
    match store::insert_transaction(&mut conn, &new)
        .await
        .expect("insert")
    {
        Inserted::New(tx) => tx.id,
        Inserted::Existing(_) => panic!("fresh key"),
    }
}

/// Commits a signal the way the ingestor does: lock, apply, commit (the trigger rings).
pub(super) async fn signal(db: &TestDb, id: TransactionId, signal: Signal) {
    let mut tx = db.pool.begin().await.expect("begin");
    let current = store::lock_transaction(&mut tx, id)
        .await
        .expect("lock")
        .expect("exists");
    settle::apply(
        &mut tx,
        &current,
        &signal,
        Cause::Request,
        Context::default(),
    )
    .await
    .expect("apply");
    tx.commit().await.expect("commit");
}

pub(super) async fn hub(db: &TestDb, safety_reread: Duration) -> (WatchHub, Running) {
    let config = WatchConfig {
        safety_reread,
        ..WatchConfig::default()
    };
    hub_with(db, config).await
}

pub(super) async fn hub_with(db: &TestDb, config: WatchConfig) -> (WatchHub, Running) {
    let token = CancellationToken::new();
    let mut tasks = Tasks::default();
    let hub = WatchHub::start(db.pool.clone(), config, token.clone(), &mut tasks)
        .await
        .expect("hub starts");
    (
        hub,
        Running {
            token,
            _tasks: tasks,
        },
    )
}

/// The hub's loops, running until the test cancels them or ends.
pub(super) struct Running {
    token: CancellationToken,
    _tasks: Tasks,
}

impl Running {
    pub(super) fn cancel(&self) {
        self.token.cancel();
    }
}

/// Collects a watch stream to its end.
async fn collect(
    hub: &WatchHub,
    id: TransactionId,
    await_status: Option<TransactionStatus>,
) -> Vec<Transaction> {
    let watch = hub
        .watch(id, await_status)
        .await
        .expect("watch")
        .expect("exists");
    to_end(watch).await
}

async fn to_end(watch: Watch) -> Vec<Transaction> {
    let items = tokio::time::timeout(WAIT, watch.into_stream().collect::<Vec<_>>())
        .await
        .expect("stream ends");
    items
        .into_iter()
        .map(|r| r.expect("no stream error"))
        .collect()
}

fn statuses(items: &[Transaction]) -> Vec<TransactionStatus> {
    items.iter().map(|t| t.status).collect()
}

fn assert_versions_increase(items: &[Transaction]) {
    assert!(
        items.windows(2).all(|w| w[0].version < w[1].version),
        "versions not strictly increasing"
    );
}

pub(super) const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_change_after_subscribe_arrives_and_the_stream_ends_when_settled() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    // The snapshot is read before the changes commit, so it is the first message.
    let watch = hub.watch(id, None).await.expect("watch").expect("exists");
    let watcher = tokio::spawn(to_end(watch));
    signal(&db, id, Signal::RequiresAction).await;
    signal(&db, id, Signal::Succeeded).await;
    let items = watcher.await.expect("watcher");
    assert_eq!(
        items.first().map(|t| t.status),
        Some(TransactionStatus::Created)
    );
    assert_eq!(
        items.last().map(|t| t.status),
        Some(TransactionStatus::Succeeded)
    );
    assert_versions_increase(&items);
}

#[tokio::test]
async fn changes_racing_the_subscribe_are_never_lost() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    for _ in 0..20 {
        let id = new_transaction(&db).await;
        let changes = async {
            signal(&db, id, Signal::Processing).await;
            signal(&db, id, Signal::Succeeded).await;
        };
        let (items, ()) = tokio::join!(collect(&hub, id, None), changes);
        assert_eq!(
            items.last().map(|t| t.status),
            Some(TransactionStatus::Succeeded)
        );
        assert_versions_increase(&items);
    }
}

#[tokio::test]
async fn every_watcher_gets_the_final_change_after_the_listening_connection_is_killed() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    let watchers: Vec<_> = (0..20)
        .map(|_| {
            let hub = hub.clone();
            tokio::spawn(async move { collect(&hub, id, None).await })
        })
        .collect();
    while hub.open_streams() < 20 {
        tokio::task::yield_now().await;
    }
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("terminate");
    assert_eq!(killed, vec![true], "exactly the one listening connection");
    signal(&db, id, Signal::Succeeded).await;
    for w in watchers {
        let items = w.await.expect("watcher");
        assert_eq!(
            items.last().map(|t| t.status),
            Some(TransactionStatus::Succeeded)
        );
    }
}

#[tokio::test]
async fn a_thousand_watchers_of_one_transaction_all_get_the_final_state() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    let mut watchers = FuturesUnordered::new();
    for _ in 0..1_000 {
        let watch = hub.watch(id, None).await.expect("watch").expect("exists");
        watchers.push(tokio::spawn(watch.into_stream().collect::<Vec<_>>()));
    }
    assert_eq!(hub.open_streams(), 1_000);
    assert_eq!(hub.watched_transactions(), 1);
    // Opening queued one catch-up re-read (shared by all); let it finish first.
    reader_idle(&hub).await;
    let reads_before = hub.reads();
    signal(&db, id, Signal::Succeeded).await;
    let mut finished = 0;
    while let Some(items) = tokio::time::timeout(WAIT, watchers.next())
        .await
        .expect("in time")
    {
        let items: Vec<_> = items
            .expect("join")
            .into_iter()
            .map(|r| r.expect("ok"))
            .collect();
        assert_eq!(
            items.last().map(|t| t.status),
            Some(TransactionStatus::Succeeded)
        );
        finished += 1;
    }
    assert_eq!(finished, 1_000);
    // One doorbell, one read, shared by all thousand watchers.
    assert_eq!(hub.reads() - reads_before, 1);
    assert_eq!(hub.open_streams(), 0);
}

#[tokio::test]
async fn a_dropped_stream_frees_its_slot_at_once() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    let stream = hub
        .watch(id, None)
        .await
        .expect("watch")
        .expect("exists")
        .into_stream();
    let mut stream = Box::pin(stream);
    assert!(stream.next().await.is_some(), "snapshot first");
    assert_eq!((hub.open_streams(), hub.watched_transactions()), (1, 1));
    drop(stream);
    assert_eq!((hub.open_streams(), hub.watched_transactions()), (0, 0));
    // A missing transaction frees its subscription too.
    assert!(
        hub.watch(TransactionId::new(), None)
            .await
            .expect("query")
            .is_none()
    );
    assert_eq!((hub.open_streams(), hub.watched_transactions()), (0, 0));
}

#[tokio::test]
async fn await_status_ends_the_stream_early() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    // The snapshot is read before the changes commit, so it is the first message.
    let watch = hub
        .watch(id, Some(TransactionStatus::RequiresAction))
        .await
        .expect("watch")
        .expect("exists");
    let watcher = tokio::spawn(to_end(watch));
    signal(&db, id, Signal::RequiresAction).await;
    let items = watcher.await.expect("watcher");
    assert_eq!(
        statuses(&items),
        vec![
            TransactionStatus::Created,
            TransactionStatus::RequiresAction
        ]
    );
}

#[tokio::test]
async fn an_already_settled_transaction_gives_one_message() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    signal(&db, id, Signal::Succeeded).await;
    let items = collect(&hub, id, None).await;
    assert_eq!(statuses(&items), vec![TransactionStatus::Succeeded]);
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_a_retryable_error() {
    let db = TestDb::new().await;
    let (hub, stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    let mut stream = Box::pin(
        hub.watch(id, None)
            .await
            .expect("watch")
            .expect("exists")
            .into_stream(),
    );
    assert!(matches!(stream.next().await, Some(Ok(_))));
    stop.cancel();
    let end = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("ends");
    assert!(matches!(end, Some(Err(WatchEnd::ShuttingDown))));
    assert!(stream.next().await.is_none());
}

/// Waits until every queued re-read is done.
pub(super) async fn reader_idle(hub: &WatchHub) {
    tokio::time::timeout(WAIT, async {
        while !hub.inner.is_idle() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("reader idle in time");
}

#[tokio::test]
async fn a_change_between_the_snapshot_and_the_subscription_is_still_delivered() {
    let db = TestDb::new().await;
    let (hub, _stop) = hub(&db, NEVER).await;
    let id = new_transaction(&db).await;
    let snapshot = hub.read(id).await.expect("read").expect("exists");
    // Committed (and its doorbell rung) while nobody is subscribed yet.
    signal(&db, id, Signal::Succeeded).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let items = tokio::time::timeout(
        WAIT,
        hub.watch_from(snapshot, None)
            .into_stream()
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends with the change");
    let items: Vec<_> = items.into_iter().map(|r| r.expect("ok")).collect();
    assert_eq!(
        statuses(&items),
        vec![TransactionStatus::Created, TransactionStatus::Succeeded]
    );
}

#[tokio::test]
async fn a_stream_ends_at_its_maximum_lifetime_with_a_retryable_end() {
    let db = TestDb::new().await;
    let config = WatchConfig {
        safety_reread: NEVER,
        max_lifetime: Duration::from_millis(300),
        ..WatchConfig::default()
    };
    let (hub, _stop) = hub_with(&db, config).await;
    let id = new_transaction(&db).await;
    let watch = hub.watch(id, None).await.expect("watch").expect("exists");
    let started = tokio::time::Instant::now();
    let items = tokio::time::timeout(WAIT, watch.into_stream().collect::<Vec<_>>())
        .await
        .expect("ends");
    assert!(
        started.elapsed() >= Duration::from_millis(270),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(items.as_slice(), [Ok(_), Err(WatchEnd::LifetimeReached)]),
        "{items:?}"
    );
    assert_eq!(hub.open_streams(), 0, "the slot is freed");
}
