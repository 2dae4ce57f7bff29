//! UNAVAILABLE is retried with the same message, so a payment keeps its idempotency key
//! and its retry returns the transaction the first attempt created.

use std::time::{Duration, Instant};

use payments_client::{
    Connection, Endpoint, IdempotencyKey, RetryPolicy, pb, pb::TransactionStatus as S,
};
use payments_testkit::{System, sim_get};
use tonic::Code;

use crate::{
    helpers::{TOPUP, attach, client_as, quick_retries, signing_key, top_up},
    proxy::{Fate, Proxy},
};

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_key_and_pays_once() {
    let system = System::start().await;
    let proxy = Proxy::start(&system.api_url()).await;
    let client = client_as(&proxy.url(), "alice").await;
    let card = attach(&client, "alice", "pm_card_visa").await;
    proxy.plan("CreatePayment", [Fate::LoseAnswer]);

    let key = IdempotencyKey::new();
    let started = client
        .create_payment(top_up("alice", &card.id, &key))
        .await
        .expect("the retry gets the answer");

    let keys: Vec<String> = proxy
        .calls("CreatePayment")
        .iter()
        .map(|call| call.message::<pb::CreatePaymentRequest>().idempotency_key)
        .collect();
    assert_eq!(
        keys,
        [key.to_string(), key.to_string()],
        "two attempts, one key"
    );
    let listed = client
        .list_transactions(pb::ListTransactionsRequest {
            user_id: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .transactions;
    let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [started.transaction.id.as_str()], "one transaction");
    let settled = client
        .await_transaction(&started.transaction.id)
        .await
        .expect("settled");
    assert_eq!(settled.status(), S::Succeeded);
    assert_eq!(
        client.get_wallet("alice").await.expect("wallet").balance,
        TOPUP
    );
    let intents = sim_get(&system.sim, "payment_intents?limit=100").await;
    assert_eq!(
        intents["data"].as_array().map(Vec::len),
        Some(1),
        "one PaymentIntent"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_call_made_while_payments_api_restarts_goes_through_once_it_is_back() {
    let mut system = System::start().await;
    let connection = Connection::lazy(
        &Endpoint::new(system.api_url()),
        signing_key().user("alice"),
    )
    .expect("endpoint")
    .with_retry(RetryPolicy {
        max_attempts: 30,
        max_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    });
    let client = connection.payments();
    let card = attach(&client, "alice", "pm_card_visa").await;
    system.stop_api().await;

    let key = IdempotencyKey::new();
    let call = tokio::spawn({
        let (client, request) = (client.clone(), top_up("alice", &card.id, &key));
        async move { client.create_payment(request).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!call.is_finished(), "still retrying while nothing listens");
    system.resume_api().await;
    let started = call.await.expect("no panic").expect("answered once back");
    assert_eq!(started.transaction.amount, TOPUP);
    let again = client
        .create_payment(top_up("alice", &card.id, &key))
        .await
        .expect("same key");
    assert_eq!(again.transaction.id, started.transaction.id);
    system.stop().await;
}

#[tokio::test]
async fn a_retry_info_delay_is_waited_out_before_the_retry() {
    let system = System::start().await;
    let proxy = Proxy::start(&system.api_url()).await;
    let client = client_as(&proxy.url(), "alice").await;
    let asked = Duration::from_millis(800);
    proxy.plan("GetWallet", [Fate::Refuse(Some(asked))]);

    client.get_wallet("alice").await.expect("the retry answers");
    let calls = proxy.calls("GetWallet");
    assert_eq!(calls.len(), 2);
    let waited = calls[1].at - calls[0].at;
    // The backoff alone would have been at most 100 ms.
    assert!(waited >= asked, "waited {waited:?}");
    system.stop().await;
}

#[tokio::test]
async fn retries_are_bounded_and_the_last_status_is_returned() {
    let system = System::start().await;
    let proxy = Proxy::start(&system.api_url()).await;
    let connection = Connection::connect(&Endpoint::new(proxy.url()), signing_key().user("alice"))
        .await
        .expect("connect")
        .with_retry(quick_retries());
    proxy.plan("GetWallet", [Fate::Refuse(None); 10]);

    let started = Instant::now();
    let error = connection
        .payments()
        .get_wallet("alice")
        .await
        .expect_err("gives up");
    assert_eq!(error.code(), Some(Code::Unavailable));
    assert_eq!(proxy.calls("GetWallet").len(), 5, "max_attempts in all");
    assert!(started.elapsed() < Duration::from_secs(2));
    system.stop().await;
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let system = System::start().await;
    let proxy = Proxy::start(&system.api_url()).await;
    let client = client_as(&proxy.url(), "alice").await;
    let card = attach(&client, "alice", "pm_card_visa").await;
    let mut request = top_up("alice", &card.id, &IdempotencyKey::new());
    request.amount = 0;
    let error = client.create_payment(request).await.expect_err("refused");
    assert_eq!(error.code(), Some(Code::InvalidArgument));
    assert_eq!(proxy.calls("CreatePayment").len(), 1);
    system.stop().await;
}
