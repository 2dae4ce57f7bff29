//! Building the service (database, migrations, listener) and running it until a
//! shutdown token fires, then draining within a deadline.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use payments_core::store::{self, ConnectionCache, DbConfig, Doorbell};
use payments_service_kit::Tasks;
use payments_stripe::StripeConfig;
use payments_telemetry::metrics::{MetricsRegistry, PoolCollector};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};
use tracing::Level;

use crate::{
    Config,
    group_commit::GroupCommit,
    http::{self, AppState},
    metrics::Metrics,
    stripe_api::StripeApi,
    workers::{
        self, catch_up::CatchUp, events::EventWorker, outbox::OutboxWorker, reconcile::Reconciler,
        signals::SignalsWorker,
    },
};

pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    pool: PgPool,
    /// The webhook path's connections, kept out of the pool between events.
    connections: ConnectionCache,
    router: Router,
    health: HealthReporter,
    metrics: Arc<Metrics>,
    workers: Workers,
    /// Group commit's committer tasks (none when it is off).
    committers: Vec<tokio::task::JoinHandle<()>>,
    /// The task ringing the webhook path's doorbells after its commits (none when they
    /// ring inside the commit).
    ringer: Option<tokio::task::JoinHandle<()>>,
    shutdown_grace: Duration,
}

/// The background loops and how often they run.
struct Workers {
    events: EventWorker,
    event_interval: Duration,
    outbox: OutboxWorker,
    outbox_interval: Duration,
    /// Off when its interval is not configured.
    reconcile: Option<(Reconciler, Duration)>,
    catch_up: Option<(CatchUp, Duration)>,
    signals: Option<(SignalsWorker, Duration)>,
}

impl App {
    /// Connects to the database, applies migrations and binds the listener, so the
    /// address is known (port 0 works) before anything is served.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let db = DbConfig {
            url: config.database_url.clone(),
            max_connections: config.db_max_connections,
            acquire_timeout: config.db_acquire_timeout,
        };
        let pool = store::connect(&db)
            .await
            .context("connecting to the database")?;
        store::prepare_schema(&pool, config.migrate_at_start)
            .await
            .context("preparing the database schema")?;
        let stripe = StripeApi::new(&StripeConfig {
            api_base: config.stripe_api_base.clone(),
            secret_key: config.stripe_secret_key.clone(),
            timeout: config.stripe_timeout,
        })
        .context("building the Stripe client")?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;

        let mut registry = MetricsRegistry::default();
        let metrics = Arc::new(Metrics::register(registry.registry()));
        registry
            .registry()
            .register_collector(Box::new(PoolCollector::new(pool.clone())));
        let workers = Workers::new(&config, &pool, &stripe, &metrics);
        let rules = config.inbox_rules();
        // Half the pool at most, so the background workers always have the other half.
        // Shared by both webhook paths (one commit per event, or group commit).
        let connections = ConnectionCache::new(
            pool.clone(),
            (config.db_max_connections as usize / 2).max(1),
            store::PING_IF_IDLE_FOR,
        );
        let (doorbell, ringer) = match config.doorbell_after_commit {
            true => {
                let (doorbell, ringer) = Doorbell::after_commit(pool.clone(), metrics.clone());
                (doorbell, Some(ringer))
            }
            false => (Doorbell::in_commit(), None),
        };
        let (group_commit, committers) = match config.group_commit.enabled() {
            true => {
                let (group, committers) = GroupCommit::start(
                    connections.clone(),
                    doorbell.clone(),
                    rules,
                    config.group_commit,
                    metrics.clone(),
                );
                (Some(group), committers)
            }
            false => (None, Vec::new()),
        };
        let state = Arc::new(AppState {
            pool: pool.clone(),
            connections: connections.clone(),
            doorbell,
            metrics: metrics.clone(),
            registry: Arc::new(registry),
            webhook_secrets: config.webhook_secrets,
            signature_tolerance: config.signature_tolerance,
            rules,
            group_commit,
        });
        let (router, health) = http::router(state, config.body_limit);
        Ok(App {
            listener,
            local_addr,
            pool,
            connections,
            router,
            health,
            metrics,
            workers,
            committers,
            ringer,
            shutdown_grace: config.shutdown_grace,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves HTTP and runs the workers until `shutdown` is cancelled; then stops
    /// accepting, lets in-flight requests and worker passes (and so their database
    /// transactions) finish, and gives up after the configured grace period.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.health
            .set_service_status("", ServingStatus::Serving)
            .await;
        let mut tasks = Tasks::default();
        self.workers.spawn(&mut tasks, &shutdown);
        // The webhook path's connections idle for a second go back to the pool, so the
        // workers can use them when webhooks stop.
        let connections = self.connections.clone();
        tasks.spawn(
            "idle connection sweeper",
            workers::every(
                "release_idle_connections",
                Level::DEBUG,
                store::PING_IF_IDLE_FOR,
                shutdown.clone(),
                move || {
                    connections.release_idle(store::PING_IF_IDLE_FOR);
                    std::future::ready(Ok(()))
                },
            ),
        );
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tasks.spawn("HTTP server", server.into_future());
        tracing::info!(addr = %self.local_addr, "webhook-ingestor serving");

        // The server only ends by itself on an error: graceful shutdown follows the token.
        tasks.until_stopped(&shutdown).await;
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        shutdown.cancel();
        tracing::info!("shutting down: draining requests and workers");
        let drained = tasks.drain(self.shutdown_grace).await;
        // The server is gone, and with it the last group-commit handle: the committers
        // have answered every request that was in flight and now end.
        for committer in self.committers {
            let _ = tokio::time::timeout(Duration::from_secs(5), committer).await;
        }
        // With them went the last doorbell handle: the ringer rings what they queued
        // and ends.
        if let Some(ringer) = self.ringer {
            let _ = tokio::time::timeout(Duration::from_secs(5), ringer).await;
        }
        // Connections still checked out belong to work abandoned at the deadline.
        self.connections.clear();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.pool.close()).await;
        drained?;
        tracing::info!("webhook-ingestor stopped");
        Ok(())
    }
}

