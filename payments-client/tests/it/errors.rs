//! payments-api's refusals as typed errors.

use payments_client::{Error, IdempotencyKey};
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
    let fields: Vec<&str> = rpc
        .field_violations
        .iter()
        .map(|(f, _)| f.as_str())
        .collect();
    assert_eq!(fields, ["amount"]);
    system.stop().await;
}

#[tokio::test]
async fn a_reused_key_with_other_parameters_is_a_failed_precondition() {
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
    system.stop().await;
}
