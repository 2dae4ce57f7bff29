//! payments-api's refusals as typed errors, with the ErrorInfo reason it sends.

use payments_client::{Error, ErrorReason, IdempotencyKey, pb};
use payments_testkit::System;
use tonic::Code;

use crate::helpers::{attach, client_as, top_up};

#[tokio::test]
async fn an_invalid_field_is_named_by_the_error() {
    let system = System::start().await;
    let client = client_as(&system.api_url(), "alice").await;
    let card = attach(&client, "alice", "pm_card_visa").await;
    let mut request = top_up("alice", &card.id, &IdempotencyKey::new());
    request.amount = -5;
    let error = client.create_payment(request).await.expect_err("refused");
    let Error::Rpc(rpc) = error else {
        panic!("expected a status, got {error:?}");
    };
    assert_eq!(rpc.code, Code::InvalidArgument);
    assert_eq!(rpc.reason(), Some(ErrorReason::InvalidField));
    let fields: Vec<&str> = rpc
        .field_violations
        .iter()
        .map(|(f, _)| f.as_str())
        .collect();
    assert_eq!(fields, ["amount"]);
    system.stop().await;
}

#[tokio::test]
async fn a_reused_key_with_other_parameters_says_so_and_what_changed() {
    let system = System::start().await;
    let client = client_as(&system.api_url(), "alice").await;
    let card = attach(&client, "alice", "pm_card_visa").await;
    let key = IdempotencyKey::new();
    client
        .create_payment(top_up("alice", &card.id, &key))
        .await
        .expect("first");
    let mut other = top_up("alice", &card.id, &key);
    other.amount += 100;
    let error = client.create_payment(other).await.expect_err("refused");
    assert_eq!(error.code(), Some(Code::FailedPrecondition), "{error:?}");
    assert_eq!(error.reason(), Some(ErrorReason::IdempotencyKeyReused));
    let Error::Rpc(rpc) = error else {
        unreachable!("a status");
    };
    let changed = rpc.detail.expect("ErrorInfo").metadata["changed"].clone();
    assert!(changed.contains("amount"), "{changed}");
    system.stop().await;
}

#[tokio::test]
async fn a_coupon_redeemed_twice_is_already_redeemed() {
    let system = System::start().await;
    let client = client_as(&system.api_url(), "alice").await;
    let code = system.create_coupon(500).await;
    let apply = || pb::ApplyCouponRequest {
        user_id: "alice".into(),
        code: code.clone(),
        idempotency_key: IdempotencyKey::new().into(),
    };
    let first = client.apply_coupon(apply()).await.expect("first");
    client
        .await_transaction(&first.transaction.id)
        .await
        .expect("settled");
    let again = client.apply_coupon(apply()).await.expect_err("refused");
    assert_eq!(again.code(), Some(Code::AlreadyExists));
    assert_eq!(again.reason(), Some(ErrorReason::CouponAlreadyRedeemed));
    system.stop().await;
}
