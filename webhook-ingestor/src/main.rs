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
    let config = Config::from_env()?;
    let otel = payments_telemetry::OtelConfig::from_env("webhook-ingestor")?;
    let telemetry = payments_telemetry::build(&otel)
        .context("building telemetry")?
        .install()
        .context("installing telemetry")?;
    let result = serve(config).await;
    // Spans still buffered are exported before the process exits.
    telemetry.shutdown();
    result
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
