//! Events that cannot be applied when they arrive are kept and retried, never dropped.

use payments_core::{TransactionId, TransactionStatus as Status};

use crate::{
    events::{Pi, event_id},
    helpers::{NewTx, Result, TestApp, eventually, insert_on},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_beat_its_transaction_is_applied_by_the_worker() -> Result {
    let app = TestApp::start_with(|c| c.retry.max_attempts = 100).await?;
    // payments-api made the user's Stripe customer before the PaymentIntent (the event's
    // `cus_test`). Without it, a retry landing between the commit and the recording of
    // the PaymentIntent below would find an object it may not adopt (another customer's)
    // and flag the event, which is right, but not this test's story.
    app.customer("rita", "cus_test").await?;
    // payments-api's row is written but not committed yet when the webhook arrives.
    let mut pending = app.pool().begin().await?;
    let tx = insert_on(&mut pending, &NewTx::payment("rita", 1_200)).await?;
    let pi = Pi {
        id: "pi_early",
        tx: Some(tx.id),
        amount: 1_200,
        currency: "usd",
    };
    let event = pi.succeeded();

    assert_eq!(app.deliver(&event).await?, "stored");
    assert_eq!(app.event_state(&event_id(&event)).await?, "unmatched");

    // payments-api commits the row and records the PaymentIntent after Stripe answered.
    pending.commit().await?;
    app.set_pi(&tx, "pi_early").await?;
    let applied = eventually("the worker applies the event", || async {
        Ok(app.transaction(tx.id).await?.status == Status::Succeeded)
    })
    .await;
    if let Err(e) = applied {
        // Where it was stuck, for the next time this is seen failing.
        let row = app.event_row(&event_id(&event)).await?;
        let now = app.transaction(tx.id).await?;
        anyhow::bail!(
            "{e}: event (state, attempts, last_error) {row:?}; transaction {} at version {}, PaymentIntent {:?}",
            now.status,
            now.version,
            now.stripe_payment_intent_id
        );
    }
    assert_eq!(app.balance("rita").await?, 1_200);
    assert_eq!(app.event_state(&event_id(&event)).await?, "applied");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_never_matches_is_dead_lettered_after_its_budget() -> Result {
    let app = TestApp::start().await?;
    // It carries a transaction id of ours that never gets its row.
    let event = Pi {
        id: "pi_nobody",
        tx: Some(TransactionId::new()),
        amount: 100,
        currency: "usd",
    }
    .succeeded();
    let id = event_id(&event);

    app.deliver(&event).await?;
    eventually("the event is dead", || async {
        Ok(app.event_state(&id).await? == "dead")
    })
    .await?;

    let (_, attempts, why) = app.event_row(&id).await?.unwrap_or_default();
    assert_eq!(attempts, 5, "the test budget is five attempts");
    assert!(why.is_some_and(|w| w.contains("no transaction")));
    assert_eq!(app.metrics.events_dead_lettered(), 1);
    let (_, metrics) = app.get("/metrics").await?;
    assert!(
        metrics.contains("payments_events_dead_lettered_total 1\n"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_before_its_success_is_deferred_then_applied() -> Result {
    let app = TestApp::start_with(|c| c.retry.max_attempts = 100).await?;
    let tx = app.payment("sam", 500, "pi_sam").await?;
    let pi = Pi {
        id: "pi_sam",
        tx: Some(tx.id),
        amount: 500,
        currency: "usd",
    };
    let refund = pi.refunded(&[("re_sam", 500)]);

    app.deliver(&refund).await?;
    assert_eq!(app.event_state(&event_id(&refund)).await?, "deferred");
    assert_eq!(app.transaction(tx.id).await?.status, Status::Created);

    app.deliver(&pi.succeeded()).await?;
    eventually("the refund is applied", || async {
        Ok(app.transaction(tx.id).await?.status == Status::Refunded)
    })
    .await?;
    assert_eq!(app.balance("sam").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_while_applying_keeps_the_event_and_retries_it() -> Result {
    let app = TestApp::start().await?;
    app.payment("tom", 300, "pi_taken").await?;
    // A second transaction whose event claims a PaymentIntent already recorded on the
    // first: recording it violates a unique constraint, which rolls the apply back.
    let other = app.insert(&NewTx::payment("uma", 300)).await?;
    // Its customer matches, so the PaymentIntent is adopted, and recording it fails.
    app.customer("uma", "cus_test").await?;
    let event = Pi {
        id: "pi_taken",
        tx: Some(other.id),
        amount: 300,
        currency: "usd",
    }
    .succeeded();
    let id = event_id(&event);

    assert_eq!(app.deliver(&event).await?, "stored");
    let (state, _, why) = app.event_row(&id).await?.unwrap_or_default();
    assert!(state == "received" || state == "dead", "{state}");
    assert!(why.is_some_and(|w| w.contains("conflict")));
    assert_eq!(app.transaction(other.id).await?.status, Status::Created);

    eventually("the event is dead", || async {
        Ok(app.event_state(&id).await? == "dead")
    })
    .await?;
    assert_eq!(app.balance("uma").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_about_an_object_that_is_not_ours_is_recorded_and_never_retried() -> Result {
    let app = TestApp::start().await?;
    // Another integration's PaymentIntent on a shared account: no metadata of ours,
    // an id we never recorded.
    let event = Pi {
        id: "pi_someone_else",
        tx: None,
        amount: 100,
        currency: "usd",
    }
    .succeeded();
    let id = event_id(&event);

    assert_eq!(app.deliver(&event).await?, "stored");
    let (state, attempts, why) = app.event_row(&id).await?.unwrap_or_default();
    assert_eq!(state, "foreign");
    assert_eq!(attempts, 1);
    assert!(why.is_some_and(|w| w.contains("not ours")));
    // The retry worker leaves it alone: still one attempt, never dead.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (state, attempts, _) = app.event_row(&id).await?.unwrap_or_default();
    assert_eq!((state.as_str(), attempts), ("foreign", 1));
    assert_eq!(app.metrics.events_dead_lettered(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_of_a_charge_not_recorded_yet_is_retried_then_foreign_never_dead() -> Result {
    let app = TestApp::start().await?;
    // A dispute names its charge and PaymentIntent, never our metadata: before the
    // PaymentIntent is recorded it may be ours or someone else's, so it is retried,
    // and ends foreign (not dead) when nothing of ours ever matches it.
    let pi = Pi {
        id: "pi_unknown",
        tx: None,
        amount: 700,
        currency: "usd",
    };
    let event = pi.dispute("charge.dispute.created", "dp_unknown", "needs_response");
    let id = event_id(&event);
    assert_eq!(app.deliver(&event).await?, "stored");
    assert_eq!(app.event_state(&id).await?, "unmatched");
    eventually("the budget is spent", || async {
        Ok(app.event_state(&id).await? == "foreign")
    })
    .await?;
    let (_, attempts, _) = app.event_row(&id).await?.unwrap_or_default();
    assert_eq!(attempts, 5, "the test budget is five attempts");
    assert_eq!(app.metrics.events_dead_lettered(), 0);
    Ok(())
}
