//! ValidatePaymentMethod and StartTrial.

use payments_proto::payments::v1::{TransactionKind as K, TransactionStatus as S, TrialState};
use tonic::Code;

use crate::helpers::{TestApp, assert_refused};

const TRIAL_CREDIT: i64 = 500;

#[tokio::test]
async fn a_card_is_validated_once_and_then_answered_without_a_new_charge() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    let (first, double_click) = tokio::join!(
        app.validate("alice", &card.id),
        app.validate("alice", &card.id)
    );
    let tx = first.expect("validate").transaction.expect("tx");
    assert_eq!(
        double_click.expect("validate").transaction.expect("tx").id,
        tx.id
    );
    assert_eq!(tx.kind, K::CardValidation as i32);
    assert_eq!(tx.amount, 100);
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    let wallet = app.wallet("alice").await;
    assert_eq!(wallet.balance, 0, "a validation moves no money");
    assert_eq!(wallet.validated_payment_methods.len(), 1);
    assert!(wallet.validated_payment_methods[0].validated);

    let again = app
        .validate("alice", &card.id)
        .await
        .expect("validate again");
    let again = again.transaction.expect("tx");
    assert_eq!(
        (again.id.as_str(), again.status),
        (tx.id.as_str(), S::Succeeded as i32)
    );
    assert_eq!(
        app.sim_list("payment_intents").await.len(),
        1,
        "no new hold"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_card_validation_with_3ds_succeeds_after_authentication() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_threeDSecure2Required").await;
    let answer = app.validate("alice", &card.id).await.expect("validate");
    let tx = answer.transaction.expect("tx");
    assert_eq!(tx.status, S::RequiresAction as i32);
    assert!(!answer.client_secret.is_empty());
    app.authenticate_3ds(&tx.stripe_payment_intent_id, &answer.client_secret, true)
        .await;
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    app.stop().await;
}

#[tokio::test]
async fn a_trial_is_granted_once_per_user_and_once_per_card() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    let started = app.start_trial("alice", &card.id).await.expect("trial");
    let tx = started.transaction.expect("tx");
    assert_eq!(tx.kind, K::CardValidation as i32);
    let wallet = started.wallet.expect("wallet");
    assert_eq!(wallet.currency, "usd");
    app.wait_for("alice", &tx.id, S::Succeeded).await;
    let wallet = app.wait_for_balance("alice", TRIAL_CREDIT).await;
    let trial = wallet.trial.expect("trial");
    assert_eq!(
        (trial.state, trial.credit),
        (TrialState::Active as i32, TRIAL_CREDIT)
    );

    let status = assert_refused(
        app.start_trial("alice", &card.id).await,
        Code::FailedPrecondition,
        "TRIAL_ALREADY_USED",
    );
    assert!(status.message().contains("trial"), "{status:?}");

    // The same card number under another user: refused before any charge.
    let same_card = app.attach("bob", "pm_card_visa").await;
    assert_eq!(same_card.fingerprint, card.fingerprint);
    let status = assert_refused(
        app.start_trial("bob", &same_card.id).await,
        Code::FailedPrecondition,
        "TRIAL_ALREADY_USED",
    );
    assert!(status.message().contains("card"), "{status:?}");
    assert_eq!(app.wallet("bob").await.balance, 0);
    app.stop().await;
}
