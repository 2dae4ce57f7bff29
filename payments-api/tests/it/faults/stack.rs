//! [`Stack`]: stripe-sim, one or more webhook-ingestors and one or more payments-api
//! instances in-process against one database, with relays that spread the webhooks over
//! the ingestors and record the ingestors' calls to Stripe. Typed calls and the
//! end-of-test checks (balances, ledger, Stripe-side objects) live here too.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use payments_proto::payments::v1::{
    self as pb, TransactionStatus as S, payments_admin_client::PaymentsAdminClient,
};
use sqlx::{PgPool, postgres::PgPoolOptions};
use stripe_sim::{StripeSim, StripeSimBuilder};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, transport::Channel};

use super::relay::Relay;
use crate::helpers::{Client, JWT_SECRET, WEBHOOK_SECRET, as_user, service_token, with_token};

const WAIT: Duration = Duration::from_secs(20);

/// What to start.
pub struct Spec {
    /// Seed and chaos; the stack adds the signing secret and a port.
    pub sim: StripeSimBuilder,
    pub ingestors: usize,
    pub apis: usize,
    /// Off: every webhook is lost (only reconciliation and catch-up remain).
    pub deliver_webhooks: bool,
    pub ingestor: fn(&mut webhook_ingestor::Config),
    pub api: fn(&mut payments_api::Config),
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            sim: StripeSim::builder().seed(1),
            ingestors: 1,
            apis: 1,
            deliver_webhooks: true,
            ingestor: |_| {},
            api: |_| {},
        }
    }
}

pub struct Stack {
    pub sim: StripeSim,
    /// For the checks; reconnects by itself after a database restart.
    pub pool: PgPool,
    /// Stripe's webhooks, spread over the ingestors in turn.
    pub webhooks: Relay,
    /// The ingestors' calls to Stripe (reconciliation reads, outbox calls).
    pub stripe_calls: Relay,
    clients: Vec<Client>,
    admin: PaymentsAdminClient<Channel>,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    pub async fn start(database_url: &str, spec: Spec) -> Stack {
        let sim = spec
            .sim
            .webhook_secret(WEBHOOK_SECRET)
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .start()
            .await
            .expect("stripe-sim starts");
        let stripe_calls = Relay::start(vec![sim.base_url().to_owned()]).await;
        let shutdown = CancellationToken::new();
        let mut servers = Vec::new();
        let mut ingestors = Vec::new();
        for _ in 0..spec.ingestors {
            let mut config = webhook_ingestor::Config::for_tests(
                database_url,
                &stripe_calls.url(""),
                WEBHOOK_SECRET,
            );
            (spec.ingestor)(&mut config);
            let app = webhook_ingestor::App::build(config)
                .await
                .expect("the ingestor starts");
            ingestors.push(format!("http://{}", app.local_addr()));
            servers.push(tokio::spawn(app.run_until_stopped(shutdown.clone())));
        }
        let webhooks = Relay::start(ingestors).await;
        if spec.deliver_webhooks {
            sim.add_webhook_endpoint(webhooks.url("/v1/stripe-webhook"));
        }
        let mut clients = Vec::new();
        let mut addrs = Vec::new();
        let mut admin_addrs = Vec::new();
        for _ in 0..spec.apis {
            let mut config =
                payments_api::Config::for_tests(database_url, sim.base_url(), JWT_SECRET);
            (spec.api)(&mut config);
            let app = payments_api::App::build(config)
                .await
                .expect("payments-api starts");
            let addr = format!("http://{}", app.local_addr());
            admin_addrs.push(format!("http://{}", app.admin_addr()));
            servers.push(tokio::spawn(app.run_until_stopped(shutdown.clone())));
            clients.push(Client::connect(addr.clone()).await.expect("connect"));
            addrs.push(addr);
        }
        let admin = PaymentsAdminClient::connect(admin_addrs[0].clone())
            .await
            .expect("connect");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .connect(database_url)
            .await
            .expect("connect for the checks");
        Stack {
            sim,
            pool,
            webhooks,
            stripe_calls,
            clients,
            admin,
            shutdown,
            servers,
        }
    }

