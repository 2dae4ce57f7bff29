//! Group commit: concurrent webhooks share database transactions, and each is still
//! answered only after the commit that stored it.

use futures::future::join_all;
use payments_core::TransactionStatus as Status;
use webhook_ingestor::config::GroupCommitConfig;

use crate::{
    events::Pi,
    helpers::{Result, TestApp, eventually},
};

const EVENTS: usize = 120;

async fn start() -> Result<TestApp> {
    TestApp::start_with(|config| {
        config.db_max_connections = 4;
        config.group_commit = GroupCommitConfig {
            max_events: 32,
            committers: 2,
        };
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_webhooks_commit_together_and_each_credits_once() -> Result {
    let app = start().await?;
    let mut events = Vec::new();
    let mut payments = Vec::new();
    for i in 0..EVENTS {
        let user = format!("group-{i}");
        let pi = format!("pi_group_{i}");
        let tx = app.payment(&user, 100 + i as i64, &pi).await?;
        events.push(
            Pi {
                id: &pi,
                tx: Some(tx.id),
                amount: 100 + i as i64,
                currency: "usd",
            }
            .succeeded(),
        );
        payments.push((user, tx));
    }
    // Every event twice, all at once: the second copy of each is a duplicate whether it
    // lands in the same group as the first or in another one.
    let deliveries = events.iter().chain(events.iter()).map(|e| app.deliver(e));
    let answers = join_all(deliveries).await;
    let mut stored = 0;
    let mut duplicate = 0;
    for answer in answers {
        match answer?.as_str() {
            "stored" => stored += 1,
            "duplicate" => duplicate += 1,
            other => panic!("unexpected answer {other}"),
        }
    }
    assert_eq!((stored, duplicate), (EVENTS, EVENTS));

    // Answered means committed: every credit is there the moment the answers are in.
    for (i, (user, tx)) in payments.iter().enumerate() {
        assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
        assert_eq!(app.balance(user).await?, 100 + i as i64);
        assert_eq!(app.ledger_entries(tx.id).await?.len(), 1);
    }
    let (commits, carried) = app.metrics.group_commits();
    assert_eq!(carried, 2 * EVENTS as u64);
    assert!(
        commits < carried,
        "{commits} commits for {carried} webhooks: nothing was grouped"
    );
    app.app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_fails_in_a_group_does_not_take_the_others_down() -> Result {
    let app = start().await?;
    app.payment("taken", 300, "pi_taken").await?;
    // This event claims a PaymentIntent already recorded on another transaction:
    // recording it violates a unique constraint and aborts its database transaction.
    let other = app
        .insert(&crate::helpers::NewTx::payment("claimant", 300))
        .await?;
    // Its customer matches, so the PaymentIntent is adopted, and recording it fails.
    app.customer("claimant", "cus_test").await?;
    let failing = Pi {
        id: "pi_taken",
        tx: Some(other.id),
        amount: 300,
        currency: "usd",
    }
    .succeeded();
    let mut good = Vec::new();
    for i in 0..20 {
        let user = format!("bystander-{i}");
        let pi = format!("pi_bystander_{i}");
        let tx = app.payment(&user, 500, &pi).await?;
        let event = Pi {
            id: &pi,
            tx: Some(tx.id),
            amount: 500,
            currency: "usd",
        }
        .succeeded();
        good.push((user, tx, event));
    }
    let deliveries = good
        .iter()
        .map(|(_, _, e)| e)
        .chain(std::iter::once(&failing))
        .map(|e| app.deliver(e));
    for answer in join_all(deliveries).await {
        assert_eq!(answer?, "stored");
    }
    for (user, tx, _) in &good {
        assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
        assert_eq!(app.balance(user).await?, 500);
    }
    // The failing one is kept for the retry worker, not credited.
    let id = failing["id"].as_str().unwrap_or_default().to_owned();
    let (state, _, why) = app.event_row(&id).await?.unwrap_or_default();
    assert!(state == "received" || state == "dead", "{state}");
    assert!(why.is_some_and(|w| w.contains("conflict")));
    eventually("the failing event is dead-lettered", || async {
        Ok(app.event_state(&id).await? == "dead")
    })
    .await?;
    assert_eq!(app.balance("claimant").await?, 0);
    app.app.stop().await?;
    Ok(())
}
