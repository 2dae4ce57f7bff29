//! CreatePayment end to end: the ingestor settles what Stripe reports.

use futures::{StreamExt, future::join_all};
use payments_proto::payments::v1::{self as pb, TransactionStatus as S};
use tonic::Code;

use crate::helpers::{TOPUP, TestApp, as_user, assert_refused};

#[tokio::test]
async fn a_payment_without_3ds_succeeds_and_credits_the_wallet() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    let paid = app
        .create_payment("alice", &card.id, TOPUP, "topup-1")
        .await
        .expect("payment");
    let tx = paid.transaction.expect("transaction");
    assert!(paid.client_secret.is_empty(), "no action needed");
    assert!(
        [S::Pending as i32, S::Succeeded as i32].contains(&tx.status),
        "{tx:?}"
    );
    assert!(tx.stripe_payment_intent_id.starts_with("pi_"));
    let done = app.wait_for("alice", &tx.id, S::Succeeded).await;
    assert_eq!((done.amount, done.currency.as_str()), (TOPUP, "usd"));
    app.wait_for_balance("alice", TOPUP).await;

    let mut updates = app.watch("alice", &tx.id).await;
    let first = updates.next().await.expect("a snapshot").expect("ok");
    assert_eq!(first.transaction.expect("tx").status, S::Succeeded as i32);
    assert!(
        updates.next().await.is_none(),
        "a settled transaction's stream ends"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_payment_with_3ds_succeeds_once_the_customer_authenticates() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_threeDSecure2Required").await;
    let paid = app
        .create_payment("alice", &card.id, TOPUP, "3ds-ok")
        .await
        .expect("payment");
    let tx = paid.transaction.expect("transaction");
    assert_eq!(tx.status, S::RequiresAction as i32, "{tx:?}");
    assert!(!paid.client_secret.is_empty());
    app.authenticate_3ds(&tx.stripe_payment_intent_id, &paid.client_secret, true)
        .await;
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    app.wait_for_balance("alice", TOPUP).await;
    app.stop().await;
}

#[tokio::test]
async fn a_payment_whose_3ds_fails_is_failed_and_credits_nothing() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_threeDSecure2Required").await;
    let paid = app
        .create_payment("alice", &card.id, TOPUP, "3ds-fail")
        .await
        .expect("payment");
    let tx = paid.transaction.expect("transaction");
    app.authenticate_3ds(&tx.stripe_payment_intent_id, &paid.client_secret, false)
        .await;
    let failed = app.wait_for("alice", &tx.id, S::Failed).await;
    assert!(!failed.failure_code.is_empty(), "{failed:?}");
    assert_eq!(app.wallet("alice").await.balance, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_declined_card_answers_with_a_failed_transaction_and_the_decline_code() {
    let app = TestApp::start().await;
    for (token, code) in [
        ("pm_card_chargeDeclined", "generic_decline"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
        ),
    ] {
        let card = app.attach("alice", token).await;
        let paid = app
            .create_payment("alice", &card.id, TOPUP, token)
            .await
            .expect("a decline is an answer, not an error");
        let tx = paid.transaction.expect("transaction");
        assert_eq!(tx.status, S::Failed as i32, "{tx:?}");
        assert_eq!(tx.failure_code, code);
        assert!(!tx.failure_message.is_empty());
    }
    assert_eq!(app.wallet("alice").await.balance, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_same_payment_sent_five_times_at_once_charges_and_credits_once() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    let calls = (0..5).map(|_| app.create_payment("alice", &card.id, TOPUP, "double-click"));
    let answers = join_all(calls).await;
    let ids: Vec<String> = answers
        .into_iter()
        .map(|a| a.expect("payment").transaction.expect("tx").id)
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    app.wait_for("alice", &ids[0], S::Succeeded).await;
    app.wait_for_balance("alice", TOPUP).await;
    assert_eq!(app.sim_list("payment_intents").await.len(), 1);
    assert_eq!(app.sim_list("charges").await.len(), 1);
    // Late duplicates have had time to arrive; still one credit.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.wallet("alice").await.balance, TOPUP);
    app.stop().await;
}

#[tokio::test]
async fn a_reused_idempotency_key_with_other_parameters_is_refused() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    let first = app
        .create_payment("alice", &card.id, TOPUP, "reused")
        .await
        .expect("payment");
    let again = app
        .create_payment("alice", &card.id, TOPUP, "reused")
        .await
        .expect("same request, same answer");
    assert_eq!(
        first.transaction.map(|t| t.id),
        again.transaction.map(|t| t.id)
    );
    let status = assert_refused(
        app.create_payment("alice", &card.id, TOPUP * 2, "reused")
            .await,
        Code::FailedPrecondition,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert!(status.message().contains("amount"), "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_card_that_is_not_the_users_cannot_pay() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    assert_refused(
        app.create_payment("bob", &card.id, TOPUP, "steal").await,
        Code::NotFound,
        "PAYMENT_METHOD_NOT_FOUND",
    );
    assert_refused(
        app.create_payment("bob", "pm_card_visa", TOPUP, "raw-token")
            .await,
        Code::NotFound,
        "PAYMENT_METHOD_NOT_FOUND",
    );
    app.stop().await;
}

#[tokio::test]
async fn transactions_are_listed_newest_first_a_page_at_a_time() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_chargeDeclined").await;
    let mut created = Vec::new();
    for key in ["a", "b", "c"] {
        let paid = app.create_payment("alice", &card.id, TOPUP, key).await;
        created.push(paid.expect("payment").transaction.expect("tx").id);
    }
    created.reverse();
    let page = |token: &str| pb::ListTransactionsRequest {
        user_id: "alice".into(),
        page_size: 2,
        page_token: token.into(),
    };
    let first = app
        .client()
        .list_transactions(as_user("alice", page("")))
        .await
        .expect("page 1")
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let second = app
        .client()
        .list_transactions(as_user("alice", page(&first.next_page_token)))
        .await
        .expect("page 2")
        .into_inner();
    assert!(second.next_page_token.is_empty());
    let listed: Vec<String> = first
        .transactions
        .iter()
        .chain(&second.transactions)
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(listed, created);
    let status = assert_refused(
        app.client()
            .list_transactions(as_user("alice", page("garbage!")))
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert!(status.message().contains("page_token"), "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn amounts_above_the_ceiling_are_refused_before_anything_is_charged() {
    // Stripe's own ceiling by default, or lower by configuration.
    let app = TestApp::start_with(|config| config.wallet.max_amount = 50_000).await;
    let card = app.attach("alice", "pm_card_visa").await;
    for (i, amount) in [50_001, 100_000_000, 1 << 62].into_iter().enumerate() {
        let status = assert_refused(
            app.create_payment("alice", &card.id, amount, &format!("big-{i}"))
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        let details = tonic_types::StatusExt::get_error_details(&status);
        let violations = details.bad_request().expect("BadRequest details");
        assert_eq!(violations.field_violations[0].field, "amount", "{status:?}");
        assert!(status.message().contains("at most 50000"), "{status:?}");
    }
    assert!(app.transactions("alice").await.is_empty());
    assert!(app.sim_list("payment_intents").await.is_empty());
    let paid = app
        .create_payment("alice", &card.id, 50_000, "at-the-ceiling")
        .await;
    let tx = paid
        .expect("the ceiling itself is fine")
        .transaction
        .expect("tx");
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    app.stop().await;
}
