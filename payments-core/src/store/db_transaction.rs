//! A database transaction with its own tracing span, open from BEGIN until COMMIT or
//! ROLLBACK (or drop, which rolls back), so a trace shows how long each unit of work
//! held its connection and locks, and whether it committed.

use std::ops::{Deref, DerefMut};

use sqlx::{PgConnection, PgPool, Postgres};
use tracing::Span;

use super::StoreError;

/// Derefs to the connection, so store functions take `&mut db` as they take any
/// connection.
#[derive(Debug)]
pub struct DbTransaction {
    tx: sqlx::Transaction<'static, Postgres>,
    span: Span,
}

/// BEGIN on a pool connection; `unit` names the work (`receive_event`, `reconcile`…).
pub async fn begin(pool: &PgPool, unit: &'static str) -> Result<DbTransaction, StoreError> {
    let span = tracing::info_span!(
        "db.transaction",
        otel.kind = "client",
        db.system = "postgresql",
        db.operation = unit,
        db.outcome = tracing::field::Empty,
    );
    let tx = pool.begin().await?;
    Ok(DbTransaction { tx, span })
}

impl DbTransaction {
    pub async fn commit(self) -> Result<(), StoreError> {
        let DbTransaction { tx, span } = self;
        let result = tx.commit().await;
        span.record(
            "db.outcome",
            if result.is_ok() { "commit" } else { "error" },
        );
        Ok(result?)
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        let DbTransaction { tx, span } = self;
        span.record("db.outcome", "rollback");
        Ok(tx.rollback().await?)
    }
}

impl Deref for DbTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for DbTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
