//! A tenth of Stripe's webhooks never delivered (and never retried): reconciliation
//! and the catch-up pass over `GET /v1/events` settle every payment within a sweep.

use std::time::{Duration, Instant};

use payments_core::testing::TestDb;
use payments_proto::payments::v1::TransactionStatus as S;
use stripe_sim::StripeSim;

use super::{
    all_settled, assert_all, attach_cards,
    stack::{Spec, Stack, expected_balances},
    top_ups,
};

/// The sweeper: transactions untouched this long are read back, this often (and the
/// catch-up pass runs as often).
const SWEEP_AFTER: Duration = Duration::from_secs(1);
const SWEEP_EVERY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_tenth_of_webhooks_dropped_every_payment_settles_within_a_sweep() {
    let db = TestDb::new().await;
    let stack = Stack::start(
        &db.url,
        Spec {
            sim: StripeSim::builder().seed(4).drop_rate(0.1),
            ingestor: |c| {
                c.reconcile_after = SWEEP_AFTER;
                c.reconcile_interval = Some(SWEEP_EVERY);
                c.catch_up_interval = Some(SWEEP_EVERY);
            },
            ..Spec::default()
        },
    )
    .await;
    let users = attach_cards(&stack, 8, &["pm_card_visa"]).await;
    let payments = top_ups(&users, 80, "dropped", |_| 0);
    // One after the other: the simulator's event order, and so which events are
    // dropped, is the same on every run.
    let mut paid = Vec::new();
    for (i, payment) in payments.iter().enumerate() {
        paid.push(stack.pay(i, payment).await);
    }
    let burst_ended = Instant::now();
    // Two sweeps, and slack for a busy machine.
    let within = SWEEP_AFTER + 2 * SWEEP_EVERY + Duration::from_secs(3);
    let settled = all_settled(&stack, &payments, &paid, within).await;
    assert!(
        burst_ended.elapsed() < within,
        "{:?}",
        burst_ended.elapsed()
    );
    assert_all(&settled, S::Succeeded);

    let events = stack.sim.events();
    let dropped: Vec<String> = stack
        .sim
        .event_fates()
        .into_iter()
        .filter(|f| f.dropped && f.event_type == "payment_intent.succeeded")
        .map(|f| f.event_id)
        .collect();
    assert!(
        !dropped.is_empty(),
        "chaos dropped no payment_intent.succeeded"
    );
    for id in &dropped {
        assert!(events.iter().any(|e| e["id"] == id.as_str()));
        let source: Option<String> =
            sqlx::query_scalar("SELECT source FROM stripe_events WHERE id = $1")
                .bind(id)
                .fetch_optional(&stack.pool)
                .await
                .expect("read the inbox");
        assert!(
            matches!(source.as_deref(), None | Some("catch_up")),
            "a dropped event arrived by {source:?}"
        );
    }
    stack.assert_one_payment_intent_each(&settled);
    stack
        .assert_books(&expected_balances(&payments, |_| true), &settled)
        .await;
    stack.stop().await;
}
