//! Payment flows: each event applied once, in whatever order Stripe delivers it.

use payments_core::{TransactionKind, TransactionStatus as Status, store::StripeRefs};

use crate::{
    events::{Pi, event_id, invoice, new_id},
    helpers::{NewTx, Result, TestApp},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_intent_succeeded_credits_the_wallet_once() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("alice", 1_500, "pi_alice_1").await?;
    let pi = Pi {
        id: "pi_alice_1",
        tx: Some(tx.id),
        amount: 1_500,
        currency: "usd",
    };
    let event = pi.succeeded();

    assert_eq!(app.deliver(&event).await?, "stored");

    let now = app.transaction(tx.id).await?;
    assert_eq!(now.status, Status::Succeeded);
    assert_eq!(now.stripe_charge_id.as_deref(), Some("ch_alice_1"));
    assert_eq!(app.balance("alice").await?, 1_500);
    assert_eq!(app.event_state(&event_id(&event)).await?, "applied");
    let audit: (String, String, Option<String>) = sqlx::query_as(
        "SELECT from_status, to_status, stripe_event_id FROM transaction_transitions \
         WHERE transaction_id = $1",
    )
    .bind(tx.id.as_uuid())
    .fetch_one(app.pool())
    .await?;
    assert_eq!(
        audit,
        ("created".into(), "succeeded".into(), Some(event_id(&event)))
    );
    assert_eq!(app.metrics.events_applied("payment_intent.succeeded"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_is_acknowledged_and_credits_once() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("bob", 700, "pi_bob_1").await?;
    let event = Pi {
        id: "pi_bob_1",
        tx: Some(tx.id),
        amount: 700,
        currency: "usd",
    }
    .succeeded();

    let (first, second, third) = tokio::join!(
        app.deliver(&event),
        app.deliver(&event),
        app.deliver(&event)
    );
    let mut answers = vec![first?, second?, third?];
    answers.sort();
    assert_eq!(answers, ["duplicate", "duplicate", "stored"]);
    assert_eq!(app.deliver(&event).await?, "duplicate");

    assert_eq!(app.balance("bob").await?, 700);
    assert_eq!(
        app.ledger_entries(tx.id).await?,
        [("payment_credit".into(), 700)]
    );
    assert_eq!(app.metrics.webhooks_duplicate(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_failure_wins() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("carol", 900, "pi_carol").await?;
    let pi = Pi {
        id: "pi_carol",
        tx: Some(tx.id),
        amount: 900,
        currency: "usd",
    };

    app.deliver(&pi.payment_failed()).await?;
    let failed = app.transaction(tx.id).await?;
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.failure_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(app.balance("carol").await?, 0);

    app.deliver(&pi.succeeded()).await?;
    let now = app.transaction(tx.id).await?;
    assert_eq!(now.status, Status::Succeeded);
    assert_eq!(now.failure_code, None);
    assert_eq!(app.balance("carol").await?, 900);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_payment_failed_never_undoes_a_success() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("dave", 400, "pi_dave").await?;
    let pi = Pi {
        id: "pi_dave",
        tx: Some(tx.id),
        amount: 400,
        currency: "usd",
    };
    let late = pi.payment_failed();

    app.deliver(&pi.succeeded()).await?;
    app.deliver(&late).await?;
    app.deliver(&pi.canceled()).await?;

    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    assert_eq!(app.balance("dave").await?, 400);
    assert_eq!(app.event_state(&event_id(&late)).await?, "stale");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_d_secure_waits_in_requires_action_then_succeeds() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("erin", 2_000, "pi_erin").await?;
    let pi = Pi {
        id: "pi_erin",
        tx: Some(tx.id),
        amount: 2_000,
        currency: "usd",
    };

    app.deliver(&pi.requires_action()).await?;
    assert_eq!(app.transaction(tx.id).await?.status, Status::RequiresAction);
    assert_eq!(app.balance("erin").await?, 0);

    app.deliver(&pi.succeeded()).await?;
    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    assert_eq!(app.balance("erin").await?, 2_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_paid_and_payment_succeeded_credit_a_coupon_once() -> Result {
    let app = TestApp::start().await?;
    let new = NewTx {
        kind: TransactionKind::Coupon,
        payment_method: None,
        coupon: Some("WELCOME10".into()),
        ..NewTx::payment("frank", 1_000)
    };
    let tx = app.insert(&new).await?;
    let refs = StripeRefs {
        invoice_id: Some("in_frank"),
        ..StripeRefs::default()
    };
    app.set_refs(tx.id, &refs).await?;

    let paid = invoice("invoice.paid", "in_frank", Some(tx.id), "paid");
    let succeeded = invoice("invoice.payment_succeeded", "in_frank", Some(tx.id), "paid");
    let (a, b) = tokio::join!(app.deliver(&paid), app.deliver(&succeeded));
    a?;
    b?;

    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    assert_eq!(
        app.ledger_entries(tx.id).await?,
        [("coupon_credit".into(), 1_000)]
    );
    assert_eq!(app.balance("frank").await?, 1_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_then_a_full_refund_debit_each_step_once() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("gina", 1_000, "pi_gina").await?;
    let pi = Pi {
        id: "pi_gina",
        tx: None,
        amount: 1_000,
        currency: "usd",
    };
    app.deliver(&pi.succeeded()).await?;

    let partial = pi.refunded(&[("re_gina_1", 300)]);
    app.deliver(&partial).await?;
    app.deliver(&partial).await?;
    // The same refund's own event changes nothing more.
    app.deliver(&pi.refund("refund.created", "re_gina_1", 300, "succeeded"))
        .await?;
    let now = app.transaction(tx.id).await?;
    assert_eq!((now.status, now.amount_refunded), (Status::Succeeded, 300));
    assert_eq!(app.balance("gina").await?, 700);

    app.deliver(&pi.refunded(&[("re_gina_1", 300), ("re_gina_2", 700)]))
        .await?;
    // A late copy of the partial step (new event id, older cumulative amount).
    app.deliver(&pi.refunded(&[("re_gina_1", 300)])).await?;
    let now = app.transaction(tx.id).await?;
    assert_eq!((now.status, now.amount_refunded), (Status::Refunded, 1_000));
    assert_eq!(app.balance("gina").await?, 0);
    let debits: Vec<i64> = app
        .ledger_entries(tx.id)
        .await?
        .into_iter()
        .filter(|(kind, _)| kind == "refund_debit")
        .map(|(_, amount)| amount)
        .collect();
    assert_eq!(debits, [-300, -700]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_won_dispute_debits_then_gives_the_money_back() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("hank", 800, "pi_hank").await?;
    let pi = Pi {
        id: "pi_hank",
        tx: Some(tx.id),
        amount: 800,
        currency: "usd",
    };
    app.deliver(&pi.succeeded()).await?;

    // An inquiry moves no money.
    app.deliver(&pi.dispute(
        "charge.dispute.created",
        "dp_hank",
        "warning_needs_response",
    ))
    .await?;
    assert_eq!(app.balance("hank").await?, 800);
    // The dispute names the charge only: found through the charge id recorded on success.
    // Escalated, it withdraws the funds, once whichever event says so.
    app.deliver(&pi.dispute("charge.dispute.updated", "dp_hank", "needs_response"))
        .await?;
    for _ in 0..2 {
        app.deliver(&pi.dispute(
            "charge.dispute.funds_withdrawn",
            "dp_hank",
            "needs_response",
        ))
        .await?;
    }
    assert_eq!(app.balance("hank").await?, 0);
    app.deliver(&pi.dispute("charge.dispute.closed", "dp_hank", "won"))
        .await?;
    assert_eq!(app.balance("hank").await?, 800);
    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    let kinds: Vec<String> = app
        .ledger_entries(tx.id)
        .await?
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        kinds,
        ["payment_credit", "dispute_debit", "dispute_reversal"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_currency_mismatch_is_flagged_and_not_credited() -> Result {
    let app = TestApp::start().await?;
    let tx = app.payment("ivan", 1_000, "pi_ivan").await?;
    let event = Pi {
        id: "pi_ivan",
        tx: Some(tx.id),
        amount: 1_000,
        currency: "eur",
    }
    .succeeded();

    assert_eq!(app.deliver(&event).await?, "stored");

    let now = app.transaction(tx.id).await?;
    assert_eq!(now.status, Status::Created);
    assert!(
        now.flagged
            .as_deref()
            .is_some_and(|f| f.contains("currency mismatch"))
    );
    assert_eq!(app.balance("ivan").await?, 0);
    let (state, _, why) = app.event_row(&event_id(&event)).await?.unwrap_or_default();
    assert_eq!(state, "flagged");
    assert!(why.is_some_and(|w| w.contains("eur")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_beats_the_api_records_the_payment_intent() -> Result {
    let app = TestApp::start().await?;
    // payments-api inserted the row but has not recorded Stripe's answer yet.
    let tx = app.insert(&NewTx::payment("judy", 600)).await?;
    // Its Stripe customer was recorded before the PaymentIntent was made.
    app.customer("judy", "cus_test").await?;
    let pi = Pi {
        id: "pi_judy",
        tx: Some(tx.id),
        amount: 600,
        currency: "usd",
    };

    app.deliver(&pi.requires_action()).await?;
    let now = app.transaction(tx.id).await?;
    assert_eq!(now.stripe_payment_intent_id.as_deref(), Some("pi_judy"));
    assert_eq!(now.status, Status::RequiresAction);

    // A later event without our metadata is found by the recorded id.
    let anonymous = Pi { tx: None, ..pi };
    app.deliver(&anonymous.succeeded()).await?;
    assert_eq!(app.transaction(tx.id).await?.status, Status::Succeeded);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_we_do_not_act_on_are_stored_and_ignored() -> Result {
    let app = TestApp::start().await?;
    let pi = Pi {
        id: &new_id("pi"),
        tx: None,
        amount: 100,
        currency: "usd",
    };
    let created = crate::events::event(
        "payment_intent.created",
        pi.object("requires_payment_method"),
    );
    let customer = crate::events::event(
        "customer.created",
        serde_json::json!({ "id": "cus_x", "object": "customer" }),
    );
    for event in [&created, &customer] {
        assert_eq!(app.deliver(event).await?, "stored");
        assert_eq!(app.event_state(&event_id(event)).await?, "ignored");
    }
    Ok(())
}
