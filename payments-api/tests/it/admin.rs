//! PaymentsAdmin: service tokens only.

use std::time::Duration;

use payments_proto::payments::v1::{self as pb, payments_admin_client::PaymentsAdminClient};
use tonic::Code;

use crate::helpers::{TOPUP, TestApp, as_user, assert_refused, service_token, with_token};

#[tokio::test]
async fn operator_rpcs_need_a_service_token_and_report_the_ledger() {
    let app = TestApp::start().await;
    let card = app.attach("alice", "pm_card_visa").await;
    let paid = app
        .create_payment("alice", &card.id, TOPUP, "ledger")
        .await
        .expect("payment");
    let id = paid.transaction.expect("tx").id;
    app.wait_for("alice", &id, pb::TransactionStatus::Succeeded)
        .await;
    app.wait_for_balance("alice", TOPUP).await;

    let mut admin = PaymentsAdminClient::connect(format!("http://{}", app.admin_addr))
        .await
        .expect("connect");
    assert_refused(
        admin
            .check_ledger(as_user("alice", pb::CheckLedgerRequest {}))
            .await,
        Code::PermissionDenied,
        "SERVICE_TOKEN_REQUIRED",
    );
    let report = admin
        .check_ledger(with_token(&service_token(), pb::CheckLedgerRequest {}))
        .await
        .expect("check ledger")
        .into_inner();
    assert_eq!(report.wallets_checked, 1);
    assert!(report.mismatches.is_empty(), "{report:?}");
    let dead = admin
        .list_dead_events(with_token(
            &service_token(),
            pb::ListDeadEventsRequest { page_size: 0 },
        ))
        .await
        .expect("list dead events")
        .into_inner();
    assert!(dead.events.is_empty());
    assert_refused(
        admin
            .replay_event(with_token(
                &service_token(),
                pb::ReplayEventRequest {
                    event_id: "evt_unknown".into(),
                },
            ))
            .await,
        Code::NotFound,
        "EVENT_NOT_FOUND",
    );
    app.stop().await;
}

fn admin_request<T>(message: T) -> tonic::Request<T> {
    with_token(&service_token(), message)
}

async fn admin(app: &TestApp) -> PaymentsAdminClient<tonic::transport::Channel> {
    PaymentsAdminClient::connect(format!("http://{}", app.admin_addr))
        .await
        .expect("connect")
}

/// A payment that succeeded at Stripe while every webhook was refused (wrong secret):
/// our row stays pending until something else tells us.
async fn payment_with_lost_webhooks(app: &TestApp, user: &str, key: &str) -> pb::Transaction {
    let card = app.attach(user, "pm_card_visa").await;
    let created = app
        .create_payment(user, &card.id, TOPUP, key)
        .await
        .expect("payment")
        .transaction
        .expect("transaction");
    let tx = app.transaction(user, &created.id).await;
    assert_eq!(tx.status, pb::TransactionStatus::Pending as i32, "{tx:?}");
    tx
}

/// ReconcileTransaction for one transaction id.
async fn reconcile(
    admin: &mut PaymentsAdminClient<tonic::transport::Channel>,
    transaction_id: &str,
) -> Result<tonic::Response<pb::Transaction>, tonic::Status> {
    admin
        .reconcile_transaction(admin_request(pb::ReconcileTransactionRequest {
            transaction_id: transaction_id.into(),
        }))
        .await
}

async fn assert_ledger_clean(admin: &mut PaymentsAdminClient<tonic::transport::Channel>) {
    let report = admin
        .check_ledger(admin_request(pb::CheckLedgerRequest {}))
        .await
        .expect("check ledger")
        .into_inner();
    assert!(report.mismatches.is_empty(), "{report:?}");
}

