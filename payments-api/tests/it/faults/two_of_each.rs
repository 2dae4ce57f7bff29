//! Two ingestors and two payments-api instances on one database, every worker running
//! on both: requests alternate between the APIs, webhooks between the ingestors (and a
//! duplicated event may reach both at once), and still each transaction is settled and
//! credited once and each outbox call made once.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use payments_core::testing::TestDb;
use payments_proto::payments::v1::{self as pb, TransactionStatus as S};
use stripe_sim::StripeSim;

use super::{
    SETTLE, all_settled, assert_all, attach_cards,
    stack::{Paid, Spec, Stack, expected_balances},
    top_ups,
};
use crate::helpers::as_user;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingestors_and_two_apis_on_one_database_do_everything_once() {
    let db = TestDb::new().await;
    let stack = Stack::start(
        &db.url,
        Spec {
            // Duplicates go to the other ingestor: both may hold the same event at once.
            sim: StripeSim::builder()
                .seed(5)
                .duplicate_rate(0.3)
                .reorder_window(Duration::from_millis(50)),
            ingestors: 2,
            apis: 2,
            ingestor: |c| {
                c.reconcile_after = Duration::from_millis(300);
                c.reconcile_interval = Some(Duration::from_millis(100));
                c.catch_up_interval = Some(Duration::from_millis(200));
            },
            ..Spec::default()
        },
    )
    .await;
    let users = attach_cards(&stack, 8, &["pm_card_visa"]).await;
    let payments = top_ups(&users, 64, "twice", |_| 0);
    let validations = futures::stream::iter(users.iter().enumerate())
        .map(|(u, (user, cards))| {
            let mut client = stack.api(u + 1);
            let req = pb::ValidatePaymentMethodRequest {
                user_id: user.clone(),
                payment_method_id: cards[0].clone(),
            };
            async move {
                let answer = client.validate_payment_method(as_user(user, req)).await;
                answer
                    .expect("validate")
                    .into_inner()
                    .transaction
                    .expect("tx")
            }
        })
        .buffer_unordered(4);
    let paying = futures::stream::iter(payments.iter().enumerate())
        .map(|(i, p)| stack.pay(i, p))
        .buffered(8);
    let (validations, paid): (Vec<pb::Transaction>, Vec<Paid>) =
        tokio::join!(validations.collect(), paying.collect());

    let settled = all_settled(&stack, &payments, &paid, SETTLE).await;
    assert_all(&settled, S::Succeeded);
    let mut holds = Vec::new();
    for tx in &validations {
        holds.push(stack.settled(&tx.user_id, &tx.id, SETTLE).await);
    }
    assert_all(&holds, S::Succeeded);
    let every: Vec<pb::Transaction> = settled.iter().chain(&holds).cloned().collect();
    let causes = stack.causes("succeeded").await;
    for tx in &every {
        assert_eq!(causes.get(&tx.id).map(Vec::len), Some(1), "{}", tx.id);
    }
    stack.assert_one_payment_intent_each(&every);
    stack
        .assert_books(&expected_balances(&payments, |_| true), &settled)
        .await;
    assert_holds_released_once(&stack, &holds).await;

    let spread: Vec<usize> = (0..2)
        .map(|n| {
            let hops = stack.webhooks.hops();
            hops.iter()
                .filter(|h| h.upstream == n && h.status == Some(200))
                .count()
        })
        .collect();
    assert!(
        spread.iter().all(|n| *n > 0),
        "webhooks per ingestor: {spread:?}"
    );
    assert!(stack.sim.delivery_stats().duplicated > 0);
    stack.stop().await;
}

/// One outbox row per validation, done; one cancel call per hold reached Stripe, and
/// each hold was canceled once.
async fn assert_holds_released_once(stack: &Stack, holds: &[pb::Transaction]) {
    // The outbox is sent after the transaction settled.
    let deadline = Instant::now() + SETTLE;
    let rows = loop {
        let rows: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT transaction_id, state FROM outbox")
                .fetch_all(&stack.pool)
                .await
                .expect("read the outbox");
        if rows.len() == holds.len() && rows.iter().all(|(_, state)| state == "done") {
            break rows;
        }
        assert!(Instant::now() < deadline, "outbox not done: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for hold in holds {
        assert!(
            rows.iter().any(|(tx, _)| tx.to_string() == hold.id),
            "{}",
            hold.id
        );
    }
    // A call is recorded before its answer reaches the worker that marks the row done.
    let mut cancels: HashMap<String, usize> = HashMap::new();
    for hop in stack.stripe_calls.hops() {
        if hop.method == "POST"
            && let Some(pi) = hop.path.strip_prefix("/v1/payment_intents/")
            && let Some(pi) = pi.strip_suffix("/cancel")
        {
            *cancels.entry(pi.to_owned()).or_default() += 1;
        }
    }
    for hold in holds {
        assert_eq!(
            cancels.get(&hold.stripe_payment_intent_id),
            Some(&1),
            "cancel calls for {}: {cancels:?}",
            hold.id
        );
    }
    assert_eq!(cancels.len(), holds.len(), "{cancels:?}");
    let canceled = stack
        .sim
        .events()
        .iter()
        .filter(|e| e["type"] == "payment_intent.canceled")
        .count();
    assert_eq!(canceled, holds.len());
}
