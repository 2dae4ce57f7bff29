//! `payments-bench`: measures the real services, built in release mode and started as
//! separate processes against a fresh database on the local PostgreSQL, and writes
//! BENCHMARKS.md. Not part of the test command: `cargo run --release -p payments-bench`.
//!
//! - [`config`]: sizes from flags and `BENCH_*` variables (`--quick` for a smoke run).
//! - [`services`]: building and starting stripe-sim, webhook-ingestor and payments-api,
//!   stopping them on every path; [`proxy`] counts payments-api's statements; [`db`] the
//!   benchmark database and its pre-inserted rows.
//! - [`anchor`]: the ingestor side by side with the fixed bar of `bench/anchor/` (the
//!   minimal ingest transaction), with the database's work per event counted by
//!   [`dbwork`]; [`designs`]: candidate per-event transactions against the real schema.
//! - [`ingest`] and [`pgbench`]: webhook throughput against the database's own limit for
//!   the same SQL, and the group-commit bound; [`events`] builds and signs the webhooks.
//! - [`watch`] and [`poll`]: WatchTransaction fan-out against the polling it replaces,
//!   under the same [`changes`] schedule; [`e2e`]: CreatePayment → SUCCEEDED. Both call
//!   payments-api through `payments-client`.
//! - [`suite`] runs the phases; [`report`] writes the document; [`stats`], [`procfs`],
//!   [`sampler`] and [`machine`] measure.

mod anchor;
mod changes;
mod config;
mod db;
mod dbwork;
mod designs;
mod e2e;
mod events;
mod ingest;
mod machine;
mod pgbench;
mod poll;
mod procfs;
mod proxy;
mod report;
mod sampler;
mod services;
mod stats;
mod suite;
mod watch;

use std::{path::Path, process::ExitCode, time::Instant};

use anyhow::Context;

use crate::{
    config::Settings,
    db::BenchDb,
    machine::Machine,
    services::{Stack, StackSpec},
    suite::{Results, Suite},
};

#[tokio::main]
async fn main() -> ExitCode {
    // The workspace root: the parent of this crate's directory.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap_or(manifest).to_path_buf();
    let settings = match Settings::from_args(std::env::args().skip(1), &root) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(usage) => usage.exit(),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
        },
    };
    match run(&settings, &root).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `results.json` holds: enough to write the report again.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    machine: Machine,
    minutes: f64,
    results: Results,
}

async fn run(settings: &Settings, root: &Path) -> anyhow::Result<()> {
    if let Some(path) = &settings.render {
        let raw = std::fs::read(path).with_context(|| format!("reading {path:?}"))?;
        let saved: Saved =
            serde_json::from_slice(&raw).with_context(|| format!("parsing {path:?}"))?;
        return write_report(settings, &saved);
    }
    if settings.build {
        services::build(root).await?;
    }
    let log_dir = root.join("target/bench");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {log_dir:?}"))?;
    let db = BenchDb::create(&settings.database_url).await?;
    println!(
        "database {} created; logs in {}",
        db.name,
        log_dir.display()
    );
    // Ctrl-C drops the measurement: every child process is killed with its handle, then
    // the database is dropped below.
    let outcome = tokio::select! {
        r = measure(settings, &db, root, &log_dir) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if settings.keep_db {
        println!("kept database {}", db.name);
    } else if let Err(e) = drop_all(db).await {
        eprintln!("warning: {e:#}");
    }
    outcome
}

/// The run's database and its companions (also those an interrupted phase left).
async fn drop_all(db: BenchDb) -> anyhow::Result<()> {
    for suffix in ["anchor", "designs"] {
        db.drop_companion(suffix).await?;
    }
    db.drop_database().await
}

async fn measure(
    settings: &Settings,
    db: &BenchDb,
    root: &Path,
    log_dir: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let spec = StackSpec {
        bin_dir: services::release_dir(root),
        log_dir: log_dir.to_owned(),
        db: db.url.clone(),
        ingestor_pool: settings.ingestor_pool,
        api_pool: settings.api_pool,
        service_log: settings.service_log.clone(),
    };
    let mut stack = Stack::start(spec).await?;
    let machine = Machine::describe(&db.pool, root).await;
    println!(
        "{} × {}, {:.1} GiB, load {}; {}",
        machine.cpus,
        machine.cpu_model,
        machine.memory_gib,
        machine.load_at_start,
        machine.postgres_version
    );
    let mut results = Results::default();
    let ran = Suite {
        settings,
        db,
        stack: &mut stack,
        log_dir,
        root,
    }
    .run(&mut results)
    .await;
    stack.stop().await;
    let saved = Saved {
        machine,
        minutes: started.elapsed().as_secs_f64() / 60.0,
        results,
    };
    let raw = log_dir.join("results.json");
    std::fs::write(&raw, serde_json::to_vec_pretty(&saved)?)
        .with_context(|| format!("writing {raw:?}"))?;
    ran?;
    write_report(settings, &saved)?;
    println!("raw figures: {}", raw.display());
    Ok(())
}

fn write_report(settings: &Settings, saved: &Saved) -> anyhow::Result<()> {
    let document = report::render(settings, &saved.machine, &saved.results, saved.minutes);
    if let Some(dir) = settings.output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&settings.output, document)
        .with_context(|| format!("writing {:?}", settings.output))?;
    println!("\nwrote {}", settings.output.display());
    Ok(())
}
