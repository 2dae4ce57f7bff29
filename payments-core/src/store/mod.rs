//! The Postgres store: the queries both services use. Every function takes a
//! `&mut PgConnection`, which a pool connection and an open database transaction
//! both give (`&mut *tx`), so callers compose several queries into one commit.
//!
//! - `transactions`: the transaction row; creating, reading, locking, writing a
//!   status change, the reconciliation sweep, the request path's lookups.
//! - `events`: the inbox of Stripe events and its retry queue.
//! - `ledger`, `wallets`: money movements, balances, trials; `ledger_audit`: what must
//!   hold of the whole ledger (the test harness checks it after every test).
//! - `customers`, `payment_methods`: Stripe customers and cards.
//! - `outbox`: Stripe calls that follow a commit.
//! - `signals`: what an on-call engineer watches (events needing attention, unsettled
//!   transactions, the outbox's oldest call), read from partial indexes.
//! - `db_transaction`: [`DbTransaction`] ([`begin`], [`begin_on`]), BEGIN … COMMIT in a
//!   tracing span.
//! - `connection_cache`: [`ConnectionCache`], connections the webhook path keeps
//!   between events.
//! - `doorbell`: [`Doorbell`], the webhook path's doorbells rung after the commit.
//! - [`StoreError`]: the store's errors, which each transport maps in one place.

mod connection_cache;
mod customers;
mod db_transaction;
mod doorbell;
mod events;
mod ledger;
mod ledger_audit;
mod outbox;
mod payment_methods;
mod signals;
mod success_write;
mod transactions;
mod wallets;

pub use connection_cache::{CachedConnection, ConnectionCache};
pub use customers::{record_stripe_customer, stripe_customer, user_for_customer};
pub use db_transaction::{DbTransaction, begin, begin_on};
pub use doorbell::{Doorbell, DoorbellMetrics, begin_collecting_doorbells};
pub use events::{
    CatchUpCursor, EventOutcome, EventSource, EventState, StoredEvent, advance_catch_up_cursor,
    catch_up_cursor, claim_due_events, insert_event, latest_event_created, list_dead_events,
    lock_event, record_event_outcome, requeue_event, retryable_predicate, stored_event_ids,
};
pub use ledger::{
    LedgerMismatch, LedgerReport, Movement, MovementKind, check_ledger, moved, record_movement,
    record_movement_in_wallet,
};
pub use ledger_audit::audit_ledger;
pub use outbox::{
    OutboxKind, OutboxRow, claim_outbox, complete_outbox, enqueue, fail_outbox, outbox_depth,
};
pub use payment_methods::{
    PaymentMethodRow, Upserted, get_payment_method, list_payment_methods, mark_detached,
    mark_validated, payment_method_owner, upsert_payment_method,
};
pub use signals::{HealthSignals, StateCount, health_signals};
pub use success_write::{SuccessWrite, WRITE_SUCCESSES, Written, write_success, write_successes};
pub use transactions::{
    Inserted, ListCursor, Locked, NewTransaction, RowAddress, StatusChange, StripeRefs,
    SweepCursor, back_off_reconciliation, change_status, claim_unsettled, coupon_redeemed,
    failed_attempts, find_by_idempotency_key, flag_transaction, get_transaction, get_transactions,
    has_paid_before, insert_transaction, list_transactions, lock_by_target,
    lock_live_coupon_sibling, lock_many, lock_transaction, oldest_transaction_created,
    set_coupon_id, set_stripe_refs, unsettled_page, unsettled_predicate, unsuccessful_predicate,
    validating_transaction,
};
pub use wallets::{
    TrialState, Wallet, card_had_trial, claim_trial_for_card, end_trial, ensure_wallet, get_wallet,
    start_trial,
};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
};

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

    /// Whether the database undid the statement to break a wait cycle (a deadlock) or a
    /// serialization failure: nothing of its database transaction was written, and the
    /// same work may be tried again at once.
    pub fn is_lock_cycle(&self) -> bool {
        matches!(self, StoreError::Other(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40P01" | "40001")))
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
/// more round trip per database transaction, where the webhook path's common event
/// makes one. Here only a
/// connection that has sat idle (when the server may have restarted or a network hop
/// dropped it) is pinged, as HikariCP does. sqlx still tests each connection when it is
/// returned, off the caller's path, and closes it if it broke in use; one that breaks
/// while briefly idle fails its next statement as unavailable (503 / `UNAVAILABLE`), and
/// the retry gets a fresh one.
pub async fn connect(config: &DbConfig) -> Result<PgPool, StoreError> {
    let options = connect_options(&config.url)?;
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
        .connect_with(options)
        .await
        .map_err(StoreError::from)
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// `url`'s connection options, TLS read as libpq reads it: `sslmode` (`disable`, `prefer`
/// (the default), `require`, `verify-ca`, `verify-full`), `sslrootcert` (the CA file;
/// also `PGSSLROOTCERT`), `sslcert` and `sslkey`. As in libpq, `require` with a root
/// certificate given verifies the server's chain like `verify-ca`. One difference: the
/// certificates of `sslrootcert` are trusted alongside the public web roots compiled in
/// (Mozilla's, as in a browser), where libpq trusts that file alone.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(StoreError::Other)?;
    let root_cert = url_parameter(url, &["sslrootcert", "ssl-root-cert", "ssl-ca"])
        .or_else(|| std::env::var("PGSSLROOTCERT").ok())
        .filter(|v| !v.is_empty());
    if root_cert.as_deref() == Some("system") {
        return Err(StoreError::Other(sqlx::Error::Configuration(
            "sslrootcert=system is not supported: leave sslrootcert out to trust the public \
             web roots, or name the CA file"
                .into(),
        )));
    }
    Ok(match options.get_ssl_mode() {
        PgSslMode::Require if root_cert.is_some() => options.ssl_mode(PgSslMode::VerifyCa),
        _ => options,
    })
}

/// The value of the first of `names` in `url`'s query string, percent-decoded.
fn url_parameter(url: &str, names: &[&str]) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| names.contains(&key.as_ref()))
        .map(|(_, value)| value.into_owned())
}

/// Applies pending migrations. sqlx's migrator takes an advisory lock, so several
/// instances starting together apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Applies the migrations up to and including `version` (tests of a migration over data
/// an earlier schema holds).
#[cfg(feature = "testing")]
pub async fn migrate_to(pool: &PgPool, version: i64) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run_to(version, pool).await
}

