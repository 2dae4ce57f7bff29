//! The settle path and the ledger against a real PostgreSQL, a fresh database per
//! test: every movement of money happens once, in the wallet's currency.

mod support;

use futures::future::join_all;
use payments_core::{
    Currency, Refund, Signal, TransactionStatus, UNEXPLAINED_FAILURE,
    settle::{Context, Outcome},
    store::{self, Movement, MovementKind, StoreError},
    testing::TestDb,
};
use support::{apply, balance, insert, payment, read, usd, user, validation};

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
        address: None,
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

fn refund(id: &str, amount: i64, failed: bool) -> Signal {
    Signal::Refunded {
        refunds: vec![Refund {
            id: id.into(),
            amount,
            failed,
        }],
        amount_refunded: None,
    }
}

fn dispute(id: &str, amount: i64, withdrawn: bool, reinstated: bool) -> Signal {
    Signal::Dispute {
        dispute_id: id.into(),
        amount,
        withdrawn,
        reinstated,
    }
}

#[tokio::test]
async fn refunds_and_disputes_move_the_ledger_once_each() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("fred", "k", 1_000)).await;
    apply(&db, id, &Signal::Succeeded, Context::default()).await;
    for signal in [
        refund("re_1", 400, false),
        refund("re_1", 400, false),
        refund("re_2", 600, false),
    ] {
        apply(&db, id, &signal, Context::default()).await;
    }
    assert_eq!(balance(&db, "fred").await, 0);
    let withdrawn = dispute("dp_1", 1_000, true, false);
    let won = dispute("dp_1", 1_000, true, true);
    apply(&db, id, &withdrawn, Context::default()).await;
    apply(&db, id, &withdrawn, Context::default()).await;
    assert_eq!(balance(&db, "fred").await, -1_000);
    apply(&db, id, &won, Context::default()).await;
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

#[tokio::test]
async fn a_failed_refund_is_given_back_once_and_the_status_returns_to_succeeded() {
    let db = TestDb::new().await;
    let id = insert(&db, &payment("gus", "k", 1_000)).await;
    apply(&db, id, &Signal::Succeeded, Context::default()).await;
    apply(&db, id, &refund("re_1", 1_000, false), Context::default()).await;
    for _ in 0..2 {
        apply(&db, id, &refund("re_1", 1_000, true), Context::default()).await;
    }
    assert_eq!(balance(&db, "gus").await, 1_000);
    apply(&db, id, &refund("re_2", 250, false), Context::default()).await;
    assert_eq!(balance(&db, "gus").await, 750);
    let mut conn = db.pool.acquire().await.expect("connection");
    let tx = store::get_transaction(&mut conn, id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (tx.status, tx.amount_refunded),
        (TransactionStatus::Succeeded, 250)
    );
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
    // The database refuses the edit; a superuser who turns the triggers off does not.
    let edit = "UPDATE wallets SET balance = 9999 WHERE user_id = 'jack'";
    let refused = sqlx::query(edit).execute(&mut *conn).await;
    assert!(refused.is_err(), "{refused:?}");
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .expect("triggers off");
    sqlx::query(edit).execute(&mut *conn).await.expect("edit");
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
    let audit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(db)));
    let finding = audit.expect_err("the harness's check after the test refuses the edit");
    let message = finding
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        message.contains("wallet jack holds 9999 but its ledger sums to 700"),
        "{message}"
    );
}

#[tokio::test]
async fn the_real_reason_of_a_failure_replaces_an_unexplained_one_whichever_arrives_first() {
    let db = TestDb::new().await;
    let failure = |code: &str, message: &str| Signal::Failed {
        code: code.into(),
        message: message.into(),
    };
    let unexplained = failure(UNEXPLAINED_FAILURE, "The payment failed.");
    let declined = failure("insufficient_funds", "Your card has insufficient funds.");

    // The event that could not say why first, then the reason (the request's answer,
    // or the invoice's payment read back).
    let id = insert(&db, &payment("dora", "generic-first", 700)).await;
    apply(&db, id, &unexplained, Context::default()).await;
    let before = read(&db, id).await;
    let outcome = apply(&db, id, &declined, Context::default()).await;
    assert!(matches!(outcome, Outcome::Applied(_)), "{outcome:?}");
    let after = read(&db, id).await;
    assert_eq!(after.status, TransactionStatus::Failed);
    assert_eq!(after.failure_code.as_deref(), Some("insufficient_funds"));
    assert!(after.version > before.version, "the doorbell rings");
    let trail: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transaction_transitions \
         WHERE transaction_id = $1 AND from_status = 'failed' AND to_status = 'failed'",
    )
    .bind(id.as_uuid())
    .fetch_one(&db.pool)
    .await
    .expect("audit trail");
    assert_eq!(trail, 1);

    // The reason first: the unexplained failure arriving later replaces nothing.
    let id = insert(&db, &payment("dora", "reason-first", 700)).await;
    apply(&db, id, &declined, Context::default()).await;
    let outcome = apply(&db, id, &unexplained, Context::default()).await;
    assert_eq!(outcome, Outcome::Stale);
    let after = read(&db, id).await;
    assert_eq!(after.failure_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(balance(&db, "dora").await, 0);
}
