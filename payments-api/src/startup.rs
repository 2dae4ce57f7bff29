//! [`App`]: everything the service needs, built and bound before it serves, so a
//! test can start it on port 0 and call it at once.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use http::{HeaderName, Method};
use payments_core::store::{self, DbConfig};
use payments_proto::{
    FILE_DESCRIPTOR_SET,
    payments::v1::{
        payments_admin_server::PaymentsAdminServer, payments_service_server::PaymentsServiceServer,
    },
};
use payments_telemetry::{
    RpcLayer,
    metrics::{MetricsRegistry, PoolCollector, RpcMetrics},
};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, server::TcpIncoming};
use tower::Layer as _;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    admin::AdminApi,
    auth::{Authenticate, Authenticator},
    config::{Config, CorsOrigins, LimitsConfig},
    metrics::{Metrics, WatchCollector},
    rate_limit::MutationLimit,
    service::{AppState, FirstCalls, PaymentsApi},
    stripe_client::Stripe,
    watch::{WatchHub, WatchLimits},
};

/// The built service: connected, migrated, listening, not yet serving.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
    metrics_listener: TcpListener,
    state: Arc<AppState>,
    auth: Authenticator,
    cors: CorsLayer,
    registry: Arc<MetricsRegistry>,
    rpc_metrics: RpcMetrics,
    limits: LimitsConfig,
    mutation_limit: MutationLimit,
    /// Ends the watch hub (and so every open WatchTransaction stream).
    hub_shutdown: CancellationToken,
    drain_timeout: Duration,
}

impl App {
    /// Connects to the database, applies migrations (or checks none is pending), starts
    /// the watch hub and binds the listeners.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let pool = store::connect(&DbConfig {
            url: config.database.url.expose_secret().to_owned(),
            max_connections: config.database.max_connections,
            acquire_timeout: config.database.acquire_timeout,
        })
        .await
        .context("connecting to the database")?;
        store::prepare_schema(&pool, config.database.migrate_at_start)
            .await
            .context("preparing the database schema")?;
        let mut registry = MetricsRegistry::default();
        let metrics = Arc::new(Metrics::register(registry.registry()));
        let rpc_metrics = RpcMetrics::register(registry.registry());
        let stripe =
            Stripe::new(&config.stripe, metrics.clone()).context("building the Stripe client")?;
        let auth = Authenticator::new(&config.jwt).context("loading the JWT verification key")?;
        auth.warm_up().await;
        let hub_shutdown = CancellationToken::new();
        let hub = WatchHub::start(pool.clone(), config.watch.clone(), hub_shutdown.clone())
            .await
            .context("starting the transaction watch hub")?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let admin_listener = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| format!("binding {}", config.admin_addr))?;
        let admin_addr = admin_listener
            .local_addr()
            .context("reading the bound admin address")?;
        let metrics_listener = TcpListener::bind(config.metrics_addr)
            .await
            .with_context(|| format!("binding {}", config.metrics_addr))?;
        registry
            .registry()
            .register_collector(Box::new(WatchCollector(hub.clone())));
        registry
            .registry()
            .register_collector(Box::new(PoolCollector::new(pool.clone())));
        let state = Arc::new(AppState {
            pool,
            stripe,
            stripe_mode: config.stripe.mode(),
            wallet: config.wallet,
            hub,
            watch_limits: WatchLimits::new(
                config.limits.watches_per_user,
                config.limits.watches_per_instance,
            ),
            first_calls: FirstCalls::default(),
        });
        Ok(App {
            listener,
            local_addr,
            admin_listener,
            admin_addr,
            metrics_listener,
            state,
            auth,
            cors: cors_layer(&config.cors),
            registry: Arc::new(registry),
            rpc_metrics,
            limits: config.limits,
            mutation_limit: MutationLimit::new(config.limits.mutations),
            hub_shutdown,
            drain_timeout: config.drain_timeout,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `PaymentsAdmin` and reflection answer.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Where `GET /metrics` answers.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .unwrap_or(self.local_addr)
    }

    /// Serves gRPC and grpc-web until `shutdown` is cancelled, then drains: open
    /// watch streams end, in-flight calls get `drain_timeout` to finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let _hub_guard = self.hub_shutdown.clone().drop_guard();
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<PaymentsServiceServer<PaymentsApi>>()
            .await;
        let reflection = reflection_builder()
            .build_v1()
            .context("building the reflection service (v1)")?;
        // Postman, Evans and older grpcurl builds still speak only v1alpha.
        let reflection_v1alpha = reflection_builder()
            .build_v1alpha()
            .context("building the reflection service (v1alpha)")?;
        // Authentication runs first and records the verified caller, which the rate
        // limit between it and the service keys on.
        let authenticate = Authenticate::new(self.auth.clone());
        let api = authenticate.layer(self.mutation_limit.layer(PaymentsServiceServer::new(
            PaymentsApi::new(self.state.clone()),
        )));
        tokio::spawn(forget_idle_buckets(
            self.mutation_limit.clone(),
            shutdown.clone(),
        ));
        let admin = authenticate.layer(PaymentsAdminServer::new(AdminApi::new(self.state.clone())));
        let signal = {
            let (shutdown, hub) = (shutdown.clone(), self.hub_shutdown.clone());
            async move {
                shutdown.cancelled().await;
                health
                    .set_not_serving::<PaymentsServiceServer<PaymentsApi>>()
                    .await;
                hub.cancel();
            }
        };
        // The public port: PaymentsService (gRPC and grpc-web) and health, nothing else.
        let routes = tonic::service::Routes::new(health_service.clone()).add_service(api);
        // The operators' port: PaymentsAdmin, reflection, and health for probes.
        let admin_routes = tonic::service::Routes::new(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(admin);
        let admin_serving = Server::builder()
            .http2_keepalive_interval(Some(self.limits.keepalive_interval))
            .http2_keepalive_timeout(Some(self.limits.keepalive_timeout))
            .layer(RpcLayer::new(self.rpc_metrics.clone()))
            .add_routes(admin_routes)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.admin_listener).with_nodelay(Some(true)),
                shutdown.clone().cancelled_owned(),
            );
        let limits = self.limits;
        let serving = Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .layer(self.cors)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(RpcLayer::new(self.rpc_metrics))
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                signal,
            );
        let metrics = axum::Router::new().route(
            "/metrics",
            payments_telemetry::metrics::route(self.registry.clone()),
        );
        let metrics_server = axum::serve(self.metrics_listener, metrics)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tokio::spawn(async move {
            if let Err(e) = metrics_server.await {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        });
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.drain_timeout).await;
        };
        let both = async {
            tokio::try_join!(async { serving.await.context("serving gRPC") }, async {
                admin_serving.await.context("serving the admin port")
            },)
        };
        tokio::select! {
            served = both => {
                served?;
            }
            () = drain_deadline => {
                tracing::warn!("calls still open after the drain deadline; stopping anyway");
            }
        }
        Ok(())
    }
}

/// Drops the rate-limit buckets of idle users once a minute.
async fn forget_idle_buckets(limit: MutationLimit, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => limit.forget_idle(),
        }
    }
}

/// gRPC reflection over everything this port serves: the payments.v1 services,
/// health, and both reflection versions themselves, so either version lists all.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false)
}

/// CORS for grpc-web from browsers: the headers grpc-web sends and must read back, and
/// the W3C trace context, so a browser's trace continues on the server.
fn cors_layer(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.clone()),
    };
    let header = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header("authorization"),
            header("content-type"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("traceparent"),
            header("tracestate"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600))
}
