//! `await_transaction` and the reconnecting watch.

use payments_client::{ErrorReason, pb, pb::TransactionStatus as S};
use payments_testkit::System;
use tokio::sync::oneshot;

use crate::helpers::{TOPUP, client_as, top_up_with};

#[tokio::test]
async fn a_3ds_payment_is_awaited_through_its_challenge_to_the_settled_transaction() {
    let system = System::start().await;
    let (client, started) =
        top_up_with(&system.api_url(), "alice", "pm_card_threeDSecure2Required").await;
    let id = started.transaction.id.clone();

    let challenge = client
        .await_status(&id, S::RequiresAction)
        .await
        .expect("awaited");
    assert_eq!(challenge.status(), S::RequiresAction);
    let secret = started.client_secret.expect("3DS needs the client secret");
    let settled = tokio::spawn({
        let client = client.clone();
        let id = id.clone();
        async move { client.await_transaction(&id).await }
    });
    system
        .authenticate_3ds(&challenge.stripe_payment_intent_id, &secret, true)
        .await;
    let settled = settled.await.expect("no panic").expect("settled");
    assert_eq!(
        (settled.id.as_str(), settled.status()),
        (id.as_str(), S::Succeeded)
    );
    assert!(settled.version > challenge.version);
    assert_eq!(
        client.get_wallet("alice").await.expect("wallet").balance,
        TOPUP
    );
    system.stop().await;
}

#[tokio::test]
async fn a_watch_reconnects_across_a_payments_api_restart_without_repeating_a_version() {
    let mut system = System::start().await;
    let (client, started) =
        top_up_with(&system.api_url(), "alice", "pm_card_threeDSecure2Required").await;
    let mut watch = client.watch_transaction(&started.transaction.id, None);
    let (first_seen, first) = oneshot::channel();
    let watcher = tokio::spawn(async move {
        let mut seen: Vec<pb::Transaction> = Vec::new();
        let mut first_seen = Some(first_seen);
        while let Some(tx) = watch.next().await {
            seen.push(tx.expect("no error the watch cannot survive"));
            if let Some(tell) = first_seen.take() {
                let _ = tell.send(());
            }
        }
        (seen, watch.reconnects())
    });
    first.await.expect("the first message");

    // A deploy: the open stream ends with UNAVAILABLE, the address refuses for a while.
    system.restart_api().await;
    system
        .authenticate_3ds(
            &started.transaction.stripe_payment_intent_id,
            started.client_secret.as_deref().expect("client secret"),
            true,
        )
        .await;

    let (seen, reconnects) = watcher.await.expect("no panic");
    assert!(reconnects >= 1, "the stream was opened again");
    let statuses: Vec<S> = seen.iter().map(pb::Transaction::status).collect();
    // The new stream's snapshot repeats REQUIRES_ACTION's version: it is not delivered twice.
    assert_eq!(statuses, [S::RequiresAction, S::Succeeded]);
    assert!(
        seen.windows(2).all(|w| w[0].version < w[1].version),
        "{seen:?}"
    );
    system.stop().await;
}

#[tokio::test]
async fn another_users_transaction_is_not_found_at_once_rather_than_retried() {
    let system = System::start().await;
    let (_, started) = top_up_with(&system.api_url(), "alice", "pm_card_visa").await;
    let mallory = client_as(&system.api_url(), "mallory").await;
    let mut watch = mallory.watch_transaction(&started.transaction.id, None);
    let refused = watch.next().await.expect("an answer").expect_err("refused");
    assert_eq!(refused.code(), Some(tonic::Code::NotFound));
    assert_eq!(refused.reason(), Some(ErrorReason::TransactionNotFound));
    assert!(watch.next().await.is_none(), "the watch has ended");
    assert_eq!(watch.reconnects(), 0);
    system.stop().await;
}
