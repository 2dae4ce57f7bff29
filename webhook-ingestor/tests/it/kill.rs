//! The real ingestor binary, killed with SIGKILL in the middle of a burst of webhooks.
//! Whatever the process held is lost with it (requests half read, database transactions
//! half done); Stripe (here stripe-sim, in-process) retries every delivery that got no
//! 2xx, and the restarted process settles each payment exactly once.

use std::{
    collections::HashMap,
    fs::File,
    net::{SocketAddr, TcpListener},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use payments_core::{
    Currency, Money, Transaction, TransactionKind, UserId,
    store::{self, Inserted, NewTransaction, StripeRefs},
    testing::TestDb,
};
use sqlx::PgPool;
use stripe::{Client, ClientBuilder};
use stripe_core::payment_intent::CreatePaymentIntent;
use stripe_sim::StripeSim;
use tempfile::TempDir;

use crate::helpers::{Result, SECRET};

const PAYMENTS: usize = 200;
const USERS: usize = 10;
const SIGKILL: i32 = 9;

/// How every run of the binary in one test is configured.
struct Launch<'a> {
    db_url: &'a str,
    stripe: &'a str,
    /// Fixed: the simulator's webhook endpoint must not change across the restart.
    addr: SocketAddr,
    logs: &'a Path,
    /// Variables on top of the common ones.
    env: &'a [(&'a str, &'a str)],
}