    /// A client of the `n`th payments-api instance (wrapping around).
    pub fn api(&self, n: usize) -> Client {
        self.clients[n % self.clients.len()].clone()
    }

    /// Stops every server and waits for each to end cleanly.
    pub async fn stop(mut self) {
        crate::helpers::stop_servers(&self.shutdown, self.servers.drain(..)).await;
        self.pool.close().await;
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A top-up to make: who, with which card, how much, under which idempotency key.
#[derive(Debug, Clone)]
pub struct Payment {
    pub user: String,
    pub card: String,
    pub amount: i64,
    pub key: String,
}

impl Payment {
    pub fn request(&self) -> pb::CreatePaymentRequest {
        pb::CreatePaymentRequest {
            user_id: self.user.clone(),
            payment_method_id: self.card.clone(),
            amount: self.amount,
            currency: "usd".into(),
            idempotency_key: self.key.clone(),
        }
    }
}

/// What a client saw while insisting on one payment.
#[derive(Debug)]
pub struct Paid {
    pub transaction: pb::Transaction,
    /// UNAVAILABLE answers before the call went through.
    pub unavailable: u32,
}

impl Stack {
    pub async fn attach(&self, n: usize, user: &str, token: &str) -> pb::PaymentMethod {
        let req = pb::AttachPaymentMethodRequest {
            user_id: user.into(),
            payment_method_id: token.into(),
        };
        self.api(n)
            .attach_payment_method(as_user(user, req))
            .await
            .expect("attach")
            .into_inner()
    }

    /// CreatePayment as a careful client makes it: on UNAVAILABLE it waits a little and
    /// retries with the same idempotency key, until `WAIT` has passed.
    pub async fn pay(&self, n: usize, payment: &Payment) -> Paid {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut unavailable = 0;
        loop {
            let answer = self
                .api(n)
                .create_payment(as_user(&payment.user, payment.request()))
                .await;
            match answer {
                Ok(response) => {
                    let transaction = response.into_inner().transaction.expect("tx");
                    return Paid {
                        transaction,
                        unavailable,
                    };
                }
                Err(status) if status.code() == Code::Unavailable => {
                    unavailable += 1;
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{payment:?} still unavailable: {status:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("{payment:?}: {status:?}"),
            }
        }
    }

    /// CreatePayment once, as a client that walks away from an error.
    pub async fn pay_once(&self, n: usize, payment: &Payment) -> Result<pb::Transaction, Status> {
        let response = self
            .api(n)
            .create_payment(as_user(&payment.user, payment.request()))
            .await?;
        Ok(response.into_inner().transaction.expect("tx"))
    }

    /// The transaction stored under a payment's idempotency key (whatever the client heard).
    pub async fn transaction_for(&self, payment: &Payment) -> pb::Transaction {
        let id: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM transactions WHERE idempotency_key = $1")
                .bind(&payment.key)
                .fetch_one(&self.pool)
                .await
                .expect("the transaction is stored before Stripe is called");
        self.transaction(&payment.user, &id.to_string())
            .await
            .expect("get transaction")
    }

    pub async fn transaction(&self, user: &str, id: &str) -> Result<pb::Transaction, Status> {
        let req = pb::GetTransactionRequest {
            transaction_id: id.into(),
        };
        Ok(self
            .api(0)
            .get_transaction(as_user(user, req))
            .await?
            .into_inner())
    }

    pub async fn wallet(&self, user: &str) -> Result<pb::Wallet, Status> {
        let req = pb::GetWalletRequest {
            user_id: user.into(),
        };
        Ok(self
            .api(0)
            .get_wallet(as_user(user, req))
            .await?
            .into_inner())
    }

    /// Polls until the transaction has settled (succeeded, failed or canceled).
    pub async fn settled(&self, user: &str, id: &str, within: Duration) -> pb::Transaction {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let tx = self.transaction(user, id).await.expect("get transaction");
            if [S::Succeeded, S::Failed, S::Canceled].contains(&tx.status()) {
                return tx;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} not settled within {within:?}: {tx:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// The end-of-test checks.

impl Stack {
    /// Every wallet holds exactly `expected`; each of `credited` has exactly one ledger
    /// entry, a credit of its amount, and nothing else is in the ledger; CheckLedger
    /// finds no wallet that differs from its ledger.
    pub async fn assert_books(
        &self,
        expected: &HashMap<String, i64>,
        credited: &[pb::Transaction],
    ) {
        for (user, balance) in expected {
            let wallet = self.wallet(user).await.expect("get wallet");
            assert_eq!(wallet.balance, *balance, "balance of {user}");
        }
        let entries: Vec<(uuid::Uuid, String, i64)> =
            sqlx::query_as("SELECT transaction_id, kind, amount FROM ledger_entries")
                .fetch_all(&self.pool)
                .await
                .expect("read the ledger");
        assert_eq!(entries.len(), credited.len(), "one ledger entry per credit");
        let by_tx: HashMap<String, (String, i64)> = entries
            .into_iter()
            .map(|(tx, kind, amount)| (tx.to_string(), (kind, amount)))
            .collect();
        for tx in credited {
            let entry = by_tx.get(&tx.id);
            assert_eq!(
                entry,
                Some(&("payment_credit".to_owned(), tx.amount)),
                "{}",
                tx.id
            );
        }
        let report = self
            .admin
            .clone()
            .check_ledger(with_token(&service_token(), pb::CheckLedgerRequest {}))
            .await
            .expect("check ledger")
            .into_inner();
        assert_eq!(
            report.wallets_checked,
            i64::try_from(expected.len()).unwrap_or(0)
        );
        assert!(report.mismatches.is_empty(), "{report:?}");
    }

    /// The PaymentIntents stripe-sim created, by our transaction id (from their metadata).
    pub fn payment_intents(&self) -> HashMap<String, Vec<String>> {
        let mut by_tx: HashMap<String, Vec<String>> = HashMap::new();
        for event in self.sim.events() {
            if event["type"] != "payment_intent.created" {
                continue;
            }
            let object = &event["data"]["object"];
            let tx = object["metadata"]["transaction_id"].as_str().unwrap_or("");
            let pi = object["id"].as_str().unwrap_or("");
            by_tx.entry(tx.to_owned()).or_default().push(pi.to_owned());
        }
        by_tx
    }

    /// Asserts stripe-sim holds exactly one PaymentIntent for each transaction, the one
    /// the transaction records.
    pub fn assert_one_payment_intent_each(&self, txs: &[pb::Transaction]) {
        let created = self.payment_intents();
        assert_eq!(created.len(), txs.len(), "PaymentIntents by transaction");
        for tx in txs {
            let pis = created.get(&tx.id).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(
                pis,
                std::slice::from_ref(&tx.stripe_payment_intent_id),
                "{}",
                tx.id
            );
        }
    }

    /// A PaymentIntent as stripe-sim has it now.
    pub async fn sim_payment_intent(&self, id: &str) -> serde_json::Value {
        crate::helpers::sim_get(&self.sim, &format!("payment_intents/{id}")).await
    }

    /// Causes recorded for transitions into `status`, by transaction id.
    pub async fn causes(&self, status: &str) -> HashMap<String, Vec<String>> {
        let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT transaction_id, cause FROM transaction_transitions WHERE to_status = $1",
        )
        .bind(status)
        .fetch_all(&self.pool)
        .await
        .expect("read transitions");
        let mut by_tx: HashMap<String, Vec<String>> = HashMap::new();
        for (tx, cause) in rows {
            by_tx.entry(tx.to_string()).or_default().push(cause);
        }
        by_tx
    }
}

/// What each user's wallet must hold: the sum of their payments for which `paid(i)`
/// holds (`i` the payment's index), and 0 for a user with none.
pub fn expected_balances(
    payments: &[Payment],
    paid: impl Fn(usize) -> bool,
) -> HashMap<String, i64> {
    let mut balances: HashMap<String, i64> = HashMap::new();
    for (i, payment) in payments.iter().enumerate() {
        let balance = balances.entry(payment.user.clone()).or_default();
        if paid(i) {
            *balance += payment.amount;
        }
    }
    balances
}
