//! The catch-up pass against stripe-sim with no webhook endpoint at all: every event
//! exists only in Stripe's list. The pass keeps a cursor and reads forward from it,
//! however many events were missed and whatever they are about.

use std::time::Duration;

use futures::{StreamExt as _, stream};
use payments_core::{
    TransactionId, TransactionStatus as Status, retry::RetryPolicy, store::CatchUpCursor,
};
use payments_stripe::StripeConfig;
use serde_json::Value;
use stripe_sim::StripeSim;
use uuid::Uuid;
use webhook_ingestor::{stripe_api::StripeApi, workers::catch_up::CatchUp};

use crate::helpers::{NewTx, Result, SECRET, TestApp, eventually};

/// Transactions paid while the endpoint was gone: each adds one acted-on event, so
/// with the refund and the retried 3DS payment well over 2,000 events are missed.
const MISSED_PAYMENTS: usize = 2_150;
const KEY: &str = "sk_test_catch_up";

struct Setup {
    sim: StripeSim,
    app: TestApp,
    catch_up: CatchUp,
    http: reqwest::Client,
}

/// A simulator with no endpoint, an ingestor whose own catch-up loop is off, and a
/// catch-up worker the test runs pass by pass.
async fn setup() -> Result<Setup> {
    let sim = StripeSim::builder()
        .webhook_secret(SECRET)
        .seed(7)
        .bind("127.0.0.1:0".parse()?)
        .start()
        .await?;
    let base = sim.base_url().to_owned();
    let app = TestApp::start_with(|c| c.stripe_api_base = base.clone()).await?;
    let stripe = StripeApi::new(&StripeConfig {
        api_base: base,
        secret_key: KEY.to_owned().into(),
        timeout: Duration::from_secs(10),
    })?;
    let catch_up = CatchUp {
        pool: app.pool().clone(),
        stripe,
        metrics: app.metrics.clone(),
        rules: payments_core::inbox::Rules {
            retry: RetryPolicy {
                base: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
                max_attempts: 5,
            },
            mode: payments_core::StripeMode::Test,
        },
    };
    Ok(Setup {
        sim,
        app,
        catch_up,
        http: reqwest::Client::new(),
    })
}

impl Setup {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}/v1/{path}", self.sim.base_url()))
            .bearer_auth(KEY)
            .form(form)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }

    /// A PaymentIntent for `tx`, confirmed with `card`, as payments-api makes it.
    async fn pay(&self, tx: TransactionId, amount: i64, card: &str) -> Result<String> {
        let (amount, tx) = (amount.to_string(), tx.to_string());
        let pi = self
            .post(
                "payment_intents",
                &[
                    ("amount", amount.as_str()),
                    ("currency", "usd"),
                    ("payment_method", card),
                    ("confirm", "true"),
                    ("metadata[transaction_id]", tx.as_str()),
                ],
            )
            .await?;
        Ok(pi["id"].as_str().unwrap_or_default().to_owned())
    }

    async fn status(&self, tx: TransactionId) -> Result<Status> {
        Ok(self.app.transaction(tx).await?.status)
    }

    async fn cursor(&self) -> Result<Option<CatchUpCursor>> {
        let mut conn = self.app.pool().acquire().await?;
        Ok(payments_core::store::catch_up_cursor(&mut conn).await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_missed_events_and_those_of_settled_payments_are_all_caught_up() -> Result {
    let s = setup().await?;
    // Before the outage: a top-up that succeeds and a 3DS top-up whose challenge fails.
    let paid = s.app.insert(&NewTx::payment("ann", 4_000)).await?;
    let paid_pi = s.pay(paid.id, 4_000, "pm_card_visa").await?;
    s.app.set_pi(&paid, &paid_pi).await?;
    let retried = s.app.insert(&NewTx::payment("ben", 2_500)).await?;
    let retried_pi = s
        .pay(retried.id, 2_500, "pm_card_threeDSecure2Required")
        .await?;
    s.app.set_pi(&retried, &retried_pi).await?;
    s.sim
        .authenticate_3ds(&retried_pi, false)
        .map_err(|e| anyhow::anyhow!("3DS: {e:?}"))?;
    s.catch_up.pass().await?;
    assert_eq!(s.status(paid.id).await?, Status::Succeeded);
    assert_eq!(s.status(retried.id).await?, Status::Failed);
    let before = s.cursor().await?.expect("the first pass sets the cursor");

    // The outage: the settled top-up is refunded, the failed one is paid after all on
    // the same PaymentIntent, and thousands of other top-ups succeed.
    s.post("refunds", &[("payment_intent", paid_pi.as_str())])
        .await?;
    s.post(
        &format!("payment_intents/{retried_pi}/confirm"),
        &[("payment_method", "pm_card_visa")],
    )
    .await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO transactions (id, user_id, kind, status, amount, currency, idempotency_key, \
                                   request_fingerprint) \
         SELECT gen_random_uuid(), 'cat', 'payment', 'created', 100, 'usd', 'bulk-' || n, 'test' \
           FROM generate_series(1, $1) AS n RETURNING id",
    )
    .bind(i32::try_from(MISSED_PAYMENTS)?)
    .fetch_all(s.app.pool())
    .await?;
    let pis: Vec<Result<(Uuid, String)>> = stream::iter(ids)
        .map(|id| {
            let s = &s;
            async move { Ok((id, s.pay(id.into(), 100, "pm_card_visa").await?)) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let (ids, pis): (Vec<Uuid>, Vec<String>) = pis
        .into_iter()
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    sqlx::query(
        "UPDATE transactions t SET stripe_payment_intent_id = p.pi \
           FROM unnest($1::uuid[], $2::text[]) AS p (id, pi) WHERE t.id = p.id",
    )
    .bind(&ids)
    .bind(&pis)
    .execute(s.app.pool())
    .await?;

    s.catch_up.pass().await?;
    let stored = s
        .app
        .count("SELECT count(*) FROM stripe_events WHERE source = 'catch_up'")
        .await?;
    assert!(
        stored > 2_000 + 2,
        "every missed event is stored, not the newest 2,000: {stored}"
    );
    let after = s.cursor().await?.expect("cursor");
    assert_ne!(after, before, "the cursor moved to the newest event");
    let newest_listed = s
        .sim
        .events()
        .into_iter()
        .rev()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .expect("an event");
    assert_eq!(
        after.event_id,
        newest_listed["id"].as_str().unwrap_or_default()
    );

    eventually("every missed payment is credited", || async {
        Ok(s.app.balance("cat").await? == 100 * i64::try_from(MISSED_PAYMENTS)?)
    })
    .await?;
    eventually("the refund and the late success are applied", || async {
        Ok(s.status(paid.id).await? == Status::Refunded
            && s.status(retried.id).await? == Status::Succeeded)
    })
    .await?;
    assert_eq!(s.app.balance("ann").await?, 0);
    assert_eq!(s.app.balance("ben").await?, 2_500);

    // A pass with nothing new reads one empty page and leaves the cursor.
    s.catch_up.pass().await?;
    assert_eq!(s.cursor().await?, Some(after));
    s.sim.shutdown().await;
    Ok(())
}
