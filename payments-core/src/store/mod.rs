//! The Postgres store: the queries both services use. Every function takes a
//! `&mut PgConnection`, which a pool connection and an open database transaction
//! both give (`&mut *tx`), so callers compose several queries into one commit.

mod connection_cache;
mod customers;
mod db_transaction;
mod events;
mod ledger;
mod outbox;
mod payment_methods;
mod transactions;
mod wallets;

pub use connection_cache::{CachedConnection, ConnectionCache};
pub use customers::*;
pub use db_transaction::{DbTransaction, begin, begin_on};
pub use events::*;
pub use ledger::*;
pub use outbox::*;
pub use payment_methods::*;
pub use transactions::*;
pub use wallets::*;

use sqlx::{PgPool, postgres::PgPoolOptions};

/// The errors of the store. Transports map them to their own statuses in one place.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the connection broke: retry later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A unique constraint refused the write; carries the constraint's name.
    #[error("conflict on {0}")]
    Conflict(String),
    /// A row holds a value the domain types refuse (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // A stored value the domain type refuses (see `crate::text`).
            sqlx::Error::ColumnDecode { index, source } => {
                StoreError::Corrupt(format!("column {index}: {source}"))
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            // Server shutting down / connection failures / admin shutdown.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
            {
                StoreError::Unavailable(e)
            }
            _ => StoreError::Other(e),
        }
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Whether this is the unique violation of the named constraint.
    pub fn is_conflict_on(&self, constraint: &str) -> bool {
        matches!(self, StoreError::Conflict(c) if c == constraint)
    }
}

/// Connection settings shared by both services.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

/// A pooled connection idle for longer than this is pinged before it is handed out.
pub const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The pool both services use. sqlx pings every connection it hands out by default: one
/// more round trip per database transaction, on a path that makes nine. Here only a
/// connection that has sat idle (when the server may have restarted or a network hop
/// dropped it) is pinged, as HikariCP does. sqlx still tests each connection when it is
/// returned, off the caller's path, and closes it if it broke in use; one that breaks
/// while briefly idle fails its next statement as unavailable (503 / `UNAVAILABLE`), and
/// the retry gets a fresh one.
pub async fn connect(config: &DbConfig) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect(&config.url)
        .await
        .map_err(StoreError::from)
}

/// Applies pending migrations. sqlx's migrator takes an advisory lock, so several
/// instances starting together apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations").run(pool).await
}
