//! Stripe answering payments-api with 500s, or too late (the request ran, the answer
//! timed out): retries with the same idempotency key never make a second
//! PaymentIntent, and what the lost answers left unsettled, the ingestor's
//! reconciliation sweeper settles as Stripe has it. A client that walks away instead
//! leaves a transaction with no PaymentIntent recorded: the catch-up pass settles it if
//! Stripe charged, and it stays uncharged if Stripe never saw it.

use std::time::Duration;

use futures::StreamExt as _;
use payments_core::testing::TestDb;
use payments_proto::payments::v1::TransactionStatus as S;
use stripe_sim::StripeSim;
use tonic::Code;

use super::{
    SETTLE, all_settled, attach_cards,
    stack::{Paid, Spec, Stack, expected_balances},
    top_ups,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_failing_and_timing_out_never_makes_a_second_payment_intent() {
    let db = TestDb::new().await;
    let stack = Stack::start(
        &db.url,
        Spec {
            sim: StripeSim::builder().seed(3),
            // Every webhook is lost: what the answers left unsettled, only the sweeper settles.
            deliver_webhooks: false,
            ingestor: |c| {
                c.reconcile_after = Duration::from_millis(500);
                c.reconcile_interval = Some(Duration::from_millis(200));
            },
            api: |c| c.stripe.timeout = Duration::from_millis(250),
            ..Spec::default()
        },
    )
    .await;
    let users = attach_cards(&stack, 6, &["pm_card_visa", "pm_card_chargeDeclined"]).await;
    // Every fifth payment is made with the card that is declined.
    let declined = |i: usize| i % 5 == 4;
    let payments = top_ups(&users, 60, "flaky", |i| usize::from(declined(i)));

    let faults = stack.sim.faults();
    faults.fail_rate(0.2);
    faults.delay_rate(0.2, Duration::from_millis(600));
    let paid: Vec<Paid> = futures::stream::iter(payments.iter().enumerate())
        .map(|(i, p)| stack.pay(i, p))
        .buffered(6)
        .collect()
        .await;
    let unavailable: u32 = paid.iter().map(|p| p.unavailable).sum();
    assert!(unavailable > 0, "the faults reached payments-api");

    let settled = all_settled(&stack, &payments, &paid, SETTLE).await;
    faults.clear();
    for (i, tx) in settled.iter().enumerate() {
        let want = if declined(i) { S::Failed } else { S::Succeeded };
        assert_eq!(tx.status(), want, "{tx:?}");
        let truth = stack.sim_payment_intent(&tx.stripe_payment_intent_id).await;
        let truth = truth["status"].as_str().unwrap_or_default().to_owned();
        let matches = match tx.status() {
            S::Succeeded => truth == "succeeded",
            _ => truth == "requires_payment_method",
        };
        assert!(
            matches,
            "{} is {:?} but {truth} at Stripe",
            tx.id,
            tx.status()
        );
    }
    // No webhook came: each success was read back by the sweeper, once.
    let causes = stack.causes("succeeded").await;
    for tx in settled.iter().filter(|tx| tx.status() == S::Succeeded) {
        assert_eq!(causes.get(&tx.id), Some(&vec!["reconciliation".to_owned()]));
    }
    stack.assert_one_payment_intent_each(&settled);
    let customers = stack
        .sim
        .events()
        .iter()
        .filter(|e| e["type"] == "customer.created")
        .count();
    assert_eq!(customers, users.len());
    let credited: Vec<_> = settled
        .iter()
        .filter(|tx| tx.status() == S::Succeeded)
        .cloned()
        .collect();
    let balances = expected_balances(&payments, |i| !declined(i));
    stack.assert_books(&balances, &credited).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_client_walked_away_ends_as_stripe_has_it() {
    let db = TestDb::new().await;
    let stack = Stack::start(
        &db.url,
        Spec {
            sim: StripeSim::builder().seed(6),
            // Every webhook is lost and catch-up is off: only the sweeper can settle,
            // and for the payments whose answer was lost it has no PaymentIntent id.
            deliver_webhooks: false,
            ingestor: |c| {
                c.reconcile_after = Duration::from_millis(500);
                c.reconcile_interval = Some(Duration::from_millis(200));
                c.catch_up_interval = None;
            },
            api: |c| c.stripe.timeout = Duration::from_millis(250),
            ..Spec::default()
        },
    )
    .await;
    let users = attach_cards(&stack, 4, &["pm_card_visa"]).await;
    let payments = top_ups(&users, 40, "walked-away", |_| 0);
    let faults = stack.sim.faults();
    faults.fail_rate(0.3);
    faults.delay_rate(0.3, Duration::from_millis(600));
    let mut walked_away = Vec::new();
    for (i, payment) in payments.iter().enumerate() {
        match stack.pay_once(i, payment).await {
            Ok(_) => {}
            Err(status) if status.code() == Code::Unavailable => walked_away.push(i),
            Err(status) => panic!("{payment:?}: {status:?}"),
        }
    }
    faults.clear();

    // Stripe's truth: a PaymentIntent (which succeeded) or none at all.
    let intents = stack.payment_intents();
    let (mut charged, mut charged_at) = (Vec::new(), Vec::new());
    let (mut answer_lost, mut never_reached) = (Vec::new(), 0);
    for (i, payment) in payments.iter().enumerate() {
        let stored = stack.transaction_for(payment).await;
        let Some(pis) = intents.get(&stored.id) else {
            assert!(walked_away.contains(&i), "{payment:?} got an answer");
            never_reached += 1;
            continue;
        };
        assert_eq!(pis.len(), 1, "{pis:?}");
        let tx = stack.settled(&payment.user, &stored.id, SETTLE).await;
        assert_eq!(tx.status(), S::Succeeded, "{tx:?}");
        assert_eq!(tx.stripe_payment_intent_id, pis[0]);
        if walked_away.contains(&i) {
            answer_lost.push(tx.id.clone());
        }
        charged.push(tx);
        charged_at.push(i);
    }
    assert!(
        !answer_lost.is_empty() && never_reached > 0,
        "{answer_lost:?} {never_reached}"
    );
    // Nothing recorded a PaymentIntent for those: the sweeper found each by its
    // metadata (Stripe's search), recorded it and settled the transaction.
    let causes = stack.causes("succeeded").await;
    for id in &answer_lost {
        assert_eq!(
            causes.get(id),
            Some(&vec!["reconciliation".to_owned()]),
            "{id}"
        );
    }
    // By now every sweep has passed over those Stripe never saw: still uncharged.
    for payment in &payments {
        let tx = stack.transaction_for(payment).await;
        if !intents.contains_key(&tx.id) {
            assert_eq!(tx.status(), S::Created, "{tx:?}");
            assert!(tx.stripe_payment_intent_id.is_empty(), "{tx:?}");
        }
    }
    let balances = expected_balances(&payments, |i| charged_at.contains(&i));
    stack.assert_books(&balances, &charged).await;
    stack.stop().await;
}
