use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use webhook_ingestor::{App, Config};

/// Every webhook allocates and frees its body, its parsed JSON, its rows and its log
/// line; glibc's malloc and free were 9% of the ingestor's CPU under load, mimalloc's
/// are about half that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let otel = payments_telemetry::OtelConfig::from_env("webhook-ingestor")?;
    let telemetry = payments_telemetry::build(&otel)
        .context("building telemetry")?
        .install()
        .context("installing telemetry")?;
    let result = match std::env::args().nth(1).as_deref() {
        None | Some("serve") => match Config::from_env() {
            Ok(config) => serve(config).await,
            Err(e) => Err(e.into()),
        },
        Some("migrate") => migrate().await,
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?}; expected `serve` or `migrate`"
        )),
    };
    // Spans still buffered are exported before the process exits.
    telemetry.shutdown();
    result
}

/// `webhook-ingestor migrate`: applies the migrations and exits; needs only
/// `DATABASE_URL` (the schema owner's).
async fn migrate() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
    payments_core::store::migrate_url(&url)
        .await
        .context("applying migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

/// SIGTERM (Kubernetes) or SIGINT (a terminal) starts the graceful shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the service");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
    shutdown.cancel();
}
