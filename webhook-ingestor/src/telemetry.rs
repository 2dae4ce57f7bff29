//! Logging in two steps: build the subscriber (JSON lines, filtered by `RUST_LOG`,
//! `info` by default), then install it as the global default.

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt};

pub fn subscriber() -> impl Subscriber + Send + Sync {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .finish()
}

pub fn init(subscriber: impl Subscriber + Send + Sync) -> anyhow::Result<()> {
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}
