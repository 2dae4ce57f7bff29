//! The builder and the running handle: `StripeSim::builder()…start().await?` binds the listener,
//! spawns the server and the webhook dispatcher, and returns once both are running.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, WebhookSecret};
use crate::error::ApiError;
use crate::faults::Faults;
use crate::http::{self, AppState};
use crate::resources::confirmation;
use crate::resources::dispute_lifecycle::{self, Opening};
use crate::resources::events::Event;
use crate::store::{Mode, RequestCtx, Store};
use crate::webhooks::{DeliveryStats, Dispatcher, EventFate, Outbox, WebhookState, run_dispatcher};

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not bind {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not build the webhook HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// Configures a simulator; see [`Config`] for the meaning of each knob.
#[derive(Debug, Clone)]
pub struct StripeSimBuilder {
    config: Config,
}

impl Default for StripeSimBuilder {
    fn default() -> Self {
        Self {
            config: Config::for_tests(),
        }
    }
}

impl StripeSimBuilder {
    pub fn from_config(config: Config) -> Self {
        Self { config }
    }

    /// Adds a webhook endpoint (repeatable).
    pub fn webhook_url(mut self, url: impl Into<String>) -> Self {
        self.config.webhook_urls.push(url.into());
        self
    }

    /// Adds a signing secret (repeatable); every active secret signs each delivery.
    /// Without any, a random `whsec_…` is generated (see [`StripeSim::webhook_secrets`]).
    pub fn webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.webhook_secrets.push(WebhookSecret::new(secret));
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    pub fn duplicate_rate(mut self, rate: f64) -> Self {
        self.config.chaos.duplicate_rate = rate;
        self
    }

    pub fn drop_rate(mut self, rate: f64) -> Self {
        self.config.chaos.drop_rate = rate;
        self
    }

    pub fn reorder_window(mut self, window: Duration) -> Self {
        self.config.chaos.reorder_window = window;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.config.chaos.delay = delay;
        self
    }

    /// Waits between delivery attempts (`len + 1` attempts in all).
    pub fn retry_schedule(mut self, schedule: Vec<Duration>) -> Self {
        self.config.retry_schedule = schedule;
        self
    }

    pub fn webhook_timeout(mut self, timeout: Duration) -> Self {
        self.config.webhook_timeout = timeout;
        self
    }

    pub fn max_concurrent_deliveries(mut self, max: usize) -> Self {
        self.config.max_concurrent_deliveries = max;
        self
    }

    /// Accepts live-mode keys; see [`Config::livemode`].
    pub fn livemode(mut self, enabled: bool) -> Self {
        self.config.livemode = enabled;
        self
    }

    /// Events kept per mode; see [`Config::event_retention`].
    pub fn event_retention(mut self, events: u32) -> Self {
        self.config.event_retention = events;
        self
    }

    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    pub async fn start(self) -> Result<StripeSim, StartError> {
        StripeSim::start(self.config).await
    }
}

/// A running simulator. Dropping it stops the server and delivery; [`StripeSim::shutdown`]
/// also waits for them to finish.
pub struct StripeSim {
    addr: SocketAddr,
    base_url: String,
    seed: u64,
    state: AppState,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

fn random_u64() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

impl StripeSim {
    pub fn builder() -> StripeSimBuilder {
        StripeSimBuilder::default()
    }

    pub async fn start(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let seed = config.seed.unwrap_or_else(random_u64);
        let mut secrets = config.webhook_secrets.clone();
        if secrets.is_empty() {
            secrets.push(WebhookSecret::new(format!(
                "whsec_{}",
                uuid::Uuid::new_v4().simple()
            )));
        }
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
        let base_url = format!("http://{addr}");
        let client = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .build()
            .map_err(StartError::HttpClient)?;

        let webhooks = Arc::new(WebhookState::new(
            config.webhook_urls.clone(),
            secrets,
            seed,
            config.chaos.clone(),
            config.retry_schedule.clone(),
        ));
        let (outbox, events) = Outbox::new(Arc::clone(&webhooks));
        let account = |mode| {
            let outbox = outbox.clone();
            Store::new(
                mode,
                seed,
                base_url.clone(),
                outbox,
                config.event_retention as usize,
            )
        };
        let state = AppState::new(
            [account(Mode::Test), account(Mode::Live)],
            config.livemode,
            Faults::new(seed),
            Arc::clone(&webhooks),
        );
        let cancel = CancellationToken::new();

        let dispatcher = Dispatcher {
            state: webhooks,
            client,
            permits: Arc::new(Semaphore::new(config.max_concurrent_deliveries)),
            cancel: cancel.clone(),
        };
        let dispatcher_task = tokio::spawn(run_dispatcher(dispatcher, events));
        let app = http::router(state.clone());
        let shutdown = cancel.clone();
        let server_task = tokio::spawn(async move {
            let server =
                axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
            if let Err(error) = server.await {
                tracing::error!(%error, "stripe-sim server stopped with an error");
            }
        });
        tracing::info!(%base_url, seed, "stripe-sim listening");
        Ok(Self {
            addr,
            base_url,
            seed,
            state,
            cancel,
            tasks: vec![server_task, dispatcher_task],
        })
    }

    /// `http://127.0.0.1:PORT`, for `ClientBuilder::url` and the SDKs.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The seed in use (the configured one, or the random one picked at start).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Adds a webhook endpoint; events created from now on are delivered to it too.
    pub fn add_webhook_endpoint(&self, url: impl Into<String>) {
        self.state.0.webhooks.add_endpoint(url.into());
    }

    /// Replaces the signing secrets (rotation: pass the old and the new one for a while).
    /// An empty list is refused with a warning: Stripe always signs.
    pub fn set_webhook_secrets<S: Into<String>>(&self, secrets: Vec<S>) {
        let secrets: Vec<WebhookSecret> = secrets
            .into_iter()
            .map(|s| WebhookSecret::new(s))
            .filter(|s| !s.expose().is_empty())
            .collect();
        if secrets.is_empty() {
            tracing::warn!("set_webhook_secrets called with no secret; keeping the current ones");
            return;
        }
        self.state.0.webhooks.set_secrets(secrets);
    }

    pub fn webhook_secrets(&self) -> Vec<WebhookSecret> {
        self.state.0.webhooks.secrets()
    }

    /// Fault injection for API requests.
    pub fn faults(&self) -> Faults {
        self.state.0.faults.clone()
    }

    /// Every event still kept (see [`Config::event_retention`]), of both modes, oldest first,
    /// dropped ones included.
    pub fn events(&self) -> Vec<Value> {
        let mut events: Vec<Arc<Event>> = Vec::new();
        for mode in [Mode::Test, Mode::Live] {
            let ctx = RequestCtx {
                mode,
                ..RequestCtx::default()
            };
            self.state
                .with_store(ctx, |store| events.extend(store.events.iter().cloned()));
        }
        events.sort_by_key(|e| e.seq);
        events.iter().map(|e| e.json()).collect()
    }

    pub fn delivery_stats(&self) -> DeliveryStats {
        self.state.0.webhooks.stats()
    }

    /// What chaos decided for each event dispatched so far, in event order.
    pub fn event_fates(&self) -> Vec<EventFate> {
        self.state.0.webhooks.fates()
    }

    /// Waits until no event is waiting for dispatch and no delivery is in progress (retries
    /// included). `false` if `timeout` passed first.
    pub async fn wait_for_deliveries(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.delivery_stats().in_flight == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Completes (`true`) or fails the 3DS challenge of a PaymentIntent in `requires_action`,
    /// like `POST /test/payment_intents/{id}/authenticate` without the client secret.
    pub fn authenticate_3ds(&self, payment_intent: &str, succeed: bool) -> Result<Value, ApiError> {
        self.state.with_store_owning(payment_intent, |store| {
            confirmation::authenticate(store, payment_intent, succeed, None)
        })
    }

    /// Opens a chargeback on a charge (`amount` defaults to the captured amount): funds withdrawn.
    pub fn open_dispute(&self, charge: &str, amount: Option<i64>) -> Result<Value, ApiError> {
        self.open(charge, amount, false)
    }

    /// Opens an inquiry on a charge: no funds withdrawn.
    pub fn open_inquiry(&self, charge: &str, amount: Option<i64>) -> Result<Value, ApiError> {
        self.open(charge, amount, true)
    }

    fn open(&self, charge: &str, amount: Option<i64>, inquiry: bool) -> Result<Value, ApiError> {
        let opening = Opening {
            inquiry,
            amount,
            reason: "fraudulent".to_owned(),
        };
        self.state.with_store_owning(charge, |store| {
            dispute_lifecycle::open(store, charge, &opening)
        })
    }

    /// The bank decides a dispute: won (`true`, the amount is reinstated) or lost. An inquiry
    /// can only be won (`warning_closed`); see [`StripeSim::escalate_dispute`].
    pub fn close_dispute(&self, dispute: &str, won: bool) -> Result<Value, ApiError> {
        self.state.with_store_owning(dispute, |store| {
            dispute_lifecycle::decide(store, dispute, won)
        })
    }

    /// An inquiry escalates into a chargeback: `needs_response`, funds withdrawn.
    pub fn escalate_dispute(&self, dispute: &str) -> Result<Value, ApiError> {
        self.state
            .with_store_owning(dispute, |store| dispute_lifecycle::escalate(store, dispute))
    }

    /// Stops accepting requests, stops delivery, and waits (up to 5 s) for both to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a stripe-sim task did not stop within 5 s; aborting it");
                abort.abort();
            }
        }
    }
}

impl Drop for StripeSim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
