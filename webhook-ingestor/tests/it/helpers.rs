//! A running ingestor on a fresh database, typed seeding helpers and signed posting.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use payments_core::{
    Currency, Money, Transaction, TransactionId, TransactionKind, UserId,
    store::{self, Inserted, NewTransaction, StripeRefs},
    testing::TestDb,
};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webhook_ingestor::{App, Config, Metrics, signature};

use crate::events::{Pi, new_id};

pub const SECRET: &str = "whsec_integration_test_secret";
/// Nothing listens here: outbox calls fail fast and are retried.
pub const NO_STRIPE: &str = "http://127.0.0.1:9";

pub type Result<T = ()> = anyhow::Result<T>;

/// One ingestor instance serving on a loopback port.
pub struct Instance {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Instance {
    pub async fn start(config: Config) -> Result<Instance> {
        let app = App::build(config).await?;
        let (addr, metrics) = (app.local_addr(), app.metrics());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Ok(Instance {
            addr,
            metrics,
            http: reqwest::Client::new(),
            shutdown,
            task: Some(task),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts `body` with `header` as `Stripe-Signature` (none if None).
    pub async fn post_raw(&self, body: Vec<u8>, header: Option<String>) -> Result<(u16, String)> {
        let mut request = self
            .http
            .post(self.url("/v1/stripe-webhook"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(header) = header {
            request = request.header("stripe-signature", header);
        }
        let response = request.send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// Posts an event signed now with the test secret.
    pub async fn post(&self, event: &serde_json::Value) -> Result<(u16, String)> {
        let body = serde_json::to_vec(event)?;
        let header = signature::signature_header(SECRET, now(), &body);
        self.post_raw(body, Some(header)).await
    }

    /// Posts and insists on 200.
    pub async fn deliver(&self, event: &serde_json::Value) -> Result<String> {
        let (status, text) = self.post(event).await?;
        if status != 200 {
            bail!("delivery answered {status}: {text}");
        }
        Ok(text)
    }

    /// Delivers like Stripe does under load: a 5xx (nothing stored) is retried.
    pub async fn deliver_retrying(&self, event: &serde_json::Value) -> Result<String> {
        for _ in 0..20 {
            let (status, text) = self.post(event).await?;
            match status {
                200 => return Ok(text),
                500..=599 => {
                    eprintln!("delivery answered {status}: {text}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => bail!("delivery answered {status}: {text}"),
            }
        }
        bail!("still failing after 20 deliveries")
    }

    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let response = self.http.get(self.url(path)).send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// Requests a graceful shutdown and waits for it.
    pub async fn stop(mut self) -> Result {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An ingestor on its own fresh database.
pub struct TestApp {
    pub app: Instance,
    // Declared after the instance so the instance stops before the database is dropped.
    pub db: TestDb,
}

impl std::ops::Deref for TestApp {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.app
    }
}

impl TestApp {
    pub async fn start() -> Result<TestApp> {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Result<TestApp> {
        let db = TestDb::new().await;
        let mut config = Config::for_tests(&db.url, NO_STRIPE, SECRET);
        tweak(&mut config);
        let app = Instance::start(config).await?;
        Ok(TestApp { app, db })
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Inserts a transaction as payments-api does before calling Stripe, and records
    /// the PaymentIntent it got back.
    pub async fn payment(&self, user: &str, amount: i64, pi: &str) -> Result<Transaction> {
        let tx = self.insert(&NewTx::payment(user, amount)).await?;
        self.set_pi(&tx, pi).await?;
        Ok(tx)
    }

    /// A payment as [`payment`](Self::payment) makes it, with a fresh PaymentIntent id,
    /// and the `payment_intent.succeeded` that settles it.
    pub async fn payment_and_success(
        &self,
        user: &str,
        amount: i64,
    ) -> Result<(Transaction, serde_json::Value)> {
        let pi = new_id("pi");
        let tx = self.payment(user, amount, &pi).await?;
        let event = Pi {
            id: &pi,
            tx: Some(tx.id),
            amount,
            currency: "usd",
        }
        .succeeded();
        Ok((tx, event))
    }

    pub async fn insert(&self, new: &NewTx) -> Result<Transaction> {
        let mut conn = self.pool().acquire().await?;
        insert_on(&mut conn, new).await
    }

    pub async fn set_pi(&self, tx: &Transaction, pi: &str) -> Result {
        let refs = StripeRefs {
            payment_intent_id: Some(pi),
            ..StripeRefs::default()
        };
        self.set_refs(tx.id, &refs).await
    }

    pub async fn set_refs(&self, id: TransactionId, refs: &StripeRefs<'_>) -> Result {
        let mut conn = self.pool().acquire().await?;
        store::set_stripe_refs(&mut conn, id, refs).await?;
        Ok(())
    }

    pub async fn transaction(&self, id: TransactionId) -> Result<Transaction> {
        let mut conn = self.pool().acquire().await?;
        store::get_transaction(&mut conn, id)
            .await?
            .context("transaction not found")
    }

    pub async fn balance(&self, user: &str) -> Result<i64> {
        let mut conn = self.pool().acquire().await?;
        let wallet = store::get_wallet(&mut conn, &UserId::parse(user)?).await?;
        Ok(wallet.map_or(0, |w| w.balance))
    }

    /// (state, attempts, last_error) of a stored event.
    pub async fn event_row(&self, id: &str) -> Result<Option<(String, i32, Option<String>)>> {
        Ok(
            sqlx::query_as("SELECT state, attempts, last_error FROM stripe_events WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn event_state(&self, id: &str) -> Result<String> {
        Ok(self.event_row(id).await?.context("event not stored")?.0)
    }

    pub async fn count(&self, sql: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn ledger_entries(&self, id: TransactionId) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT kind, amount FROM ledger_entries WHERE transaction_id = $1 ORDER BY id",
        )
        .bind(id.as_uuid())
        .fetch_all(self.pool())
        .await?)
    }

    /// Links a Stripe customer to a user, as payments-api does on first use.
    pub async fn customer(&self, user: &str, stripe_customer: &str) -> Result {
        let mut conn = self.pool().acquire().await?;
        let user = UserId::parse(user)?;
        store::record_stripe_customer(&mut conn, &user, stripe_customer).await?;
        Ok(())
    }
}

/// Inserts a transaction on `conn` (a database transaction left open keeps the row
/// invisible, as payments-api's not yet committed write is).
pub async fn insert_on(conn: &mut sqlx::PgConnection, new: &NewTx) -> Result<Transaction> {
    let currency = Currency::parse(&new.currency)?;
    let row = NewTransaction {
        user_id: UserId::parse(&new.user)?,
        kind: new.kind,
        amount: Money::new(new.amount, currency)?,
        payment_method_id: new.payment_method.clone(),
        coupon_code: new.coupon.clone(),
        card_fingerprint: new.fingerprint.clone(),
        trial_credit: new
            .trial_credit
            .map(|credit| Money::new(credit, currency))
            .transpose()?,
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        request_fingerprint: "test".into(),
    };
    match store::insert_transaction(conn, &row).await? {
        Inserted::New(tx) => Ok(tx),
        Inserted::Existing(_) => bail!("fresh idempotency key was already used"),
    }
}

/// A transaction to seed.
#[derive(Debug, Clone)]
pub struct NewTx {
    pub user: String,
    pub kind: TransactionKind,
    pub amount: i64,
    pub currency: String,
    pub payment_method: Option<String>,
    pub coupon: Option<String>,
    pub fingerprint: Option<String>,
    pub trial_credit: Option<i64>,
}

impl NewTx {
    pub fn payment(user: &str, amount: i64) -> NewTx {
        NewTx {
            user: user.into(),
            kind: TransactionKind::Payment,
            amount,
            currency: "usd".into(),
            payment_method: Some("pm_card_visa".into()),
            coupon: None,
            fingerprint: None,
            trial_credit: None,
        }
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Polls `check` until it returns true, for work the background worker finishes.
pub async fn eventually<F, Fut>(what: &str, mut check: F) -> Result
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
