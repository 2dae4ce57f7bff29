//! A database pool's usage, read from the pool at scrape time (no query).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::gauge::ConstGauge,
};
use sqlx::PgPool;

/// `payments_db_pool_connections{state="idle"|"in_use"}` and
/// `payments_db_pool_max_connections`.
#[derive(Debug)]
pub struct PoolCollector {
    pool: PgPool,
}

impl PoolCollector {
    pub fn new(pool: PgPool) -> Self {
        PoolCollector { pool }
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        let max = i64::from(self.pool.options().get_max_connections());
        let mut connections = encoder.encode_descriptor(
            "db_pool_connections",
            "Open database connections of this instance's pool, by state",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (state, n) in [("idle", idle), ("in_use", (size - idle).max(0))] {
            ConstGauge::new(n).encode(connections.encode_family(&[("state", state)])?)?;
        }
        let gauge = ConstGauge::new(max);
        gauge.encode(encoder.encode_descriptor(
            "db_pool_max_connections",
            "The most connections this instance's pool opens",
            None,
            gauge.metric_type(),
        )?)
    }
}
