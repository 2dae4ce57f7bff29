//! PostgreSQL stopped (`pg_ctl stop -m fast`) and started again in the middle of a burst
//! of payments: webhooks meet 503s and are redelivered, RPCs answer UNAVAILABLE and
//! clients retry with the same idempotency key, a watch opened before the restart
//! still sees the end, and nothing is lost or credited twice.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use payments_proto::payments::v1::{self as pb, TransactionStatus as S};
use stripe_sim::StripeSim;
use tonic::Code;

use super::{
    SETTLE, all_settled, assert_all, attach_cards,
    postgres::PrivatePostgres,
    stack::{Paid, Spec, Stack, expected_balances},
    top_ups,
};
use crate::helpers::{as_user, assert_refused};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_burst_loses_no_payment_and_credits_none_twice() {
    let pg = PrivatePostgres::start().await;
    let stack = Stack::start(
        &pg.url(),
        Spec {
            // Webhooks are held a while, so the outage finds many on their way.
            sim: StripeSim::builder()
                .seed(2)
                .delay(Duration::from_millis(1_500)),
            ingestor: |c| c.db_acquire_timeout = Duration::from_millis(500),
            api: |c| c.database.acquire_timeout = Duration::from_millis(500),
            ..Spec::default()
        },
    )
    .await;
    let users = attach_cards(&stack, 6, &["pm_card_visa"]).await;
    let payments = top_ups(&users, 48, "restart", |_| 0);
    let (before, during) = payments.split_at(16);

    let mut paid: Vec<Paid> = futures::stream::iter(before.iter().enumerate())
        .map(|(i, p)| stack.pay(i, p))
        .buffered(4)
        .collect()
        .await;
    let watched = paid.last().expect("paid").transaction.clone();
    let watch = |id: String| {
        let mut client = stack.api(0);
        let user = watched.user_id.clone();
        async move {
            let req = pb::WatchTransactionRequest {
                transaction_id: id,
                await_status: None,
            };
            client.watch_transaction(as_user(&user, req)).await
        }
    };
    let mut updates = watch(watched.id.clone()).await.expect("watch").into_inner();
    let snapshot = updates.next().await.expect("snapshot").expect("ok");
    assert_eq!(snapshot.transaction.expect("tx").status(), S::Pending);

    let progress = AtomicUsize::new(0);
    let burst = futures::stream::iter(during.iter().enumerate())
        .map(|(i, p)| {
            let (stack, progress) = (&stack, &progress);
            async move {
                let done = stack.pay(i, p).await;
                progress.fetch_add(1, Ordering::SeqCst);
                done
            }
        })
        .buffered(4)
        .collect::<Vec<Paid>>();
    let outage = async {
        while progress.load(Ordering::SeqCst) < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pg.stop_fast().await;
        assert_refused(
            stack.wallet("user-0").await,
            Code::Unavailable,
            "DATABASE_UNAVAILABLE",
        );
        // Stripe's deliveries meet the outage: 503, to be retried.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stack.webhooks.hops().iter().any(|h| h.status == Some(503)) {
            assert!(Instant::now() < deadline, "no webhook met the outage");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pg.start_again().await;
    };
    let (rest, ()) = tokio::join!(burst, outage);
    paid.extend(rest);
    assert_eq!(progress.load(Ordering::SeqCst), during.len());

    // The watch opened before the restart (or reopened on its retryable error) sees the end.
    let last = tokio::time::timeout(SETTLE, async {
        loop {
            match updates.next().await {
                Some(Ok(update)) => {
                    let tx = update.transaction.expect("tx");
                    if tx.status() == S::Succeeded {
                        return tx;
                    }
                }
                Some(Err(status)) if status.code() == Code::Unavailable => {
                    updates = watch(watched.id.clone())
                        .await
                        .expect("rewatch")
                        .into_inner();
                }
                other => panic!("the watch ended before the payment settled: {other:?}"),
            }
        }
    })
    .await
    .expect("the watch sees the payment settle");
    assert_eq!(last.id, watched.id);

    let settled = all_settled(&stack, &payments, &paid, SETTLE).await;
    assert_all(&settled, S::Succeeded);
    let refused: Vec<_> = stack
        .webhooks
        .hops()
        .into_iter()
        .filter(|h| h.status.is_some_and(|s| (400..500).contains(&s)))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert!(stack.sim.wait_for_deliveries(SETTLE).await);
    assert_eq!(stack.sim.delivery_stats().failed, 0);
    stack.assert_one_payment_intent_each(&settled);
    stack
        .assert_books(&expected_balances(&payments, |_| true), &settled)
        .await;
    stack.stop().await;
}
