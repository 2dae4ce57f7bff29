//! Tracing in two steps: build the subscriber, then install it.

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, registry::Registry};

/// JSON lines on stdout, filtered by `RUST_LOG` (default `info`).
pub fn subscriber() -> impl Subscriber + Send + Sync {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    Registry::default()
        .with(filter)
        .with(fmt::layer().json().with_current_span(false))
}

pub fn install(subscriber: impl Subscriber + Send + Sync) -> anyhow::Result<()> {
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}
