//! When Stripe cannot be reached or its answer is lost: the transaction waits in a
//! state a retry (or reconciliation) finishes, and retries never pay twice.

use std::time::Duration;

use futures::StreamExt;
use payments_proto::payments::v1::{self as pb, TransactionStatus as S};
use tonic::Code;

use crate::helpers::{TOPUP, TestApp, assert_refused};

async fn only_transaction(app: &TestApp, user: &str) -> pb::Transaction {
    let listed = app.transactions(user).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    listed.into_iter().next().expect("one")
}

#[tokio::test]
async fn stripe_unreachable_is_unavailable_and_the_retry_finishes_the_payment() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    app.sim.faults().scope("/v1/payment_intents").fail_next(1);
    let status = assert_refused(
        app.create_payment("alice", &card.id, TOPUP, "flaky").await,
        Code::Unavailable,
        "STRIPE_UNAVAILABLE",
    );
    assert!(status.message().contains("Stripe"), "{status:?}");
    let waiting = only_transaction(&app, "alice").await;
    assert_eq!(waiting.status, S::Created as i32);
    assert!(waiting.stripe_payment_intent_id.is_empty());

    let retried = app
        .create_payment("alice", &card.id, TOPUP, "flaky")
        .await
        .expect("the retry goes through");
    let tx = retried.transaction.expect("tx");
    assert_eq!(tx.id, waiting.id);
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    app.wait_for_balance("alice", TOPUP).await;
    assert_eq!(app.sim_list("payment_intents").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_lost_answer_is_replayed_by_the_retry_without_a_second_payment_intent() {
    let app = TestApp::start_with(|config| {
        config.stripe.timeout = Duration::from_millis(300);
    })
    .await;
    let card = app.attach("alice", "pm_card_visa").await;
    app.sim
        .faults()
        .scope("/v1/payment_intents")
        .delay_next(1, Duration::from_secs(1));
    assert_refused(
        app.create_payment("alice", &card.id, TOPUP, "lost").await,
        Code::Unavailable,
        "STRIPE_UNAVAILABLE",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let retried = app
        .create_payment("alice", &card.id, TOPUP, "lost")
        .await
        .expect("the retry goes through");
    let tx = retried.transaction.expect("tx");
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    app.wait_for_balance("alice", TOPUP).await;
    assert_eq!(app.sim_list("payment_intents").await.len(), 1);
    assert_eq!(app.sim_list("charges").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_watcher_sees_every_change_until_the_payment_settles() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_threeDSecure2Required").await;
    let paid = app
        .create_payment("alice", &card.id, TOPUP, "watched")
        .await
        .expect("payment");
    let tx = paid.transaction.expect("tx");
    let mut updates = app.watch("alice", &tx.id).await;
    let first = updates.next().await.expect("snapshot").expect("ok");
    assert_eq!(
        first.transaction.expect("tx").status,
        S::RequiresAction as i32
    );
    app.authenticate_3ds(&tx.stripe_payment_intent_id, &paid.client_secret, true)
        .await;
    let rest: Vec<pb::Transaction> = tokio::time::timeout(
        Duration::from_secs(15),
        updates
            .map(|u| u.expect("ok").transaction.expect("tx"))
            .collect(),
    )
    .await
    .expect("the stream ends once settled");
    let last = rest.last().expect("at least the settled version");
    assert_eq!(last.status, S::Succeeded as i32);
    assert!(
        rest.windows(2).all(|w| w[0].version < w[1].version),
        "{rest:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_payment_waiting_for_stripe_holds_no_row_lock() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    // Stripe runs the payment at once and holds its answer for 2 s; its webhooks are
    // refused meanwhile, so only the call itself could be holding the row.
    app.sim.set_webhook_secrets(vec!["whsec_not_ours"]);
    app.sim
        .faults()
        .scope("/v1/payment_intents")
        .delay_next(1, Duration::from_secs(2));
    let pool = sqlx::PgPool::connect(app.db_url()).await.expect("db");
    let answered = std::sync::atomic::AtomicBool::new(false);
    let call = async {
        let paid = app.create_payment("alice", &card.id, TOPUP, "held").await;
        answered.store(true, std::sync::atomic::Ordering::SeqCst);
        paid
    };
    let probe = async {
        // The row exists before Stripe is called; while Stripe holds the answer, it can
        // be locked at once by anybody else (the webhook path, the sweeper).
        let id: uuid::Uuid = loop {
            let row = sqlx::query_scalar("SELECT id FROM transactions WHERE user_id = 'alice'")
                .fetch_optional(&pool)
                .await
                .expect("read");
            if let Some(id) = row {
                break id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut db = pool.begin().await.expect("begin");
        sqlx::query("SELECT id FROM transactions WHERE id = $1 FOR UPDATE NOWAIT")
            .bind(id)
            .execute(&mut *db)
            .await
            .expect("not locked while Stripe answers");
        db.rollback().await.expect("rollback");
        assert!(
            !answered.load(std::sync::atomic::Ordering::SeqCst),
            "checked while the call was at Stripe"
        );
    };
    let (paid, ()) = tokio::join!(call, probe);
    let tx = paid.expect("payment").transaction.expect("tx");
    assert_eq!(tx.status, S::Pending as i32, "the answer recorded: {tx:?}");
    app.sim
        .set_webhook_secrets(vec![crate::helpers::WEBHOOK_SECRET]);
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    assert!(app.sim.wait_for_deliveries(Duration::from_secs(60)).await);
    assert_eq!(app.wallet("alice").await.balance, TOPUP);
    assert_eq!(app.sim_list("payment_intents").await.len(), 1);
    pool.close().await;
    app.stop().await;
}
