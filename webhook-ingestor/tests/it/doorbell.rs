//! The watchers' doorbell on the webhook path: rung once the commit is done (or inside
//! it, when configured so), with the version that committed, for every transaction the
//! commit changed.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use payments_core::{
    Currency, RetryPolicy, StripeEvent, StripeMode, TRANSACTION_CHANNEL, Transaction,
    TransactionStatus as Status, UserId,
    inbox::{self, Received, Rules},
    store::{self, ConnectionCache, Doorbell, EventSource},
};
use sqlx::postgres::PgListener;
use webhook_ingestor::metrics::Metrics;

use crate::{
    events::Pi,
    helpers::{Result, TestApp, eventually},
};

/// The rules the batches below are received under (as the ingestor's in test mode).
const RULES: Rules = Rules {
    retry: RetryPolicy::DEFAULT,
    mode: StripeMode::Test,
};

async fn listen(app: &TestApp) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(app.pool()).await?;
    listener.listen(TRANSACTION_CHANNEL).await?;
    Ok(listener)
}

async fn next_doorbell(listener: &mut PgListener) -> Result<String> {
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .context("no doorbell within 10 s")??;
    Ok(notification.payload().to_owned())
}

/// The next `n` doorbells, sorted (rows changed together ring in no promised order).
async fn next_doorbells(listener: &mut PgListener, n: usize) -> Result<Vec<String>> {
    let mut rung = Vec::with_capacity(n);
    for _ in 0..n {
        rung.push(next_doorbell(listener).await?);
    }
    rung.sort();
    Ok(rung)
}

fn payload(tx: &Transaction) -> String {
    format!("{}:{}", tx.id, tx.version)
}

async fn a_settling_webhook_rings_once_with_the_version_it_committed(
    after_commit: bool,
    with_wallets: bool,
) -> Result {
    let app = TestApp::start_with(|config| config.doorbell_after_commit = after_commit).await?;
    if with_wallets {
        // A success for a user with a wallet is written by the one statement; without
        // one it takes the general path, which creates the wallet.
        wallet(&app, "doorbell").await?;
        wallet(&app, "doorbell-2").await?;
    }
    let (tx, event) = app.payment_and_success("doorbell", 700).await?;
    let (other, other_event) = app.payment_and_success("doorbell-2", 700).await?;
    // Listening only now: the seeding writes have rung already.
    let mut listener = listen(&app).await?;

    assert_eq!(app.deliver(&event).await?, "stored");
    let settled = app.transaction(tx.id).await?;
    assert_eq!(settled.status, Status::Succeeded);
    assert_eq!(next_doorbell(&mut listener).await?, payload(&settled));

    // A redelivery changes nothing and rings nothing: the next doorbell is the next
    // change's.
    assert_eq!(app.deliver(&event).await?, "duplicate");
    assert_eq!(app.deliver(&other_event).await?, "stored");
    let other = app.transaction(other.id).await?;
    assert_eq!(next_doorbell(&mut listener).await?, payload(&other));
    // Counted once rung; nothing rang after the commit when it rang inside it.
    let rung = if after_commit { 2 } else { 0 };
    eventually("the doorbells are counted", || async {
        Ok(app.metrics.doorbells("rung") == rung)
    })
    .await?;
    assert_eq!(app.metrics.doorbells("lost"), 0);
    assert_eq!(app.balance("doorbell").await?, 700);
    Ok(())
}

