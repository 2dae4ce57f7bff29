//! The store and the settle path against a real PostgreSQL, a fresh database per test.

use futures::future::join_all;
use payments_core::{
    Currency, Money, Signal, TransactionId, TransactionKind, TransactionStatus, UserId,
    settle::{self, Cause, Context, Outcome},
    store::{self, Inserted, Movement, MovementKind, NewTransaction, StoreError, Upserted},
    testing::TestDb,
};
use sqlx::postgres::PgListener;

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("valid user id")
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD).expect("positive")
}

fn payment(user_id: &str, key: &str, amount: i64) -> NewTransaction {
    NewTransaction {
        user_id: user(user_id),
        kind: TransactionKind::Payment,
        amount: usd(amount),
        payment_method_id: Some("pm_card".into()),
        coupon_code: None,
        card_fingerprint: None,
        trial_credit: None,
        idempotency_key: key.into(),
        request_fingerprint: format!("amount={amount}"),
    }
}

async fn insert(db: &TestDb, new: &NewTransaction) -> TransactionId {
    let mut conn = db.pool.acquire().await.expect("connection");
    match store::insert_transaction(&mut conn, new)
        .await
        .expect("insert")
    {
        Inserted::New(tx) | Inserted::Existing(tx) => tx.id,
    }
}

async fn apply(db: &TestDb, id: TransactionId, signal: &Signal, context: Context<'_>) -> Outcome {
    let mut tx = db.pool.begin().await.expect("begin");
    let current = store::lock_transaction(&mut tx, id)
        .await
        .expect("lock")
        .expect("exists");
    let outcome = settle::apply(
        &mut tx,
        &current,
        signal,
        Cause::StripeEvent("evt_test"),
        context,
    )
    .await
    .expect("apply");
    tx.commit().await.expect("commit");
    outcome
}

async fn balance(db: &TestDb, user_id: &str) -> i64 {
    let mut conn = db.pool.acquire().await.expect("connection");
    store::get_wallet(&mut conn, &user(user_id))
        .await
        .expect("wallet")
        .map_or(0, |w| w.balance)
}

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
async fn a_success_applied_concurrently_credits_exactly_once() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("bob", "k", 1_200)).await;
    let applies = (0..5).map(|_| apply(&db, id, &Signal::Succeeded, Context::default()));
    let outcomes = join_all(applies).await;
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Applied(_)))
        .count();
    assert_eq!(applied, 1);
    assert_eq!(balance(&db, "bob").await, 1_200);
    let mut conn = db.pool.acquire().await.expect("connection");
    assert!(
        store::check_ledger(&mut conn)
            .await
            .expect("check")
            .mismatches
            .is_empty()
    );
}

#[tokio::test]
async fn the_unique_key_refuses_a_second_credit_whatever_the_code_does() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("carol", "k", 300)).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    store::ensure_wallet(&mut conn, &user("carol"), Currency::USD)
        .await
        .expect("wallet");
    let carol = user("carol");
    let credit = Movement {
        user_id: &carol,
        transaction_id: id,
        kind: MovementKind::PaymentCredit,
        key: "",
        money: usd(300),
        stripe_event_id: None,
    };
    assert!(
        store::record_movement(&mut conn, &credit)
            .await
            .expect("first")
    );
    assert!(
        !store::record_movement(&mut conn, &credit)
            .await
            .expect("second is a no-op")
    );
    let raw = sqlx::query(
        "INSERT INTO ledger_entries (user_id, transaction_id, kind, amount, currency) VALUES ('carol', $1, 'payment_credit', 300, 'usd')",
    )
    .bind(id.as_uuid())
    .execute(&mut *conn)
    .await;
    assert!(matches!(
        raw.map_err(StoreError::from),
        Err(StoreError::Conflict(_))
    ));
    let tamper = sqlx::query("UPDATE ledger_entries SET amount = 1")
        .execute(&mut *conn)
        .await;
    assert!(tamper.is_err(), "the ledger is append-only");
    assert_eq!(balance(&db, "carol").await, 300);
}

#[tokio::test]
async fn a_ledger_entry_in_another_currency_than_the_wallet_is_refused() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("dave", "k", 300)).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    store::ensure_wallet(&mut conn, &user("dave"), Currency::USD)
        .await
        .expect("wallet");
    let raw = sqlx::query(
        "INSERT INTO ledger_entries (user_id, transaction_id, kind, amount, currency) VALUES ('dave', $1, 'payment_credit', 300, 'eur')",
    )
    .bind(id.as_uuid())
    .execute(&mut *conn)
    .await;
    assert!(raw.is_err());
}

