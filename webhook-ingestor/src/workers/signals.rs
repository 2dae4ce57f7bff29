//! Reads the database's health signals (events by state, unsettled transactions, the
//! outbox's oldest call) into the metrics' gauges, every `INGESTOR_SIGNALS_INTERVAL_SECS`:
//! one bounded query per interval per instance, never one per request or per scrape.

use std::sync::Arc;

use anyhow::Context as _;
use payments_core::store;
use sqlx::PgPool;

use crate::metrics::Metrics;

/// The query gives up after this, so a struggling database is not loaded further.
const STATEMENT_TIMEOUT: &str = "5s";

#[derive(Clone)]
pub struct SignalsWorker {
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
}

impl SignalsWorker {
    pub async fn pass(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await.context("reading health signals")?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"
        )))
        .execute(&mut *tx)
        .await?;
        let signals = store::health_signals(&mut tx)
            .await
            .context("reading health signals")?;
        tx.commit().await?;
        self.metrics.set_signals(&signals);
        Ok(())
    }
}