async fn wallet(app: &TestApp, user: &str) -> Result {
    let mut conn = app.pool().acquire().await?;
    store::ensure_wallet(&mut conn, &UserId::parse(user)?, Currency::parse("usd")?).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settling_webhook_rings_after_its_commit_with_the_version_it_committed() -> Result {
    a_settling_webhook_rings_once_with_the_version_it_committed(true, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_statement_success_rings_after_its_commit_with_the_version_it_committed() -> Result {
    a_settling_webhook_rings_once_with_the_version_it_committed(true, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settling_webhook_rings_inside_its_commit_when_configured_so() -> Result {
    a_settling_webhook_rings_once_with_the_version_it_committed(false, false).await?;
    a_settling_webhook_rings_once_with_the_version_it_committed(false, true).await
}

/// A database transaction that collects its doorbells rings none at its commit; what it
/// collected names every row it changed, at the version it committed, and the ringer
/// rings exactly that, also when its last handle is dropped right away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collecting_commit_rings_nothing_itself_and_collects_every_row_it_changed() -> Result {
    let app = TestApp::start().await?;
    let (a, _) = app.payment_and_success("collect-a", 700).await?;
    let (b, _) = app.payment_and_success("collect-b", 700).await?;
    let (c, _) = app.payment_and_success("collect-c", 700).await?;
    let mut listener = listen(&app).await?;

    let mut conn = app.pool().acquire().await?;
    let mut db = store::begin_collecting_doorbells(&mut conn, "test").await?;
    sqlx::query("UPDATE transactions SET status = 'pending' WHERE id = ANY($1)")
        .bind([a.id.as_uuid(), b.id.as_uuid()])
        .execute(&mut *db)
        .await?;
    let collected: String = sqlx::query_scalar("SELECT current_setting('payments.doorbells')")
        .fetch_one(&mut *db)
        .await?;
    db.commit().await?;
    // The setting was the database transaction's own.
    let after: Option<String> =
        sqlx::query_scalar("SELECT current_setting('payments.doorbells', true)")
            .fetch_one(&mut *conn)
            .await?;
    assert_eq!(after.unwrap_or_default(), "");
    drop(conn);

    let (a, b) = (app.transaction(a.id).await?, app.transaction(b.id).await?);
    assert_eq!((a.status, b.status), (Status::Pending, Status::Pending));
    let mut expected = vec![payload(&a), payload(&b)];
    expected.sort();
    let mut got: Vec<String> = collected.split(' ').map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, expected);

    // Any other writer still rings inside its commit. Notifications arrive in commit
    // order, so had the collecting commit rung, its doorbells would come first.
    sqlx::query("UPDATE transactions SET status = 'pending' WHERE id = $1")
        .bind(c.id.as_uuid())
        .execute(app.pool())
        .await?;
    let c = app.transaction(c.id).await?;
    assert_eq!(next_doorbell(&mut listener).await?, payload(&c));

    let metrics = Arc::new(Metrics::default());
    let (doorbell, ringer) = Doorbell::after_commit(app.pool().clone(), metrics.clone());
    doorbell.ring(collected);
    drop(doorbell);
    tokio::time::timeout(Duration::from_secs(10), ringer).await??;
    assert_eq!(next_doorbells(&mut listener, 2).await?, expected);
    assert_eq!(
        (metrics.doorbells("rung"), metrics.doorbells("lost")),
        (2, 0)
    );
    Ok(())
}

/// A group commit's batch rings for every event of it, once it has committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_rings_for_every_transaction_it_settled() -> Result {
    let app = TestApp::start().await?;
    let mut seeded = Vec::new();
    for i in 0..3 {
        seeded.push(
            app.payment_and_success(&format!("batch-doorbell-{i}"), 700)
                .await?,
        );
    }
    let mut listener = listen(&app).await?;

    let events = seeded
        .iter()
        .map(|(_, event)| StripeEvent::from_value(event.clone()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch: Vec<_> = events.iter().map(|e| (e, EventSource::Webhook)).collect();
    let cache = ConnectionCache::new(app.pool().clone(), 1, Duration::from_secs(60));
    let (doorbell, _ringer) =
        Doorbell::after_commit(app.pool().clone(), Arc::new(Metrics::default()));
    let received = inbox::receive_batch(&cache, &batch, &RULES, &doorbell).await?;
    assert!(
        received.iter().all(|r| matches!(r, Received::Stored(_))),
        "{received:?}"
    );

    let mut expected = Vec::new();
    for (tx, _) in &seeded {
        let settled = app.transaction(tx.id).await?;
        assert_eq!(settled.status, Status::Succeeded);
        expected.push(payload(&settled));
    }
    expected.sort();
    assert_eq!(next_doorbells(&mut listener, seeded.len()).await?, expected);
    Ok(())
}

/// A doorbell that cannot be queued (here: the ringer is gone) is counted as lost, and
/// nothing else breaks: the commit it belongs to stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doorbell_that_cannot_be_queued_is_counted_lost() -> Result {
    let app = TestApp::start().await?;
    let (tx, _) = app.payment_and_success("lost-doorbell", 700).await?;
    let metrics = Arc::new(Metrics::default());
    let (doorbell, ringer) = Doorbell::after_commit(app.pool().clone(), metrics.clone());
    ringer.abort();
    assert!(ringer.await.is_err_and(|e| e.is_cancelled()));

    doorbell.ring(format!(
        "{}:{} {}:{}",
        tx.id,
        tx.version + 1,
        tx.id,
        tx.version + 2
    ));
    assert_eq!(
        (metrics.doorbells("rung"), metrics.doorbells("lost")),
        (0, 2)
    );
    Ok(())
}

/// Batches of group commit that mix one-statement successes (users with a wallet) with
/// events the general path applies (a cancel) ring for every transaction they changed,
/// once, whichever comes last in the batch; so does a batch made only of such successes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_one_statement_successes_ring_for_every_transaction() -> Result {
    let app = TestApp::start().await?;
    let mut seeded = Vec::new();
    for i in 0..6 {
        let (user, pi) = (format!("mixed-{i}"), format!("pi_mixed_{i}"));
        wallet(&app, &user).await?;
        let tx = app.payment(&user, 700, &pi).await?;
        let pi = Pi {
            id: &pi,
            tx: Some(tx.id),
            amount: 700,
            currency: "usd",
        };
        let event = if i == 0 || i == 3 {
            pi.canceled()
        } else {
            pi.succeeded()
        };
        seeded.push((tx, StripeEvent::from_value(event)?));
    }
    let mut listener = listen(&app).await?;
    let cache = ConnectionCache::new(app.pool().clone(), 1, Duration::from_secs(60));
    let metrics = Arc::new(Metrics::default());
    let (doorbell, ringer) = Doorbell::after_commit(app.pool().clone(), metrics.clone());
    // The cancel first, then last, then no cancel at all.
    for pair in seeded.chunks(2) {
        let batch: Vec<_> = pair
            .iter()
            .map(|(_, e)| (e, EventSource::Webhook))
            .collect();
        let received = inbox::receive_batch(&cache, &batch, &RULES, &doorbell).await?;
        assert!(
            received.iter().all(|r| matches!(r, Received::Stored(_))),
            "{received:?}"
        );
    }
    drop(doorbell);
    tokio::time::timeout(Duration::from_secs(10), ringer).await??;

    let mut expected = Vec::new();
    for (i, (tx, _)) in seeded.iter().enumerate() {
        let now = app.transaction(tx.id).await?;
        let status = match i {
            0 | 3 => Status::Canceled,
            _ => Status::Succeeded,
        };
        assert_eq!(now.status, status);
        expected.push(payload(&now));
    }
    expected.sort();
    assert_eq!(next_doorbells(&mut listener, seeded.len()).await?, expected);
    // Each once: six rung in all, and nothing else rang inside a commit (a doorbell
    // rung twice would be counted, or would arrive after the six).
    assert_eq!(
        (metrics.doorbells("rung"), metrics.doorbells("lost")),
        (6, 0)
    );
    Ok(())
}
