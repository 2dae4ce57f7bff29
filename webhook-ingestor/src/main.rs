//! `webhook-ingestor`: serves the webhook endpoint and runs the background workers;
//! `webhook-ingestor migrate` applies the database migrations and exits (it needs only
//! `DATABASE_URL`).

use payments_core::store;
use payments_service_kit::cli;
use tokio_util::sync::CancellationToken;
use webhook_ingestor::{App, Config};

/// Every webhook allocates and frees its body, its parsed JSON, its rows and its log
/// line; glibc's malloc and free were 9% of the ingestor's CPU under load, mimalloc's
/// are about half that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = cli::command(
        "webhook-ingestor",
        "Receives Stripe webhooks, stores them and settles transactions exactly once. \
         Configuration comes from the environment (see the README).",
    );
    let telemetry = payments_telemetry::init("webhook-ingestor")?;
    let result = cli::run(command, serve, |url| async move {
        store::migrate_url(&url).await
    })
    .await;
    // Spans still buffered are exported before the process exits.
    telemetry.shutdown();
    result
}

async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    app.run_until_stopped(shutdown).await
}