impl Workers {
    fn new(config: &Config, pool: &PgPool, stripe: &StripeApi, metrics: &Arc<Metrics>) -> Self {
        Workers {
            events: EventWorker {
                pool: pool.clone(),
                metrics: metrics.clone(),
                rules: config.inbox_rules(),
            },
            event_interval: config.event_worker_interval,
            outbox: OutboxWorker {
                pool: pool.clone(),
                stripe: stripe.clone(),
                metrics: metrics.clone(),
                retry: config.retry,
                lease: workers::call_lease(config.stripe_timeout),
            },
            outbox_interval: config.outbox_interval,
            reconcile: config.reconcile_interval.map(|interval| {
                let reconciler = Reconciler {
                    pool: pool.clone(),
                    stripe: stripe.clone(),
                    metrics: metrics.clone(),
                    after: config.reconcile_after,
                    abandon_after: config.abandon_after,
                };
                (reconciler, interval)
            }),
            catch_up: config.catch_up_interval.map(|interval| {
                let catch_up = CatchUp {
                    pool: pool.clone(),
                    stripe: stripe.clone(),
                    metrics: metrics.clone(),
                    rules: config.inbox_rules(),
                };
                (catch_up, interval)
            }),
            signals: config.signals_interval.map(|interval| {
                let signals = SignalsWorker {
                    pool: pool.clone(),
                    metrics: metrics.clone(),
                };
                (signals, interval)
            }),
        }
    }

    /// Reconciliation and catch-up passes are INFO spans. The events and outbox loops
    /// poll every second, so their passes are DEBUG spans; each outbox call has its own.
    fn spawn(self, tasks: &mut Tasks, shutdown: &CancellationToken) {
        let (events, token) = (self.events, shutdown.clone());
        tasks.spawn(
            "events worker",
            workers::every(
                "events",
                Level::DEBUG,
                self.event_interval,
                shutdown.clone(),
                move || {
                    let (events, token) = (events.clone(), token.clone());
                    async move { events.drain(&token).await }
                },
            ),
        );
        let outbox = self.outbox;
        tasks.spawn(
            "outbox worker",
            workers::every(
                "outbox",
                Level::DEBUG,
                self.outbox_interval,
                shutdown.clone(),
                move || {
                    let outbox = outbox.clone();
                    async move { outbox.pass().await }
                },
            ),
        );
        if let Some((reconciler, interval)) = self.reconcile {
            let token = shutdown.clone();
            tasks.spawn(
                "reconciliation sweeper",
                workers::every(
                    "reconcile",
                    Level::INFO,
                    interval,
                    shutdown.clone(),
                    move || {
                        let (reconciler, token) = (reconciler.clone(), token.clone());
                        async move { reconciler.pass(&token).await }
                    },
                ),
            );
        }
        if let Some((catch_up, interval)) = self.catch_up {
            tasks.spawn(
                "catch-up worker",
                workers::every(
                    "catch_up",
                    Level::INFO,
                    interval,
                    shutdown.clone(),
                    move || {
                        let catch_up = catch_up.clone();
                        async move { catch_up.pass().await }
                    },
                ),
            );
        }
        if let Some((signals, interval)) = self.signals {
            tasks.spawn(
                "health signals worker",
                workers::every(
                    "signals",
                    Level::DEBUG,
                    interval,
                    shutdown.clone(),
                    move || {
                        let signals = signals.clone();
                        async move { signals.pass().await }
                    },
                ),
            );
        }
    }
}