#[tokio::test]
async fn a_payment_in_another_currency_is_flagged_and_never_credited() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("erin", "k", 900)).await;
    let context = Context {
        currency: Some("eur"),
        charge: None,
    };
    let outcome = apply(&db, id, &Signal::Succeeded, context).await;
    assert!(
        matches!(outcome, Outcome::Flagged(ref why) if why.contains("currency")),
        "{outcome:?}"
    );
    assert_eq!(balance(&db, "erin").await, 0);
    let mut conn = db.pool.acquire().await.expect("connection");
    let tx = store::get_transaction(&mut conn, id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(tx.status, TransactionStatus::Created);
    assert!(tx.flagged.is_some());
}

#[tokio::test]
async fn refunds_and_disputes_move_the_ledger_once_each() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("fred", "k", 1_000)).await;
    apply(&db, id, &Signal::Succeeded, Context::default()).await;
    for cumulative in [400, 400, 1_000] {
        apply(
            &db,
            id,
            &Signal::Refunded {
                amount_refunded: cumulative,
            },
            Context::default(),
        )
        .await;
    }
    assert_eq!(balance(&db, "fred").await, 0);
    let opened = Signal::DisputeOpened {
        dispute_id: "dp_1".into(),
        amount: 1_000,
    };
    let won = Signal::DisputeClosed {
        dispute_id: "dp_1".into(),
        amount: 1_000,
        won: true,
    };
    apply(&db, id, &opened, Context::default()).await;
    apply(&db, id, &opened, Context::default()).await;
    assert_eq!(balance(&db, "fred").await, -1_000);
    apply(&db, id, &won, Context::default()).await;
    assert_eq!(balance(&db, "fred").await, 0);
    let mut conn = db.pool.acquire().await.expect("connection");
    let tx = store::get_transaction(&mut conn, id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (tx.status, tx.amount_refunded),
        (TransactionStatus::Refunded, 1_000)
    );
}

fn validation(user_id: &str, fingerprint: &str) -> NewTransaction {
    NewTransaction {
        kind: TransactionKind::CardValidation,
        payment_method_id: Some(format!("pm_{user_id}")),
        card_fingerprint: Some(fingerprint.into()),
        trial_credit: Some(usd(2_500)),
        ..payment(user_id, &format!("trial-{fingerprint}"), 100)
    }
}

#[tokio::test]
async fn a_card_grants_one_trial_whoever_validates_it() {
    let db = TestDb::new().await;
    let first = insert(&db, &validation("gina", "fp_same")).await;
    let second = insert(&db, &validation("hank", "fp_same")).await;
    let (a, b) = tokio::join!(
        apply(&db, first, &Signal::Authorized, Context::default()),
        apply(&db, second, &Signal::Authorized, Context::default()),
    );
    assert!(matches!(a, Outcome::Applied(_)) && matches!(b, Outcome::Applied(_)));
    let total = balance(&db, "gina").await + balance(&db, "hank").await;
    assert_eq!(total, 2_500, "exactly one trial credit for one card");
    let mut conn = db.pool.acquire().await.expect("connection");
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    assert_eq!(
        outbox, 0,
        "no PaymentIntent recorded, so nothing to release"
    );
    let validated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment_methods WHERE validated_at IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .expect("count");
    assert_eq!(validated, 2);
}

#[tokio::test]
async fn a_top_up_ends_the_trial() {
    let db = TestDb::new().await;
    let v = insert(&db, &validation("ivy", "fp_ivy")).await;
    apply(&db, v, &Signal::Authorized, Context::default()).await;
    let p = insert(&db, &payment("ivy", "top-up", 1_000)).await;
    apply(&db, p, &Signal::Succeeded, Context::default()).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    let wallet = store::get_wallet(&mut conn, &user("ivy"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(wallet.balance, 3_500);
    assert_eq!(wallet.trial_state, store::TrialState::Ended);
}

#[tokio::test]
async fn the_ledger_check_reports_a_wallet_edited_by_hand() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("jack", "k", 700)).await;
    apply(&db, id, &Signal::Succeeded, Context::default()).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    sqlx::query("UPDATE wallets SET balance = 9999 WHERE user_id = 'jack'")
        .execute(&mut *conn)
        .await
        .expect("edit");
    let report = store::check_ledger(&mut conn).await.expect("check");
    assert_eq!(report.wallets_checked, 1);
    assert_eq!(report.mismatches.len(), 1);
    assert_eq!(
        (
            report.mismatches[0].balance,
            report.mismatches[0].ledger_sum
        ),
        (9999, 700)
    );
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
