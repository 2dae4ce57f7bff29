//! The whole system in-process for tests: a fresh database, stripe-sim, the
//! webhook-ingestor and payments-api, each on port 0, wired together as in production
//! (Stripe's webhooks go to the ingestor; payments-api calls stripe-sim).
//!
//! - [`System`]: start, stop, and restart payments-api on the same address (a deploy,
//!   as a client sees it).
//! - `tls`: [`TestCa`], a CA and server certificates made for one test; [`TlsFront`],
//!   TLS in front of payments-api with one of them.
//! - [`stop_servers`], [`sim_get`]: what other test stacks share with it.
//!
//! payments-api's own end-to-end tests, the Rust client's and the CLI's all start the
//! system from here, so there is one way to build it.

mod tls;

use std::{net::SocketAddr, time::Duration};

use payments_core::testing::TestDb;
use stripe_sim::StripeSim;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::tls::{ServerCertificate, TestCa, TlsFront};

/// The HS256 secret payments-api verifies tokens with.
pub const JWT_SECRET: &str = "test-jwt-secret-of-at-least-32-bytes";
/// The secret stripe-sim signs webhooks with and the ingestor verifies.
pub const WEBHOOK_SECRET: &str = "whsec_test";
/// How long a server may take to stop cleanly.
const STOP_WITHIN: Duration = Duration::from_secs(15);

type Tweak = Box<dyn Fn(&mut payments_api::Config) + Send + Sync>;

/// One running server and the token that stops it.
struct Server {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    fn spawn(run: impl FnOnce(CancellationToken) -> JoinHandle<anyhow::Result<()>>) -> Server {
        let shutdown = CancellationToken::new();
        let task = run(shutdown.clone());
        Server { shutdown, task }
    }
}

/// stripe-sim, the webhook-ingestor and payments-api against a fresh database.
pub struct System {
    /// payments-api's gRPC (and grpc-web) address; it keeps it across [`System::restart_api`].
    pub addr: SocketAddr,
    /// payments-api's admin address (PaymentsAdmin, reflection); also kept across restarts.
    pub admin_addr: SocketAddr,
    /// payments-api's `GET /metrics` address (a new one after a restart).
    pub metrics_addr: SocketAddr,
    pub sim: StripeSim,
    servers: Vec<Server>,
    /// payments-api's configuration beyond the test defaults, applied at every start.
    tweak: Tweak,
    /// Dropped last: the database outlives the servers using it.
    db: TestDb,
}

impl System {
    pub async fn start() -> System {
        Self::start_with(|_| {}).await
    }

    /// Starts with payments-api's test configuration changed by `tweak`.
    pub async fn start_with(
        tweak: impl Fn(&mut payments_api::Config) + Send + Sync + 'static,
    ) -> System {
        let db = TestDb::new().await;
        let sim = StripeSim::builder()
            .webhook_secret(WEBHOOK_SECRET)
            .seed(1)
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .start()
            .await
            .expect("stripe-sim starts");
        let ingestor_config =
            webhook_ingestor::Config::for_tests(&db.url, sim.base_url(), WEBHOOK_SECRET);
        let ingestor = webhook_ingestor::App::build(ingestor_config)
            .await
            .expect("the ingestor starts");
        sim.add_webhook_endpoint(format!(
            "http://{}/v1/stripe-webhook",
            ingestor.local_addr()
        ));
        let ingestor = Server::spawn(|stop| tokio::spawn(ingestor.run_until_stopped(stop)));
        let mut system = System {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            sim,
            servers: vec![ingestor],
            tweak: Box::new(tweak),
            db,
        };
        system.start_api().await;
        system
    }

    /// Builds payments-api on `self.addr` (port 0 the first time) and serves it.
    async fn start_api(&mut self) {
        let mut config =
            payments_api::Config::for_tests(&self.db.url, self.sim.base_url(), JWT_SECRET);
        (self.tweak)(&mut config);
        if self.addr.port() != 0 {
            config.addr = self.addr;
            config.admin_addr = self.admin_addr;
        }
        let api = payments_api::App::build(config)
            .await
            .expect("payments-api starts");
        self.addr = api.local_addr();
        self.admin_addr = api.admin_addr();
        self.metrics_addr = api.metrics_addr();
        self.servers.push(Server::spawn(|stop| {
            tokio::spawn(api.run_until_stopped(stop))
        }));
    }

