//! Group commit: concurrent webhooks share database transactions, and each is still
//! answered only after the commit that stored it.

use std::time::Duration;

use futures::future::join_all;
use payments_core::{
    RetryPolicy, StripeEvent, StripeMode, TransactionId, TransactionStatus as Status,
    inbox::{self, Received, Rules},
    store::{ConnectionCache, Doorbell, EventSource},
};
use webhook_ingestor::config::GroupCommitConfig;

use crate::{
    events::{Pi, event_id},
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

/// The group's database work straight, without HTTP, so a test decides what shares a
/// batch: `events` in one `receive_batch`.
async fn in_one_batch(app: &TestApp, events: &[&serde_json::Value]) -> Result<Vec<Received>> {
    let cache = ConnectionCache::new(app.pool().clone(), 1, Duration::from_secs(60));
    let parsed = events
        .iter()
        .map(|e| StripeEvent::from_value((*e).clone()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch: Vec<_> = parsed.iter().map(|e| (e, EventSource::Webhook)).collect();
    let rules = Rules {
        retry: RetryPolicy::DEFAULT,
        mode: StripeMode::Test,
    };
    Ok(inbox::receive_batch(&cache, &batch, &rules, &Doorbell::in_commit()).await?)
}

fn stored(received: &[Received]) -> Vec<bool> {
    received
        .iter()
        .map(|r| matches!(r, Received::Stored(_)))
        .collect()
}

/// (from, to) of each status change of `tx`, in order.
async fn transitions(app: &TestApp, tx: TransactionId) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT from_status::text, to_status::text FROM transaction_transitions \
         WHERE transaction_id = $1 ORDER BY version",
    )
    .bind(tx.as_uuid())
    .fetch_all(app.pool())
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stores_each_new_event_once_as_a_lone_delivery_would() -> Result {
    let app = start().await?;
    let mut txs = Vec::new();
    let mut events = Vec::new();
    for i in 0..3 {
        let pi = format!("pi_rows_{i}");
        let tx = app.payment(&format!("rows-{i}"), 700, &pi).await?;
        events.push(
            Pi {
                id: &pi,
                tx: Some(tx.id),
                amount: 700,
                currency: "usd",
            }
            .succeeded(),
        );
        txs.push(tx);
    }
    // Stored before the batch, through the lone path.
    assert_eq!(app.deliver(&events[2]).await?, "stored");
    // Ours, but its transaction is not there yet: kept for the retry worker.
    let early = Pi {
        id: "pi_rows_early",
        tx: Some(TransactionId::new()),
        amount: 700,
        currency: "usd",
    }
    .succeeded();
    let batch = [&events[0], &events[1], &events[0], &events[2], &early];
    let received = in_one_batch(&app, &batch).await?;
    assert_eq!(stored(&received), [true, true, false, false, true]);
    for (tx, user) in txs.iter().zip(["rows-0", "rows-1", "rows-2"]) {
        assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
        assert_eq!(app.balance(user).await?, 700);
    }

    // The rows the batch wrote are the ones a lone delivery wrote (events[2]), each with
    // its own payload and transaction.
    let shape = |id: String| {
        sqlx::query_as::<
            _,
            (
                String,
                Option<String>,
                bool,
                String,
                String,
                i32,
                bool,
                bool,
            ),
        >(
            "SELECT type, api_version, livemode, source::text, state::text, attempts, \
               processed_at IS NOT NULL, next_attempt_at IS NOT NULL \
             FROM stripe_events WHERE id = $1",
        )
        .bind(id)
        .fetch_one(app.pool())
    };
    let content = |id: String| {
        sqlx::query_as::<_, (serde_json::Value, Option<uuid::Uuid>)>(
            "SELECT payload, transaction_id FROM stripe_events WHERE id = $1",
        )
        .bind(id)
        .fetch_one(app.pool())
    };
    let stored_as = |state: &str, attempts, processed, retried| {
        let text = |t: &str| t.to_owned();
        (
            text("payment_intent.succeeded"),
            Some(text("2025-04-30.basil")),
            false,
            text("webhook"),
            text(state),
            attempts,
            processed,
            retried,
        )
    };
    let lone = shape(event_id(&events[2])).await?;
    assert_eq!(lone, stored_as("applied", 1, true, false));
    for (event, tx) in events.iter().zip(&txs).take(2) {
        assert_eq!(shape(event_id(event)).await?, lone);
        assert_eq!(
            content(event_id(event)).await?,
            (event.clone(), Some(tx.id.as_uuid())),
            "the payload is stored as received, with its transaction"
        );
    }
    assert_eq!(
        shape(event_id(&early)).await?,
        stored_as("unmatched", 1, false, true)
    );
    app.app.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_locked_ahead_is_read_again_once_another_event_of_the_batch_moved_it()
-> Result {
    let app = start().await?;
    let tx = app.payment("ahead", 900, "pi_ahead").await?;
    let by_pi = Pi {
        id: "pi_ahead",
        tx: None,
        amount: 900,
        currency: "usd",
    };
    let by_id = Pi {
        tx: Some(tx.id),
        ..by_pi
    };
    // The batch locks the transaction named by our id before applying anything; the
    // first event finds it by its PaymentIntent and moves it to pending, so the second
    // must start from pending, not from the row read ahead.
    let received = in_one_batch(&app, &[&by_pi.processing(), &by_id.succeeded()]).await?;
    assert_eq!(stored(&received), [true, true]);
    let pair = |from: &str, to: &str| (from.to_owned(), to.to_owned());
    assert_eq!(
        transitions(&app, tx.id).await?,
        [pair("created", "pending"), pair("pending", "succeeded")]
    );
    let now = app.transaction(tx.id).await?;
    assert_eq!(
        (now.status, now.version),
        (Status::Succeeded, tx.version + 3)
    );
    assert_eq!(app.balance("ahead").await?, 900);
    app.app.stop().await?;
    Ok(())
}
