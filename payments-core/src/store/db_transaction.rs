//! A database transaction with its own tracing span, open from BEGIN until COMMIT or
//! ROLLBACK (or drop, which rolls back), so a trace shows how long each unit of work
//! held its connection and locks, and whether it committed.

use std::ops::{Deref, DerefMut};

use sqlx::{Connection as _, PgConnection, PgPool, Postgres};
use tracing::Span;

use super::StoreError;

/// Derefs to the connection, so store functions take `&mut db` as they take any
/// connection. `'c` is the connection's borrow when it is not a pool's (`'static`).
#[derive(Debug)]
pub struct DbTransaction<'c> {
    tx: sqlx::Transaction<'c, Postgres>,
    span: Span,
}

/// BEGIN on a pool connection; `unit` names the work (`receive_event`, `reconcile`…).
pub async fn begin(
    pool: &PgPool,
    unit: &'static str,
) -> Result<DbTransaction<'static>, StoreError> {
    let span = span(unit);
    let tx = pool.begin().await?;
    Ok(DbTransaction { tx, span })
}

/// BEGIN on a connection the caller holds (and gets back when the transaction ends).
pub async fn begin_on<'c>(
    conn: &'c mut PgConnection,
    unit: &'static str,
) -> Result<DbTransaction<'c>, StoreError> {
    let span = span(unit);
    let tx = conn.begin().await?;
    Ok(DbTransaction { tx, span })
}

/// [`begin_on`] with `statement` (a simple query starting with BEGIN) instead of BEGIN.
pub(super) async fn begin_with<'c>(
    conn: &'c mut PgConnection,
    unit: &'static str,
    statement: &'static str,
) -> Result<DbTransaction<'c>, StoreError> {
    let span = span(unit);
    let tx = conn.begin_with(statement).await?;
    Ok(DbTransaction { tx, span })
}

fn span(unit: &'static str) -> Span {
    tracing::info_span!(
        "db.transaction",
        otel.kind = "client",
        db.system = "postgresql",
        db.operation = unit,
        db.outcome = tracing::field::Empty,
    )
}

impl DbTransaction<'_> {
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

impl Deref for DbTransaction<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for DbTransaction<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