    /// `http://` and payments-api's address.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://` and payments-api's admin address.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The test database, for setting up states no RPC can reach.
    pub fn db_url(&self) -> &str {
        &self.db.url
    }

    /// Starts a graceful shutdown of every server, as SIGTERM does, without waiting.
    pub fn begin_shutdown(&self) {
        for server in &self.servers {
            server.shutdown.cancel();
        }
    }

    /// Stops payments-api as a deploy does (open watch streams end with UNAVAILABLE,
    /// in-flight calls drain), then starts a new one on the same address.
    pub async fn restart_api(&mut self) {
        self.stop_api().await;
        self.start_api().await;
    }

    /// Stops payments-api and waits until it has; the address refuses connections
    /// until [`System::resume_api`].
    pub async fn stop_api(&mut self) {
        let api = self.servers.pop().expect("payments-api is running");
        stop_servers(&api.shutdown, [api.task]).await;
    }

    /// Starts payments-api again on its address after [`System::stop_api`].
    pub async fn resume_api(&mut self) {
        assert_eq!(self.servers.len(), 1, "payments-api is stopped");
        self.start_api().await;
    }

    /// Stops the servers and waits for them to end cleanly.
    pub async fn stop(mut self) {
        // payments-api first, as a deploy drains the callers' side first.
        while let Some(server) = self.servers.pop() {
            stop_servers(&server.shutdown, [server.task]).await;
        }
    }

    /// Completes (or fails) a 3DS challenge the way the customer's browser would.
    pub async fn authenticate_3ds(&self, payment_intent: &str, client_secret: &str, succeed: bool) {
        let url = format!(
            "{}/test/payment_intents/{payment_intent}/authenticate",
            self.sim.base_url()
        );
        let outcome = if succeed { "succeed" } else { "fail" };
        let response = reqwest::Client::new()
            .post(url)
            .form(&[("outcome", outcome), ("client_secret", client_secret)])
            .send()
            .await
            .expect("authenticate request");
        assert!(
            response.status().is_success(),
            "3DS authenticate: {}",
            response.text().await.unwrap_or_default()
        );
    }
}

impl System {
    /// A coupon of `amount_off` minor units in usd, once, created in stripe-sim, and a
    /// promotion code of it: the code, which ApplyCoupon takes (raw coupon ids only when
    /// configured to).
    pub async fn create_coupon(&self, amount_off: i64) -> String {
        let http = reqwest::Client::new();
        let coupon: serde_json::Value = http
            .post(format!("{}/v1/coupons", self.sim.base_url()))
            .bearer_auth("sk_test_tests")
            .form(&[
                ("amount_off", amount_off.to_string().as_str()),
                ("currency", "usd"),
                ("duration", "once"),
            ])
            .send()
            .await
            .expect("create a coupon")
            .json()
            .await
            .expect("the coupon");
        let coupon = coupon["id"].as_str().expect("coupon id");
        let code = format!(
            "CODE{}",
            coupon.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        )
        .to_uppercase();
        http.post(format!("{}/v1/promotion_codes", self.sim.base_url()))
            .bearer_auth("sk_test_tests")
            .form(&[
                ("promotion[type]", "coupon"),
                ("promotion[coupon]", coupon),
                ("code", code.as_str()),
            ])
            .send()
            .await
            .expect("create a promotion code")
            .error_for_status()
            .expect("the promotion code");
        code
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// Cancels `shutdown` and waits for each server to end cleanly.
pub async fn stop_servers(
    shutdown: &CancellationToken,
    servers: impl IntoIterator<Item = JoinHandle<anyhow::Result<()>>>,
) {
    shutdown.cancel();
    for server in servers {
        let ended = tokio::time::timeout(STOP_WITHIN, server).await;
        let result = ended.expect("server stops in time").expect("no panic");
        result.expect("server ends without error");
    }
}

/// `GET /v1/{path}` from a simulator, as JSON.
pub async fn sim_get(sim: &StripeSim, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/v1/{path}", sim.base_url()))
        .bearer_auth("sk_test_tests")
        .send()
        .await
        .expect("get request")
        .json()
        .await
        .expect("get body")
}
