//! `TestApp`: the whole system started for one test, with typed calls.

use std::{ops::Deref, time::Duration};

use jsonwebtoken::{EncodingKey, Header};
use payments_proto::payments::v1 as pb;
use payments_testkit::System;
use pb::payments_service_client::PaymentsServiceClient;
use serde_json::json;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

pub use payments_testkit::{JWT_SECRET, WEBHOOK_SECRET, sim_get, stop_servers};
pub const TOPUP: i64 = 1_000;
const WAIT: Duration = Duration::from_secs(15);

pub type Client = PaymentsServiceClient<Channel>;

/// The whole system ([`System`]: database, stripe-sim, ingestor, payments-api) with a
/// client and a Stripe client pointed at it; the system's fields and methods (`sim`,
/// `addr`, `db_url()`, `begin_shutdown()`, …) are reached through it.
pub struct TestApp {
    system: System,
    pub stripe: stripe::Client,
    client: Client,
}

impl Deref for TestApp {
    type Target = System;

    fn deref(&self) -> &System {
        &self.system
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// Starts with payments-api's test configuration changed by `tweak`.
    pub async fn start_with(
        tweak: impl Fn(&mut payments_api::Config) + Send + Sync + 'static,
    ) -> TestApp {
        let system = System::start_with(tweak).await;
        let client = PaymentsServiceClient::connect(system.api_url())
            .await
            .expect("connect to payments-api");
        let stripe = stripe::ClientBuilder::new("sk_test_tests")
            .url(system.sim.base_url())
            .build()
            .expect("stripe client");
        TestApp {
            system,
            stripe,
            client,
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Stops the servers and waits for them to end cleanly.
    pub async fn stop(self) {
        self.system.stop().await;
    }
}

// Tokens and requests.

pub fn token(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode token")
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

pub fn user_token(user: &str) -> String {
    token(json!({"sub": user, "exp": in_an_hour()}), JWT_SECRET)
}

pub fn service_token() -> String {
    token(
        json!({"sub": "backoffice", "exp": in_an_hour(), "role": "service"}),
        JWT_SECRET,
    )
}

/// `message` with `authorization: Bearer <token>`.
pub fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().expect("ascii header");
    request.metadata_mut().insert("authorization", value);
    request
}

pub fn as_user<T>(user: &str, message: T) -> Request<T> {
    with_token(&user_token(user), message)
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Err(status) if status.code() == code => status,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

/// The `google.rpc.ErrorInfo` reason of a status, decoded from its
/// `grpc-status-details-bin`; every error of this API has one, in domain `payments.v1`.
pub fn reason(status: &Status) -> String {
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "payments.v1", "{status:?}");
    info.reason.clone()
}

/// Asserts the code and the ErrorInfo reason, and that a RetryInfo comes exactly with
/// UNAVAILABLE and RESOURCE_EXHAUSTED.
pub fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    want: &str,
) -> Status {
    let status = assert_code(result, code);
    assert_eq!(reason(&status), want, "{status:?}");
    let retryable = matches!(code, Code::Unavailable | Code::ResourceExhausted);
    let retry_info = status.get_error_details().retry_info().is_some();
    assert_eq!(retry_info, retryable, "RetryInfo in {status:?}");
    status
}

// Typed calls, as `user`.

impl TestApp {
    pub async fn attach(&self, user: &str, token: &str) -> pb::PaymentMethod {
        self.try_attach(user, token).await.expect("attach")
    }

    pub async fn try_attach(&self, user: &str, token: &str) -> Result<pb::PaymentMethod, Status> {
        let req = pb::AttachPaymentMethodRequest {
            user_id: user.into(),
            payment_method_id: token.into(),
        };
        Ok(self
            .client()
            .attach_payment_method(as_user(user, req))
            .await?
            .into_inner())
    }

    pub async fn create_payment(
        &self,
        user: &str,
        payment_method: &str,
        amount: i64,
        key: &str,
    ) -> Result<pb::CreatePaymentResponse, Status> {
        let req = pb::CreatePaymentRequest {
            user_id: user.into(),
            payment_method_id: payment_method.into(),
            amount,
            currency: "usd".into(),
            idempotency_key: key.into(),
        };
        Ok(self
            .client()
            .create_payment(as_user(user, req))
            .await?
            .into_inner())
    }

    pub async fn apply_coupon(
        &self,
        user: &str,
        code: &str,
        key: &str,
    ) -> Result<pb::Transaction, Status> {
        let req = pb::ApplyCouponRequest {
            user_id: user.into(),
            code: code.into(),
            idempotency_key: key.into(),
        };
        let response = self.client().apply_coupon(as_user(user, req)).await?;
        Ok(response.into_inner().transaction.expect("transaction"))
    }

    pub async fn validate(
        &self,
        user: &str,
        payment_method: &str,
    ) -> Result<pb::ValidatePaymentMethodResponse, Status> {
        let req = pb::ValidatePaymentMethodRequest {
            user_id: user.into(),
            payment_method_id: payment_method.into(),
        };
        let response = self
            .client()
            .validate_payment_method(as_user(user, req))
            .await?;
        Ok(response.into_inner())
    }

    pub async fn start_trial(
        &self,
        user: &str,
        payment_method: &str,
    ) -> Result<pb::StartTrialResponse, Status> {
        let req = pb::StartTrialRequest {
            user_id: user.into(),
            payment_method_id: payment_method.into(),
        };
        Ok(self
            .client()
            .start_trial(as_user(user, req))
            .await?
            .into_inner())
    }

    pub async fn transaction(&self, user: &str, id: &str) -> pb::Transaction {
        let req = pb::GetTransactionRequest {
            transaction_id: id.into(),
        };
        self.client()
            .get_transaction(as_user(user, req))
            .await
            .expect("get transaction")
            .into_inner()
    }

    /// The user's transactions, newest first (one page of the default size).
    pub async fn transactions(&self, user: &str) -> Vec<pb::Transaction> {
        let req = pb::ListTransactionsRequest {
            user_id: user.into(),
            ..Default::default()
        };
        self.client()
            .list_transactions(as_user(user, req))
            .await
            .expect("list transactions")
            .into_inner()
            .transactions
    }

    /// Opens WatchTransaction for the user's transaction, from its snapshot on.
    pub async fn watch(
        &self,
        user: &str,
        id: &str,
    ) -> tonic::codec::Streaming<pb::TransactionUpdate> {
        let req = pb::WatchTransactionRequest {
            transaction_id: id.into(),
            await_status: None,
        };
        self.client()
            .watch_transaction(as_user(user, req))
            .await
            .expect("watch")
            .into_inner()
    }

    pub async fn wallet(&self, user: &str) -> pb::Wallet {
        let req = pb::GetWalletRequest {
            user_id: user.into(),
        };
        self.client()
            .get_wallet(as_user(user, req))
            .await
            .expect("get wallet")
            .into_inner()
    }

    /// Polls GetTransaction until the status is `want` (the product itself never polls).
    pub async fn wait_for(
        &self,
        user: &str,
        id: &str,
        want: pb::TransactionStatus,
    ) -> pb::Transaction {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let tx = self.transaction(user, id).await;
            if tx.status == want as i32 {
                return tx;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "transaction {id} still {:?}, expected {want:?}: {tx:?}",
                pb::TransactionStatus::try_from(tx.status)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls GetWallet until the balance is `want`.
    pub async fn wait_for_balance(&self, user: &str, want: i64) -> pb::Wallet {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let wallet = self.wallet(user).await;
            if wallet.balance == want {
                return wallet;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "balance of {user} is {}, expected {want}",
                wallet.balance
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stripe objects the simulator holds, by list endpoint (e.g. `payment_intents`).
    pub async fn sim_list(&self, resource: &str) -> Vec<serde_json::Value> {
        let body = sim_get(&self.sim, &format!("{resource}?limit=100")).await;
        body["data"].as_array().cloned().unwrap_or_default()
    }
}

impl TestApp {
    /// One Stripe object from the simulator, e.g. `payment_methods/pm_123`.
    pub async fn sim_get(&self, path: &str) -> serde_json::Value {
        sim_get(&self.sim, path).await
    }
}
