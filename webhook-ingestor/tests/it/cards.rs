//! Card validation (a manual-capture hold) and payment-method events.

use payments_core::{TransactionKind, TransactionStatus as Status, UserId, store};

use crate::{
    events::{Pi, event_id, payment_method},
    helpers::{NewTx, Result, TestApp, eventually},
};

fn validation(user: &str, pm: &str, fingerprint: &str) -> NewTx {
    NewTx {
        kind: TransactionKind::CardValidation,
        payment_method: Some(pm.into()),
        fingerprint: Some(fingerprint.into()),
        trial_credit: Some(500),
        ..NewTx::payment(user, 100)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_hold_validates_the_card_grants_the_trial_and_queues_the_release() -> Result {
    let app = TestApp::start().await?;
    let tx = app
        .insert(&validation("lena", "pm_lena", "fp_lena"))
        .await?;
    app.set_pi(&tx, "pi_lena").await?;
    let pi = Pi {
        id: "pi_lena",
        tx: Some(tx.id),
        amount: 100,
        currency: "usd",
    };

    app.deliver(&pi.amount_capturable_updated()).await?;

    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    let mut conn = app.pool().acquire().await?;
    let user = UserId::parse("lena")?;
    let card = store::get_payment_method(&mut conn, &user, "pm_lena").await?;
    assert!(card.is_some_and(|c| c.validated()));
    assert_eq!(
        app.ledger_entries(tx.id).await?,
        [("trial_grant".into(), 500)]
    );
    assert_eq!(app.balance("lena").await?, 500);
    let outbox: (String, String, String) = sqlx::query_as(
        "SELECT kind, target, idempotency_key FROM outbox WHERE transaction_id = $1",
    )
    .bind(tx.id.as_uuid())
    .fetch_one(app.pool())
    .await?;
    assert_eq!(outbox.0, "cancel_payment_intent");
    assert_eq!(outbox.1, "pi_lena");

    // Our own release of the hold comes back as payment_intent.canceled: it undoes nothing.
    let canceled = pi.canceled();
    app.deliver(&canceled).await?;
    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    assert_eq!(app.event_state(&event_id(&canceled)).await?, "stale");
    assert_eq!(app.balance("lena").await?, 500);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trial_is_granted_once_per_card_fingerprint() -> Result {
    let app = TestApp::start().await?;
    let first = app
        .insert(&validation("mia", "pm_mia", "fp_shared"))
        .await?;
    let second = app
        .insert(&validation("ned", "pm_ned", "fp_shared"))
        .await?;
    app.set_pi(&first, "pi_mia").await?;
    app.set_pi(&second, "pi_ned").await?;

    let mia = Pi {
        id: "pi_mia",
        tx: Some(first.id),
        amount: 100,
        currency: "usd",
    };
    let ned = Pi {
        id: "pi_ned",
        tx: Some(second.id),
        amount: 100,
        currency: "usd",
    };
    app.deliver(&mia.amount_capturable_updated()).await?;
    app.deliver(&ned.amount_capturable_updated()).await?;

    assert_eq!(app.balance("mia").await?, 500);
    assert_eq!(app.balance("ned").await?, 0);
    let ned_now = app.transaction(second.id).await?;
    assert_eq!(ned_now.status, Status::Succeeded);
    assert!(
        ned_now
            .flagged
            .is_some_and(|f| f.contains("already started a trial"))
    );
    assert_eq!(app.count("SELECT count(*) FROM trial_grants").await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_card_is_recorded_for_its_customer() -> Result {
    let app = TestApp::start().await?;
    app.customer("olga", "cus_olga").await?;
    let event = payment_method(
        "payment_method.attached",
        "pm_olga",
        Some("cus_olga"),
        "fp_olga",
    );

    app.deliver(&event).await?;

    assert_eq!(app.event_state(&event_id(&event)).await?, "applied");
    let mut conn = app.pool().acquire().await?;
    let card = store::get_payment_method(&mut conn, &UserId::parse("olga")?, "pm_olga").await?;
    let card = card.ok_or_else(|| anyhow::anyhow!("card not recorded"))?;
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));
    assert_eq!(card.fingerprint, "fp_olga");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_for_an_unknown_customer_waits_for_the_customer() -> Result {
    let app = TestApp::start_with(|c| c.retry.max_attempts = 100).await?;
    let event = payment_method(
        "payment_method.attached",
        "pm_pat",
        Some("cus_pat"),
        "fp_pat",
    );

    app.deliver(&event).await?;
    assert_eq!(app.event_state(&event_id(&event)).await?, "unmatched");

    app.customer("pat", "cus_pat").await?;
    let id = event_id(&event);
    eventually("the attach is applied", || async {
        Ok(app.event_state(&id).await? == "applied")
    })
    .await?;
    assert!(app.metrics.events_unmatched() >= 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_card_is_marked_detached() -> Result {
    let app = TestApp::start().await?;
    app.customer("quinn", "cus_quinn").await?;
    let attached = payment_method(
        "payment_method.attached",
        "pm_quinn",
        Some("cus_quinn"),
        "fp_q",
    );
    let detached = payment_method("payment_method.detached", "pm_quinn", None, "fp_q");
    app.deliver(&attached).await?;
    app.deliver(&detached).await?;

    assert_eq!(app.event_state(&event_id(&detached)).await?, "applied");
    let mut conn = app.pool().acquire().await?;
    let listed = store::list_payment_methods(&mut conn, &UserId::parse("quinn")?).await?;
    assert!(listed.is_empty(), "{listed:?}");
    Ok(())
}
