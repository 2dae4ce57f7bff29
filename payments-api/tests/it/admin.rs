//! PaymentsAdmin: service tokens only.

use payments_proto::payments::v1::{self as pb, payments_admin_client::PaymentsAdminClient};
use tonic::Code;

use crate::helpers::{TOPUP, TestApp, as_user, assert_code, service_token, with_token};

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

    let mut admin = PaymentsAdminClient::connect(format!("http://{}", app.addr))
        .await
        .expect("connect");
    assert_code(
        admin
            .check_ledger(as_user("alice", pb::CheckLedgerRequest {}))
            .await,
        Code::PermissionDenied,
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
    assert_code(
        admin
            .replay_event(with_token(
                &service_token(),
                pb::ReplayEventRequest {
                    event_id: "evt_unknown".into(),
                },
            ))
            .await,
        Code::NotFound,
    );
    app.stop().await;
}
