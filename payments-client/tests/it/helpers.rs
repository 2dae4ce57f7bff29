//! Clients of the test system, and the payments the tests make.

use std::time::Duration;

use payments_client::{
    Connection, Endpoint, IdempotencyKey, PaymentsClient, RetryPolicy, SigningKey, Started, pb,
};
use payments_testkit::JWT_SECRET;

pub const TOPUP: i64 = 1_000;

pub fn signing_key() -> SigningKey {
    SigningKey::hs256(JWT_SECRET)
}

/// A client at `url` calling as `user`.
pub async fn client_as(url: &str, user: &str) -> PaymentsClient {
    Connection::connect(&Endpoint::new(url), signing_key().user(user))
        .await
        .expect("connect")
        .payments()
}

/// Retries quickly, so a test of giving up does not wait long.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

pub async fn attach(client: &PaymentsClient, user: &str, token: &str) -> pb::PaymentMethod {
    client
        .attach_payment_method(pb::AttachPaymentMethodRequest {
            user_id: user.into(),
            payment_method_id: token.into(),
        })
        .await
        .expect("attach")
}

pub fn top_up(user: &str, card: &str, key: &IdempotencyKey) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        user_id: user.into(),
        payment_method_id: card.into(),
        amount: TOPUP,
        currency: "usd".into(),
        idempotency_key: key.to_string(),
    }
}

/// `user`'s client, and a top-up they started with a new card from `card_token`.
pub async fn top_up_with(api: &str, user: &str, card_token: &str) -> (PaymentsClient, Started) {
    let client = client_as(api, user).await;
    let card = attach(&client, user, card_token).await;
    let started = client
        .create_payment(top_up(user, &card.id, &IdempotencyKey::new()))
        .await
        .expect("payment");
    (client, started)
}
