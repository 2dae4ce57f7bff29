//! The store against a real PostgreSQL, a fresh database per test: idempotent
//! inserts, the doorbell, the coupon and wallet uniqueness, the pool's health checks.

mod support;

use futures::future::join_all;
use payments_core::{
    Currency, Signal, Target, Transaction, TransactionId, TransactionKind, TransactionStatus,
    settle::Context,
    store::{self, Inserted, NewTransaction, Upserted},
    testing::TestDb,
};
use sqlx::{PgConnection, postgres::PgListener};
use support::{apply, insert, payment, user};

#[tokio::test]
async fn migrations_apply_concurrently_from_several_instances() {
    let db = TestDb::new().await;
    let results = join_all(vec![store::migrate(&db.pool), store::migrate(&db.pool)]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

#[tokio::test]
async fn concurrent_inserts_under_one_idempotency_key_make_one_transaction() {
    let db = TestDb::new().await;
    let new = payment("alice", "key-1", 500);
    let attempts = (0..5).map(|_| async {
        let mut conn = db.pool.acquire().await.expect("connection");
        store::insert_transaction(&mut conn, &new)
            .await
            .expect("insert")
    });
    let results = join_all(attempts).await;
    let fresh = results
        .iter()
        .filter(|r| matches!(r, Inserted::New(_)))
        .count();
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|r| match r {
            Inserted::New(t) | Inserted::Existing(t) => t.id,
        })
        .collect();
    assert_eq!((fresh, ids.len()), (1, 1));
}

#[tokio::test]
async fn every_committed_change_rings_the_doorbell_with_id_and_version_only() {
    let db = TestDb::new().await;
    let mut listener = PgListener::connect_with(&db.pool).await.expect("listener");
    listener
        .listen(payments_core::TRANSACTION_CHANNEL)
        .await
        .expect("listen");
    let id = insert(&db, &payment("kate", "k", 100)).await;
    apply(&db, id, &Signal::RequiresAction, Context::default()).await;
    apply(&db, id, &Signal::RequiresAction, Context::default()).await; // stale: no change, no bell
    apply(&db, id, &Signal::Succeeded, Context::default()).await;
    let mut payloads = Vec::new();
    for _ in 0..3 {
        let n = listener.recv().await.expect("notification");
        payloads.push(n.payload().to_owned());
    }
    assert_eq!(
        payloads,
        vec![format!("{id}:1"), format!("{id}:2"), format!("{id}:3")]
    );
}

#[tokio::test]
async fn a_coupon_redeems_once_per_user_unless_the_attempt_failed() {
    let db = TestDb::new().await;
    let coupon = |key: &str| NewTransaction {
        kind: TransactionKind::Coupon,
        coupon_code: Some("WELCOME".into()),
        payment_method_id: None,
        ..payment("liam", key, 500)
    };
    let first = insert(&db, &coupon("c1")).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let again = store::insert_transaction(
        &mut conn,
        &NewTransaction {
            coupon_code: Some("welcome".into()),
            ..coupon("c2")
        },
    )
    .await;
    assert!(
        matches!(again, Err(ref e) if e.is_conflict_on("transactions_coupon_once")),
        "{again:?}"
    );
    drop(conn);
    let failed = Signal::Failed {
        code: "x".into(),
        message: "y".into(),
    };
    apply(&db, first, &failed, Context::default()).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    assert!(
        store::insert_transaction(&mut conn, &coupon("c3"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn concurrent_first_wallets_make_one_and_every_caller_gets_it() {
    let db = TestDb::new().await;
    // Each caller inserts inside its own open transaction and commits a little later,
    // so the others' INSERTs wait on it and then find the row committed meanwhile.
    let ensure = |pause_ms: u64| {
        let pool = db.pool.clone();
        async move {
            let mut tx = pool.begin().await.expect("begin");
            let wallet = store::ensure_wallet(&mut tx, &user("erin"), Currency::USD)
                .await
                .expect("ensure wallet");
            tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            tx.commit().await.expect("commit");
            wallet
        }
    };
    let wallets = join_all((0..8).map(|i| ensure(20 * i))).await;
    assert!(
        wallets
            .iter()
            .all(|w| w.currency == Currency::USD && w.balance == 0)
    );
    let mut conn = db.pool.acquire().await.expect("connection");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM wallets WHERE user_id = 'erin'")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_pooled_connection_the_server_dropped_while_idle_is_replaced_before_use() {
    let db = TestDb::new().await;
    let pool = store::connect(&store::DbConfig {
        url: db.url.clone(),
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .expect("pool");
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("first use");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&db.pool)
        .await
        .expect("terminate");
    assert!(terminated);
    // Idle past the threshold: the pool pings it, finds it dead and opens another.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let second: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("a fresh connection, no error");
    assert_ne!(first, second);
    pool.close().await;
}

/// The store said "conflict on payment_methods_owner", a constraint that does not
/// exist, for callers to match by name; it now says what happened.
#[tokio::test]
async fn a_card_recorded_for_one_user_is_not_taken_over_by_another() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let card = payments_core::CardDetails {
        payment_method_id: "pm_shared".into(),
        customer: Some("cus_1".into()),
        brand: "visa".into(),
        last4: "4242".into(),
        fingerprint: "fp_shared".into(),
    };
    let first = store::upsert_payment_method(&mut conn, &user("gina"), &card)
        .await
        .expect("recorded");
    assert!(matches!(first, Upserted::Recorded(ref row) if row.user_id == user("gina")));
    let second = store::upsert_payment_method(&mut conn, &user("hank"), &card)
        .await
        .expect("answered");
    assert_eq!(second, Upserted::OwnedByAnotherUser);
    let kept = store::get_payment_method(&mut conn, &user("gina"), "pm_shared")
        .await
        .expect("read");
    assert!(kept.is_some());
}

#[tokio::test]
async fn an_outbox_row_is_leased_not_locked_and_a_late_worker_cannot_undo_its_completion() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("alice", "outbox", 1_000)).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    store::enqueue(
        &mut conn,
        store::OutboxKind::CancelPaymentIntent,
        id,
        "pi_1",
        "cancel-pi_1",
    )
    .await
    .expect("enqueue");
    let lease = std::time::Duration::from_millis(200);
    let claimed = store::claim_outbox(&mut conn, 5, lease)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        store::claim_outbox(&mut conn, 5, lease)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again = store::claim_outbox(&mut conn, 5, lease)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "a lease that ran out is claimed again");
    store::complete_outbox(&mut conn, again[0].id)
        .await
        .expect("complete");
    // The first worker's late failure changes nothing.
    store::fail_outbox(&mut conn, claimed[0].id, "late", None)
        .await
        .expect("fail");
    assert_eq!(store::outbox_depth(&mut conn).await.expect("depth"), 0);
    let state: String = sqlx::query_scalar("SELECT state FROM outbox WHERE id = $1")
        .bind(claimed[0].id)
        .fetch_one(&db.pool)
        .await
        .expect("state");
    assert_eq!(state, "done");
}

/// Locks transaction `id` as an event does, with where its row lies.
async fn lock(conn: &mut PgConnection, id: TransactionId) -> store::Locked {
    let target = Target {
        transaction_id: Some(id),
        ..Target::default()
    };
    store::lock_by_target(conn, &target)
        .await
        .expect("lock")
        .expect("exists")
}

/// Changes `locked`'s transaction as settle does, going to the row at `at`.
async fn change_at(
    conn: &mut PgConnection,
    locked: &store::Locked,
    at: &store::RowAddress,
    to: TransactionStatus,
) -> Transaction {
    let change = store::StatusChange {
        to,
        amount_refunded: 0,
        failure: None,
        charge: None,
        cause: "request",
        stripe_event_id: None,
    };
    store::change_status(conn, &locked.transaction, Some(at), &change)
        .await
        .expect("change")
}

/// The status change after a lock goes to the row where the lock found it; once the row
/// has moved (updated again in the same database transaction), or when the address is
/// another row's, the change still lands on its own transaction, found by id.
#[tokio::test]
async fn a_status_change_lands_on_its_transaction_wherever_the_row_lies() {
    let db = TestDb::new().await;
    let (first, second) = (
        insert(&db, &payment("olga", "o-1", 100)).await,
        insert(&db, &payment("olga", "o-2", 200)).await,
    );
    let mut tx = db.pool.begin().await.expect("begin");

    // Straight to the row the lock found.
    let locked = lock(&mut tx, first).await;
    let updated = change_at(
        &mut tx,
        &locked,
        &locked.address,
        TransactionStatus::Pending,
    )
    .await;
    assert_eq!(
        (updated.id, updated.status),
        (first, TransactionStatus::Pending)
    );
    assert_eq!(updated.version, locked.transaction.version + 1);

    // The row moved after the lock: the change finds it by id.
    let locked = lock(&mut tx, second).await;
    store::flag_transaction(&mut tx, second, "moved on purpose")
        .await
        .expect("flag");
    let updated = change_at(
        &mut tx,
        &locked,
        &locked.address,
        TransactionStatus::Pending,
    )
    .await;
    assert_eq!(
        (updated.id, updated.status),
        (second, TransactionStatus::Pending)
    );
    assert_eq!(
        updated.version,
        locked.transaction.version + 2,
        "flag, then the change"
    );

    // Another row's address never changes that row.
    let of_first = lock(&mut tx, first).await;
    let of_second = lock(&mut tx, second).await;
    let updated = change_at(
        &mut tx,
        &of_second,
        &of_first.address,
        TransactionStatus::Succeeded,
    )
    .await;
    assert_eq!(
        (updated.id, updated.status),
        (second, TransactionStatus::Succeeded)
    );
    let untouched = store::get_transaction(&mut tx, first)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(untouched.status, TransactionStatus::Pending);
    assert_eq!(untouched.version, of_first.transaction.version);

    let audit: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT transaction_id, to_status FROM transaction_transitions \
         WHERE transaction_id IN ($1, $2) ORDER BY id",
    )
    .bind(first.as_uuid())
    .bind(second.as_uuid())
    .fetch_all(&mut *tx)
    .await
    .expect("audit");
    let expected = [
        (first, "pending"),
        (second, "pending"),
        (second, "succeeded"),
    ]
    .map(|(id, to)| (id.as_uuid(), to.to_owned()));
    assert_eq!(
        audit, expected,
        "one audit row per change, on its own transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_victim_is_a_lock_cycle_and_nothing_else() {
    let db = TestDb::new().await;
    let victim = store::StoreError::from(db.deadlock_victim().await);
    assert!(victim.is_lock_cycle(), "{victim:?}");
    assert!(!victim.is_unavailable(), "{victim:?}");
    let mut conn = db.pool.acquire().await.expect("connection");
    let refused = sqlx::query("SELECT 1/0")
        .execute(&mut *conn)
        .await
        .expect_err("division by zero");
    assert!(!store::StoreError::from(refused).is_lock_cycle());
}
