//! Every authorization rule, end to end.

use payments_proto::payments::v1 as pb;
use serde_json::json;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::helpers::{
    JWT_SECRET, TOPUP, TestApp, as_user, assert_refused, service_token, token, with_token,
};

fn wallet_of(user: &str) -> pb::GetWalletRequest {
    pb::GetWalletRequest {
        user_id: user.into(),
    }
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_unauthenticated() {
    let app = TestApp::start().await;
    let mut client = app.client();
    let now = chrono::Utc::now().timestamp();
    assert_refused(
        client.get_wallet(Request::new(wallet_of("alice"))).await,
        Code::Unauthenticated,
        "TOKEN_MISSING",
    );
    let forged = token(json!({"sub": "alice", "exp": now + 3600}), "not-the-secret");
    assert_refused(
        client
            .get_wallet(with_token(&forged, wallet_of("alice")))
            .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    let expired = token(json!({"sub": "alice", "exp": now - 3600}), JWT_SECRET);
    assert_refused(
        client
            .get_wallet(with_token(&expired, wallet_of("alice")))
            .await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    let no_exp = token(json!({"sub": "alice"}), JWT_SECRET);
    assert_refused(
        client
            .get_wallet(with_token(&no_exp, wallet_of("alice")))
            .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    app.stop().await;
}

#[tokio::test]
async fn a_user_cannot_act_for_another_user_or_see_their_transactions() {
    let app = TestApp::start().await;
    let mut client = app.client();
    assert_refused(
        client
            .get_wallet(as_user("mallory", wallet_of("alice")))
            .await,
        Code::PermissionDenied,
        "USER_ID_MISMATCH",
    );
    let card = app.attach("alice", "pm_card_visa").await;
    let paid = app
        .create_payment("alice", &card.id, TOPUP, "auth-1")
        .await
        .expect("payment");
    let tx = paid.transaction.expect("transaction");
    let get = pb::GetTransactionRequest {
        transaction_id: tx.id.clone(),
    };
    let not_found = assert_refused(
        client
            .get_transaction(as_user("mallory", get.clone()))
            .await,
        Code::NotFound,
        "TRANSACTION_NOT_FOUND",
    );
    assert_eq!(
        not_found.message(),
        format!("transaction {} not found", tx.id),
        "another user's transaction reads exactly like a missing one"
    );
    let watch = pb::WatchTransactionRequest {
        transaction_id: tx.id.clone(),
        await_status: None,
    };
    assert_refused(
        client.watch_transaction(as_user("mallory", watch)).await,
        Code::NotFound,
        "TRANSACTION_NOT_FOUND",
    );
    let detach = pb::DetachPaymentMethodRequest {
        user_id: "mallory".into(),
        payment_method_id: card.id.clone(),
    };
    assert_refused(
        client
            .detach_payment_method(as_user("mallory", detach))
            .await,
        Code::NotFound,
        "PAYMENT_METHOD_NOT_FOUND",
    );
    app.stop().await;
}

#[tokio::test]
async fn a_service_token_acts_for_any_user() {
    let app = TestApp::start().await;
    let mut client = app.client();
    let card = app.attach("alice", "pm_card_visa").await;
    let paid = app
        .create_payment("alice", &card.id, TOPUP, "svc-1")
        .await
        .expect("payment");
    let id = paid.transaction.expect("transaction").id;
    let service = service_token();
    let wallet = client
        .get_wallet(with_token(&service, wallet_of("alice")))
        .await
        .expect("service reads alice's wallet")
        .into_inner();
    assert_eq!(wallet.user_id, "alice");
    let tx = client
        .get_transaction(with_token(
            &service,
            pb::GetTransactionRequest { transaction_id: id },
        ))
        .await
        .expect("service reads alice's transaction")
        .into_inner();
    assert_eq!(tx.user_id, "alice");
    assert_refused(
        client.get_wallet(with_token(&service, wallet_of(""))).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_arguments_name_the_field() {
    let app = TestApp::start().await;
    let mut client = app.client();
    let cases = [
        ("amount", 0, "usd", "pm_card_visa", "k"),
        ("currency", TOPUP, "USD", "pm_card_visa", "k"),
        ("currency", TOPUP, "eur", "pm_card_visa", "k"),
        ("payment_method_id", TOPUP, "usd", "card_123", "k"),
        ("idempotency_key", TOPUP, "usd", "pm_card_visa", ""),
    ];
    for (field, amount, currency, payment_method, key) in cases {
        let req = pb::CreatePaymentRequest {
            user_id: "alice".into(),
            payment_method_id: payment_method.into(),
            amount,
            currency: currency.into(),
            idempotency_key: key.into(),
        };
        let status = assert_refused(
            client.create_payment(as_user("alice", req)).await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        let details = status.get_error_details();
        let violations = details.bad_request().expect("BadRequest details");
        assert_eq!(violations.field_violations[0].field, field, "{status:?}");
    }
    let bad_id = pb::GetTransactionRequest {
        transaction_id: "42".into(),
    };
    let status = assert_refused(
        client.get_transaction(as_user("alice", bad_id)).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert!(status.message().contains("transaction_id"), "{status:?}");
    app.stop().await;
}
