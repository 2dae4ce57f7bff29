//! `stripe-sim` binary: parse flags and environment, start, print what a client needs, run
//! until SIGINT/SIGTERM, shut down.

use anyhow::Context;
use stripe_sim::StripeSim;
use stripe_sim::cli::{self, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match cli::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", cli::help());
            return Ok(());
        }
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let sim = StripeSim::start(config)
        .await
        .context("starting stripe-sim")?;
    println!("stripe-sim listening on {}", sim.base_url());
    for secret in sim.webhook_secrets() {
        // A local test secret, printed like `stripe listen` does so receivers can be configured.
        println!("webhook signing secret: {}", secret.expose());
    }
    println!("seed: {}", sim.seed());

    shutdown_signal()
        .await
        .context("waiting for a shutdown signal")?;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
