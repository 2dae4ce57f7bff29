//! Test support: a fresh, migrated database per test, dropped when the handle is
//! dropped (also when the test panics). Before it is dropped, the ledger is audited
//! ([`crate::store::audit_ledger`]): a test that passed but left a wallet apart from
//! its ledger, or a movement twice, fails there.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};

/// The server tests use: `DATABASE_URL`, or the local default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rsplit_once('/') {
        Some((server, _)) if server.contains("//") && !server.ends_with('/') => server,
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let db = TestDb::unmigrated().await;
        crate::store::migrate(&db.pool)
            .await
            .expect("migrations apply to an empty database");
        db
    }

    /// A database migrated up to and including migration `version` only, for a test that
    /// puts rows in an earlier schema and then applies the rest ([`TestDb::migrate`]).
    pub async fn at_migration(version: i64) -> Self {
        let db = TestDb::unmigrated().await;
        crate::store::migrate_to(&db.pool, version)
            .await
            .expect("migrations apply to an empty database");
        db
    }

    /// Applies the migrations not applied yet.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        crate::store::migrate(&self.pool).await
    }

    /// The error PostgreSQL gives the victim of a real deadlock: two database
    /// transactions each lock a row of a table of their own, then wait for the other's
    /// (about a second: `deadlock_timeout`). The table is left in the test database.
    pub async fn deadlock_victim(&self) -> sqlx::Error {
        let mut setup = self.pool.acquire().await.expect("connection");
        setup
            .execute(
                "CREATE TABLE IF NOT EXISTS lock_cycle (id int PRIMARY KEY); \
                      INSERT INTO lock_cycle VALUES (1), (2) ON CONFLICT DO NOTHING",
            )
            .await
            .expect("the lock_cycle table");
        let both_hold_one = tokio::sync::Barrier::new(2);
        let take = |first: i32, second: i32| {
            let (pool, both_hold_one) = (self.pool.clone(), &both_hold_one);
            async move {
                let mut tx = pool.begin().await?;
                let lock = "SELECT id FROM lock_cycle WHERE id = $1 FOR UPDATE";
                sqlx::query(lock).bind(first).execute(&mut *tx).await?;
                both_hold_one.wait().await;
                sqlx::query(lock).bind(second).execute(&mut *tx).await?;
                tx.rollback().await
            }
        };
        let (a, b) = tokio::join!(take(1, 2), take(2, 1));
        a.err().or(b.err()).expect("one of the two is the victim")
    }

    async fn unmigrated() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = server_url();
        let name = format!(
            "payments_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..8)
                .unwrap_or("0")
        );
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the test PostgreSQL server");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await
            .expect("connect to test database");
        TestDb {
            pool,
            name,
            url,
            admin_url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, url, name) = (self.admin_url.clone(), self.url.clone(), self.name.clone());
        // A test already failing is not failed again (a panic in a panic aborts).
        let audit = !std::thread::panicking();
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        // The pool is not closed first: that would wait for connections whose return is
        // scheduled on the runtime this thread blocks. FORCE ends them instead.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return Vec::new();
            };
            rt.block_on(async move {
                let findings = match audit {
                    true => audit_ledger(&url).await,
                    false => Vec::new(),
                };
                drop_database(&admin_url, &name).await;
                findings
            })
        });
        let findings = cleanup.join().unwrap_or_default();
        assert!(
            findings.is_empty(),
            "the ledger check failed after the test:\n{}",
            findings.join("\n")
        );
    }
}

/// The ledger audit of the test's database; a database that cannot be read is a
/// finding too.
async fn audit_ledger(url: &str) -> Vec<String> {
    let mut conn = match PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => return vec![format!("cannot connect to audit the ledger: {e}")],
    };
    crate::store::audit_ledger(&mut conn)
        .await
        .unwrap_or_else(|e| {
            vec![format!(
                "the ledger audit failed: {}",
                crate::error_chain(&e)
            )]
        })
}

async fn drop_database(admin_url: &str, name: &str) {
    let dropped = match PgConnection::connect(admin_url).await {
        Ok(mut admin) => admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = dropped {
        eprintln!("test database {name} left behind: {e}");
    }
}