/// The ingestor binary running as a child process.
struct Ingestor {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Ingestor {
    /// Starts the binary (logging to `<name>.log`) and waits until `/readyz` answers 200.
    async fn start(launch: &Launch<'_>, name: &str) -> Result<Self> {
        let log = launch.logs.join(format!("{name}.log"));
        let out = File::create(&log).context("creating the ingestor's log file")?;
        let child = Command::new(env!("CARGO_BIN_EXE_webhook-ingestor"))
            .env("INGESTOR_ADDR", launch.addr.to_string())
            .env("DATABASE_URL", launch.db_url)
            .env("STRIPE_API_BASE", launch.stripe)
            .env("STRIPE_SECRET_KEY", "sk_test_kill")
            .env("STRIPE_WEBHOOK_SECRETS", SECRET)
            .env("INGESTOR_DB_ACQUIRE_TIMEOUT_MS", "1000")
            .env("INGESTOR_EVENT_WORKER_INTERVAL_MS", "50")
            .env("INGESTOR_OUTBOX_INTERVAL_MS", "50")
            .env("INGESTOR_RETRY_BASE_MS", "50")
            .env("INGESTOR_RETRY_MAX_BACKOFF_SECS", "1")
            // Only redelivered webhooks may settle the payments here.
            .env("INGESTOR_RECONCILE_INTERVAL_SECS", "0")
            .env("INGESTOR_CATCH_UP_INTERVAL_SECS", "0")
            .env("INGESTOR_SHUTDOWN_GRACE_SECS", "5")
            .env("RUST_LOG", "info")
            .envs(launch.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawning the webhook-ingestor binary")?;
        let mut ingestor = Ingestor {
            child,
            addr: launch.addr,
            log,
        };
        ingestor.wait_ready().await?;
        Ok(ingestor)
    }

    async fn wait_ready(&mut self) -> Result {
        let url = format!("http://{}/readyz", self.addr);
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the ingestor exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the ingestor was not ready within 20 s:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no signal handler runs, nothing is drained.
    fn kill(mut self) -> Result {
        self.child.kill()?;
        let status = self.child.wait()?;
        assert_eq!(status.signal(), Some(SIGKILL), "{status}");
        Ok(())
    }

    /// SIGTERM, and the graceful shutdown must end with a zero exit status.
    async fn stop(mut self) -> Result {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                assert!(status.success(), "{status}:\n{}", self.log_tail());
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the ingestor did not stop within 10 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Ingestor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on now. The ingestor binds it itself, and binds it
/// again after the restart: the simulator's endpoint must not change.
fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One payment as payments-api leaves it before calling Stripe.
async fn insert_payment(pool: &PgPool, user: &str, amount: i64) -> Result<Transaction> {
    let mut conn = pool.acquire().await?;
    let new = NewTransaction {
        user_id: UserId::parse(user)?,
        kind: TransactionKind::Payment,
        amount: Money::new(amount, Currency::parse("usd")?)?,
        payment_method_id: Some("pm_card_visa".into()),
        coupon_code: None,
        card_fingerprint: None,
        trial_credit: None,
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        request_fingerprint: "kill".into(),
    };
    match store::insert_transaction(&mut conn, &new).await? {
        Inserted::New(tx) => Ok(tx),
        Inserted::Existing(_) => bail!("fresh idempotency key was already used"),
    }
}

/// Creates and confirms the PaymentIntent at the simulator and records it, as
/// payments-api does; the simulator emits `payment_intent.succeeded` at once.
async fn pay(pool: &PgPool, stripe: &Client, tx: &Transaction) -> Result {
    let metadata = HashMap::from([("transaction_id".to_owned(), tx.id.to_string())]);
    let pi = CreatePaymentIntent::new(tx.amount.minor(), stripe_types::Currency::USD)
        .payment_method("pm_card_visa")
        .confirm(true)
        .metadata(metadata)
        .send(stripe)
        .await?;
    let refs = StripeRefs {
        payment_intent_id: Some(pi.id.as_str()),
        ..StripeRefs::default()
    };
    let mut conn = pool.acquire().await?;
    // A deadlock's victim is UNAVAILABLE at payments-api, and its caller sends again.
    let mut attempt = 1;
    loop {
        match store::set_stripe_refs(&mut conn, tx.id, &refs).await {
            Err(e) if e.is_lock_cycle() && attempt < 3 => attempt += 1,
            done => return Ok(done?),
        }
    }
}

async fn scalar(pool: &PgPool, sql: &'static str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

async fn succeeded(pool: &PgPool) -> Result<i64> {
    scalar(
        pool,
        "SELECT count(*) FROM transactions WHERE status = 'succeeded'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_ingestor_loses_no_payment_and_credits_none_twice() -> Result {
    kill_mid_burst(&[]).await
}

/// Webhooks that arrive together share one database transaction: the kill must not
/// have answered any of them before that commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_ingestor_committing_in_groups_loses_nothing_either() -> Result {
    kill_mid_burst(&[
        ("INGESTOR_GROUP_COMMIT_MAX_EVENTS", "32"),
        ("INGESTOR_GROUP_COMMIT_COMMITTERS", "2"),
    ])
    .await
}

/// Runs the binary, starts a burst of payments whose webhooks it settles, SIGKILLs it
/// a quarter of the way through, starts it again and lets the simulator redeliver.
async fn kill_mid_burst(env: &[(&str, &str)]) -> Result {
    let db = TestDb::new().await;
    let logs = TempDir::new()?;
    let sim = StripeSim::builder()
        .webhook_secret(SECRET)
        .seed(7)
        .bind("127.0.0.1:0".parse()?)
        .start()
        .await?;
    let launch = Launch {
        db_url: &db.url,
        stripe: sim.base_url(),
        addr: free_port()?,
        logs: logs.path(),
        env,
    };
    sim.add_webhook_endpoint(format!("http://{}/v1/stripe-webhook", launch.addr));
    let first = Ingestor::start(&launch, "first").await?;

    let mut txs = Vec::with_capacity(PAYMENTS);
    let mut expected: HashMap<String, i64> = HashMap::new();
    for i in 0..PAYMENTS {
        let user = format!("killed-{}", i % USERS);
        let amount = 500 + i64::try_from(i)?;
        txs.push(insert_payment(&db.pool, &user, amount).await?);
        *expected.entry(user).or_default() += amount;
    }
    let stripe = ClientBuilder::new("sk_test_kill")
        .url(sim.base_url())
        .build()?;
    let burst = futures::stream::iter(&txs)
        .map(|tx| pay(&db.pool, &stripe, tx))
        .buffer_unordered(8)
        .try_collect::<()>();
    let crash = async {
        // Mid-burst: some payments settled, most still on their way.
        let quarter = i64::try_from(PAYMENTS / 4)?;
        crate::helpers::eventually("a quarter of the burst is settled", || async {
            Ok(succeeded(&db.pool).await? >= quarter)
        })
        .await?;
        first.kill()?;
        let at_kill = succeeded(&db.pool).await?;
        assert!(
            at_kill < i64::try_from(PAYMENTS)?,
            "the burst was over before the kill"
        );
        // Deliveries meanwhile find nothing listening and are retried.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ingestor::start(&launch, "second").await
    };
    let (paid, second) = tokio::join!(burst, crash);
    paid?;
    let second = second?;

    let all = i64::try_from(PAYMENTS)?;
    crate::helpers::eventually("every payment is settled", || async {
        Ok(succeeded(&db.pool).await? == all)
    })
    .await?;
    assert!(sim.wait_for_deliveries(Duration::from_secs(20)).await);
    let stats = sim.delivery_stats();
    assert_eq!(stats.failed, 0, "no delivery may give up: {stats:?}");
    assert!(
        stats.attempts > stats.delivered,
        "the kill made some deliveries fail and be retried: {stats:?}"
    );
    assert_credited_once(&db.pool, &txs, &expected).await?;
    assert_stripe_side(&sim, &db.pool).await?;
    second.stop().await?;
    sim.shutdown().await;
    Ok(())
}

/// One credit per payment, of its amount; balances exact; the ledger check clean.
async fn assert_credited_once(
    pool: &PgPool,
    txs: &[Transaction],
    expected: &HashMap<String, i64>,
) -> Result {
    let credits: Vec<(uuid::Uuid, String, i64)> =
        sqlx::query_as("SELECT transaction_id, kind, amount FROM ledger_entries ORDER BY id")
            .fetch_all(pool)
            .await?;
    assert_eq!(credits.len(), txs.len(), "one ledger entry per payment");
    let by_tx: HashMap<uuid::Uuid, (String, i64)> = credits
        .into_iter()
        .map(|(tx, kind, amount)| (tx, (kind, amount)))
        .collect();
    for tx in txs {
        let credit = by_tx.get(&tx.id.as_uuid());
        assert_eq!(
            credit,
            Some(&("payment_credit".to_owned(), tx.amount.minor())),
            "{}",
            tx.id
        );
    }
    let transitions = scalar(
        pool,
        "SELECT count(*) FROM transaction_transitions WHERE to_status = 'succeeded'",
    )
    .await?;
    assert_eq!(transitions, i64::try_from(txs.len())?);

    let mut conn = pool.acquire().await?;
    for (user, balance) in expected {
        let wallet = store::get_wallet(&mut conn, &UserId::parse(user)?).await?;
        assert_eq!(wallet.map(|w| w.balance), Some(*balance), "{user}");
    }
    let report = store::check_ledger(&mut conn).await?;
    assert_eq!(report.wallets_checked, i64::try_from(USERS)?);
    assert!(report.mismatches.is_empty(), "{report:?}");
    Ok(())
}

/// The simulator made exactly one PaymentIntent per payment, and each of their
/// `payment_intent.succeeded` events is stored once.
async fn assert_stripe_side(sim: &StripeSim, pool: &PgPool) -> Result {
    let events = sim.events();
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("payment_intent.created"), PAYMENTS);
    assert_eq!(count("payment_intent.succeeded"), PAYMENTS);
    let stored = scalar(
        pool,
        "SELECT count(*) FROM stripe_events WHERE type = 'payment_intent.succeeded'",
    )
    .await?;
    assert_eq!(stored, i64::try_from(PAYMENTS)?);
    Ok(())
}