/// `payments-api migrate` / `webhook-ingestor migrate`: connects with the URL alone
/// (the role that owns the schema) and applies pending migrations.
pub async fn migrate_url(url: &str) -> Result<(), sqlx::migrate::MigrateError> {
    let options = connect_options(url).map_err(|e| match e {
        StoreError::Unavailable(e) | StoreError::Other(e) => {
            sqlx::migrate::MigrateError::Execute(e)
        }
        other => sqlx::migrate::MigrateError::Execute(sqlx::Error::Configuration(other.into())),
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(sqlx::migrate::MigrateError::Execute)?;
    let migrated = migrate(&pool).await;
    pool.close().await;
    migrated?;
    tracing::info!("migrations applied");
    Ok(())
}

/// The migrations this build knows that the database has not applied (all of them
/// when it was never migrated). A service that does not migrate at start refuses to
/// run against a schema older than its code.
pub async fn pending_migrations(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(applied) => applied,
            // 42P01: no such table, never migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect())
}

/// At start-up: apply the migrations, or (`migrate` false, for a role without DDL
/// rights) only check that none is pending.
pub async fn prepare_schema(pool: &PgPool, migrate_now: bool) -> Result<(), SchemaError> {
    if migrate_now {
        return migrate(pool).await.map_err(SchemaError::Migrate);
    }
    let pending = pending_migrations(pool).await.map_err(SchemaError::Store)?;
    match pending.is_empty() {
        true => Ok(()),
        false => Err(SchemaError::Pending(pending)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("applying the migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("reading the applied migrations")]
    Store(#[source] StoreError),
    #[error(
        "the database lacks migrations {0:?} and migrating at start is off: run `migrate` with the schema owner's DATABASE_URL first"
    )]
    Pending(Vec<i64>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> PgSslMode {
        connect_options(url).expect("valid url").get_ssl_mode()
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let base = "postgres://u@db.example:5432/payments";
        assert!(matches!(
            mode(&format!(
                "{base}?sslmode=require&sslrootcert=%2Fetc%2Fca.pem"
            )),
            PgSslMode::VerifyCa
        ));
        assert!(matches!(
            mode(&format!("{base}?sslmode=require")),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode(&format!("{base}?sslmode=verify-full&sslrootcert=/ca.pem")),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode(&format!("{base}?sslrootcert=/ca.pem&sslmode=verify-ca")),
            PgSslMode::VerifyCa
        ));
    }

    #[test]
    fn an_unknown_sslmode_or_the_system_root_store_is_a_configuration_error() {
        let base = "postgres://u@db.example/payments";
        assert!(connect_options(&format!("{base}?sslmode=verify")).is_err());
        assert!(
            connect_options(&format!("{base}?sslmode=verify-full&sslrootcert=system")).is_err()
        );
    }
}
