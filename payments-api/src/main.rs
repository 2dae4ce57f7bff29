//! `payments-api`: serves the payments.v1 gRPC service; `payments-api migrate`
//! applies the database migrations and exits (it needs only `DATABASE_URL`).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use payments_api::{App, Config};
use payments_core::store;
use tokio_util::sync::CancellationToken;

/// The payments.v1 gRPC (and grpc-web) service. Configuration comes from the
/// environment (see the README).
#[derive(Parser)]
#[command(name = "payments-api")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC and grpc-web (the default)
    Serve,
    /// Apply the database migrations and exit (reads only DATABASE_URL)
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otel = payments_telemetry::OtelConfig::from_env("payments-api")?;
    let telemetry = payments_telemetry::build(&otel)?.install()?;
    let result = match cli.command {
        None | Some(Command::Serve) => serve(config()).await,
        Some(Command::Migrate) => migrate().await,
    };
    telemetry.shutdown();
    result
}

fn config() -> Config {
    match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "payments-api listening");
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

/// Needs only `DATABASE_URL` (the schema owner's), none of the service's settings.
async fn migrate() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
    store::migrate_url(&url)
        .await
        .context("applying migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
