//! Background loops: retrying stored events, sending the outbox, and (when turned on)
//! reconciling stale transactions, catching up on missed events and reading the
//! database's health signals into the metrics.
//!
//! Each loop claims its work with `FOR UPDATE SKIP LOCKED`, so any number of instances
//! can run them side by side without processing anything twice. Each checks the
//! shutdown token only between units of work, so a database transaction that has
//! started always finishes.
//!
//! - [`events`]: stored events not applied yet, retried with backoff until applied or
//!   dead-lettered.
//! - [`outbox`]: the Stripe calls that follow a commit.
//! - [`reconcile`]: transactions unsettled for too long, read back from Stripe.
//! - [`catch_up`]: `GET /v1/events` for what no webhook brought.
//! - [`signals`]: the database's health signals, read into the metrics.
//! - [`every`]: the loop each of them runs in.

pub mod catch_up;
pub mod events;
pub mod outbox;
pub mod reconcile;
pub mod signals;

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, Level, Span};

/// How long the outbox worker keeps a row whose call it is sending before another
/// instance may take it: well past the longest a call
/// can take, so a slow answer is not sent twice, short enough that a dead instance's
/// rows come back soon.
pub fn call_lease(stripe_timeout: Duration) -> Duration {
    stripe_timeout * 2 + Duration::from_secs(10)
}

/// Runs `pass` every `interval` until `shutdown`, each pass in a `worker.pass` span at
/// `level`. A failed pass is logged with its cause (in its span) and retried at the
/// next tick; the loop never exits on an error.
pub async fn every<F, Fut>(
    name: &'static str,
    level: Level,
    interval: Duration,
    shutdown: CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    loop {
        let run = async {
            if let Err(e) = pass().await {
                tracing::error!(
                    worker = name,
                    error = format!("{e:#}"),
                    "worker pass failed"
                );
            }
        };
        run.instrument(pass_span(name, level)).await;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!(worker = name, "worker stopped");
}

/// Loops that poll every second or so give DEBUG: an idle pass is not worth a trace
/// of its own, so by default only the work they find is traced, where it is done.
fn pass_span(name: &'static str, level: Level) -> Span {
    if level <= Level::INFO {
        tracing::info_span!("worker.pass", worker = name)
    } else {
        tracing::debug_span!("worker.pass", worker = name)
    }
}
