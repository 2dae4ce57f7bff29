//! What the store and settle tests share: typed helpers over a fresh database.
// Each test file uses its own part of these.
#![allow(dead_code)]

use payments_core::{
    Currency, Money, Signal, Transaction, TransactionId, TransactionKind, UserId,
    settle::{self, Cause, Context, Outcome},
    store::{self, Inserted, NewTransaction},
    testing::TestDb,
};

pub fn user(name: &str) -> UserId {
    UserId::parse(name).expect("valid user id")
}

pub fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD).expect("positive")
}

pub fn payment(user_id: &str, key: &str, amount: i64) -> NewTransaction {
    NewTransaction {
        user_id: user(user_id),
        kind: TransactionKind::Payment,
        amount: usd(amount),
        payment_method_id: Some("pm_card".into()),
        coupon_code: None,
        card_fingerprint: None,
        trial_credit: None,
        idempotency_key: key.into(),
        request_fingerprint: format!("amount={amount}"),
    }
}

pub async fn insert(db: &TestDb, new: &NewTransaction) -> TransactionId {
    let mut conn = db.pool.acquire().await.expect("connection");
    match store::insert_transaction(&mut conn, new)
        .await
        .expect("insert")
    {
        Inserted::New(tx) | Inserted::Existing(tx) => tx.id,
    }
}

pub async fn apply(
    db: &TestDb,
    id: TransactionId,
    signal: &Signal,
    context: Context<'_>,
) -> Outcome {
    let mut tx = db.pool.begin().await.expect("begin");
    let current = store::lock_transaction(&mut tx, id)
        .await
        .expect("lock")
        .expect("exists");
    let outcome = settle::apply(
        &mut tx,
        &current,
        signal,
        Cause::StripeEvent("evt_test"),
        context,
    )
    .await
    .expect("apply");
    tx.commit().await.expect("commit");
    outcome
}

pub async fn read(db: &TestDb, id: TransactionId) -> Transaction {
    let mut conn = db.pool.acquire().await.expect("connection");
    let tx = store::get_transaction(&mut conn, id).await.expect("read");
    tx.expect("exists")
}

pub async fn balance(db: &TestDb, user_id: &str) -> i64 {
    let mut conn = db.pool.acquire().await.expect("connection");
    store::get_wallet(&mut conn, &user(user_id))
        .await
        .expect("wallet")
        .map_or(0, |w| w.balance)
}

pub fn validation(user_id: &str, fingerprint: &str) -> NewTransaction {
    NewTransaction {
        kind: TransactionKind::CardValidation,
        payment_method_id: Some(format!("pm_{user_id}")),
        card_fingerprint: Some(fingerprint.into()),
        trial_credit: Some(usd(2_500)),
        ..payment(user_id, &format!("trial-{fingerprint}"), 100)
    }
}
