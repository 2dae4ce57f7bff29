//! `payments-api`: serves the payments.v1 gRPC service; `payments-api migrate`
//! applies the database migrations and exits (it needs only `DATABASE_URL`).

use payments_api::{App, Config};
use payments_core::store;
use payments_service_kit::cli;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = cli::command(
        "payments-api",
        "The payments.v1 gRPC (and grpc-web) service. Configuration comes from the \
         environment (see the README).",
    );
    let telemetry = payments_telemetry::init("payments-api")?;
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
    tracing::info!(addr = %app.local_addr(), "payments-api listening");
    app.run_until_stopped(shutdown).await
}