#[tokio::test]
async fn reconcile_transaction_applies_what_stripe_says_and_the_late_webhook_changes_nothing() {
    let app = TestApp::start().await;
    let mut admin = admin(&app).await;
    app.sim.set_webhook_secrets(vec!["whsec_not_ours"]);
    let tx = payment_with_lost_webhooks(&app, "alice", "reconcile").await;

    assert_refused(
        admin
            .reconcile_transaction(as_user(
                "alice",
                pb::ReconcileTransactionRequest {
                    transaction_id: tx.id.clone(),
                },
            ))
            .await,
        Code::PermissionDenied,
        "SERVICE_TOKEN_REQUIRED",
    );
    let bad = assert_refused(
        reconcile(&mut admin, "not-a-uuid").await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert!(bad.message().contains("transaction_id"), "{bad:?}");
    assert_refused(
        reconcile(&mut admin, &uuid::Uuid::new_v4().to_string()).await,
        Code::NotFound,
        "TRANSACTION_NOT_FOUND",
    );

    let reconciled = reconcile(&mut admin, &tx.id)
        .await
        .expect("reconcile")
        .into_inner();
    assert_eq!(reconciled.status, pb::TransactionStatus::Succeeded as i32);
    assert_eq!(app.wallet("alice").await.balance, TOPUP);

    // Reconciling again, then the webhooks finally arriving, credit nothing more.
    reconcile(&mut admin, &tx.id)
        .await
        .expect("reconcile again");
    app.sim
        .set_webhook_secrets(vec![crate::helpers::WEBHOOK_SECRET]);
    assert!(app.sim.wait_for_deliveries(Duration::from_secs(60)).await);
    assert_eq!(app.wallet("alice").await.balance, TOPUP);
    assert_ledger_clean(&mut admin).await;
    app.stop().await;
}

#[tokio::test]
async fn replay_event_applies_a_dead_event_at_once_and_only_once() {
    let app = TestApp::start().await;
    let mut admin = admin(&app).await;
    app.sim.set_webhook_secrets(vec!["whsec_not_ours"]);
    let tx = payment_with_lost_webhooks(&app, "bob", "replay").await;

    // The success event, stored and dead-lettered as if its budget had run out.
    let pi = app
        .sim_list("payment_intents")
        .await
        .into_iter()
        .find(|pi| pi["metadata"]["transaction_id"] == tx.id.as_str())
        .expect("the PaymentIntent");
    let payload = app
        .sim
        .events()
        .into_iter()
        .find(|e| e["type"] == "payment_intent.succeeded" && e["data"]["object"]["id"] == pi["id"])
        .expect("the success event");
    let event = payments_core::StripeEvent::from_value(payload).expect("an event");
    // Stored dead-lettered, so no worker ever sees it pending.
    let pool = sqlx::PgPool::connect(app.db_url()).await.expect("db");
    let mut conn = pool.acquire().await.expect("connection");
    let dead = payments_core::store::EventOutcome {
        state: payments_core::store::EventState::Dead,
        transaction_id: None,
        error: Some("retry budget spent"),
        next_attempt_at: None,
        count_attempt: true,
    };
    payments_core::store::insert_event(
        &mut conn,
        &event,
        payments_core::store::EventSource::Webhook,
        &dead,
    )
    .await
    .expect("stored");
    let dead = admin
        .list_dead_events(admin_request(pb::ListDeadEventsRequest { page_size: 10 }))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(dead.events.len(), 1);

    let replayed = admin
        .replay_event(admin_request(pb::ReplayEventRequest {
            event_id: event.id.as_str().into(),
        }))
        .await
        .expect("replay")
        .into_inner()
        .event
        .expect("event");
    assert_eq!(replayed.state, "applied");
    assert_eq!(replayed.transaction_id, tx.id);
    // Applied by the RPC itself: no worker pass was waited for.
    let now = app.transaction("bob", &tx.id).await;
    assert_eq!(now.status, pb::TransactionStatus::Succeeded as i32);
    assert_eq!(app.wallet("bob").await.balance, TOPUP);

    // Replaying an applied event is harmless.
    let again = admin
        .replay_event(admin_request(pb::ReplayEventRequest {
            event_id: event.id.as_str().into(),
        }))
        .await
        .expect("replay again")
        .into_inner()
        .event
        .expect("event");
    assert_eq!(again.state, "stale");
    app.sim
        .set_webhook_secrets(vec![crate::helpers::WEBHOOK_SECRET]);
    assert!(app.sim.wait_for_deliveries(Duration::from_secs(60)).await);
    assert_eq!(app.wallet("bob").await.balance, TOPUP);
    let dead = admin
        .list_dead_events(admin_request(pb::ListDeadEventsRequest { page_size: 10 }))
        .await
        .expect("list")
        .into_inner();
    assert!(dead.events.is_empty(), "{dead:?}");
    assert_ledger_clean(&mut admin).await;
    app.stop().await;
}

#[tokio::test]
async fn reconcile_transaction_finds_a_payment_whose_answer_was_lost() {
    let app = TestApp::start_with(|c| c.stripe.timeout = Duration::from_millis(300)).await;
    let mut admin = admin(&app).await;
    app.sim.set_webhook_secrets(vec!["whsec_not_ours"]);
    let card = app.attach("carol", "pm_card_visa").await;
    // Stripe creates and charges the PaymentIntent, but its answer comes too late.
    app.sim
        .faults()
        .scope("/v1/payment_intents")
        .delay_next(1, Duration::from_secs(1));
    let lost = app
        .create_payment("carol", &card.id, TOPUP, "answer-lost")
        .await;
    assert_refused(lost, Code::Unavailable, "STRIPE_UNAVAILABLE");
    let pis = app.sim_list("payment_intents").await;
    assert_eq!(pis.len(), 1);
    let tx = app
        .transactions("carol")
        .await
        .first()
        .expect("the transaction")
        .clone();
    assert_eq!(tx.status, pb::TransactionStatus::Created as i32);
    assert!(tx.stripe_payment_intent_id.is_empty(), "{tx:?}");

    let reconciled = reconcile(&mut admin, &tx.id)
        .await
        .expect("reconcile")
        .into_inner();
    assert_eq!(reconciled.status, pb::TransactionStatus::Succeeded as i32);
    assert_eq!(
        reconciled.stripe_payment_intent_id,
        pis[0]["id"].as_str().unwrap_or_default()
    );
    assert_eq!(app.wallet("carol").await.balance, TOPUP);

    // A transaction Stripe never saw is left alone, with a reason.
    app.sim.faults().scope("/v1/payment_intents").fail_next(1);
    let never = app
        .create_payment("carol", &card.id, TOPUP, "never-reached")
        .await;
    assert_refused(never, Code::Unavailable, "STRIPE_UNAVAILABLE");
    let listed = app.transactions("carol").await;
    let unseen = listed
        .iter()
        .find(|t| t.id != tx.id)
        .expect("the second transaction");
    let refused = assert_refused(
        reconcile(&mut admin, &unseen.id).await,
        Code::FailedPrecondition,
        "STRIPE_OBJECT_MISSING",
    );
    assert!(refused.message().contains("never reached"), "{refused:?}");
    assert_ledger_clean(&mut admin).await;
    app.stop().await;
}
