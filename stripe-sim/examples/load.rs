//! Throughput check: fires N create-and-confirm PaymentIntent requests, C at a time, at a
//! simulator started in-process (or at `STRIPE_SIM_URL` if set), with a local webhook receiver
//! taking every event, and prints requests per second.
//!
//! `cargo run --release -p stripe-sim --example load -- [N=5000] [C=64]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use stripe_sim::StripeSim;
use tokio::sync::Semaphore;

/// Fires create-and-confirm PaymentIntent requests at a simulator (in-process, or at
/// STRIPE_SIM_URL) and prints requests per second.
#[derive(Parser)]
struct Args {
    /// Requests in all
    #[arg(value_name = "N", default_value_t = 5000)]
    total: usize,
    /// Requests in flight at once
    #[arg(value_name = "C", default_value_t = 64)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { total, concurrency } = Args::parse();

    let received = Arc::new(AtomicU64::new(0));
    let hook_url = start_receiver(Arc::clone(&received)).await?;
    let (base_url, sim) = match std::env::var("STRIPE_SIM_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let sim = StripeSim::builder()
                .seed(1)
                .webhook_url(&hook_url)
                .webhook_secret("whsec_load")
                .start()
                .await?;
            (sim.base_url().to_owned(), Some(sim))
        }
    };

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let (client, url, failures) = (
            client.clone(),
            format!("{base_url}/v1/payment_intents"),
            Arc::clone(&failures),
        );
        tasks.spawn(async move {
            let tx = format!("tx_{i}");
            let form = [
                ("amount", "1999"),
                ("currency", "usd"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
                ("metadata[transaction_id]", tx.as_str()),
            ];
            let ok = client
                .post(url)
                .bearer_auth("sk_test_load")
                .form(&form)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    println!(
        "{total} PaymentIntent create+confirm requests, {concurrency} concurrent: {:.2?}, {:.0} req/s, {} failed",
        elapsed,
        total as f64 / elapsed.as_secs_f64(),
        failures.load(Ordering::Relaxed),
    );

    if let Some(sim) = sim {
        let settled = sim.wait_for_deliveries(Duration::from_secs(60)).await;
        let stats = sim.delivery_stats();
        println!(
            "webhooks: {} delivered ({} received) in {:.2?} total, settled: {settled}",
            stats.delivered,
            received.load(Ordering::Relaxed),
            started.elapsed(),
        );
        sim.shutdown().await;
    }
    Ok(())
}

/// A local endpoint that counts deliveries and answers 200.
async fn start_receiver(received: Arc<AtomicU64>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let received = Arc::clone(&received);
            async move {
                received.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("receiver stopped: {error}");
        }
    });
    Ok(url)
}
