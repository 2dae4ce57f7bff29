//! The benchmark's own database, created fresh on the server and dropped at the end, and
//! the rows the workloads act on: transactions pre-inserted with SQL, numbered so that
//! the Rust side and the pgbench scripts derive the same ids.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use sqlx::{Connection, PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

/// The users the benchmark's payments belong to, each with a wallet (as in the fixed
/// minimal transaction's data).
pub const USERS: u64 = 10_000;

/// The pieces of a `postgres://` URL the benchmark rewrites (host, port, database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// `postgres://user[:password]@`, or `postgres://` without user information.
    prefix: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    query: String,
}

impl DbUrl {
    pub fn parse(url: &str) -> anyhow::Result<DbUrl> {
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("{url:?} is not a postgres:// URL");
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (format!("{u}@"), r),
            None => (String::new(), rest),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (database, query) = path.split_once('?').unwrap_or((path, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().with_context(|| format!("port in {url:?}"))?),
            None => (authority, 5432),
        };
        Ok(DbUrl {
            prefix: format!("{scheme}://{userinfo}"),
            host: if host.is_empty() { "localhost" } else { host }.to_owned(),
            port,
            database: if database.is_empty() {
                "postgres"
            } else {
                database
            }
            .to_owned(),
            query: query.to_owned(),
        })
    }

    pub fn with_database(&self, database: &str) -> DbUrl {
        DbUrl {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// The same server reached through another address (the counting proxy), without TLS
    /// so the proxy can read the protocol.
    pub fn via(&self, host: &str, port: u16) -> DbUrl {
        DbUrl {
            host: host.to_owned(),
            port,
            query: "sslmode=disable".to_owned(),
            ..self.clone()
        }
    }

    pub fn url(&self) -> String {
        let query = match self.query.is_empty() {
            true => String::new(),
            false => format!("?{}", self.query),
        };
        format!(
            "{}{}:{}/{}{query}",
            self.prefix, self.host, self.port, self.database
        )
    }
}

/// A fresh database for one benchmark run.
pub struct BenchDb {
    pub name: String,
    pub url: DbUrl,
    /// A few connections for setup, checks and sampling.
    pub pool: PgPool,
    server: PgPool,
    server_url: DbUrl,
    next_row: AtomicU64,
}

impl BenchDb {
    pub async fn create(server_url: &str) -> anyhow::Result<BenchDb> {
        BenchDb::create_named(
            server_url,
            &format!("payments_bench_{}", std::process::id()),
        )
        .await
    }

    /// A database of this run besides the services' own (`<name>_<suffix>`), for work
    /// that must be counted apart from theirs.
    pub async fn companion(&self, suffix: &str) -> anyhow::Result<BenchDb> {
        let name = format!("{}_{suffix}", self.name);
        self.drop_companion(suffix).await?;
        BenchDb::create_named(&self.server_url.url(), &name).await
    }

    /// Drops `<name>_<suffix>` if it exists (also after an interrupted run).
    pub async fn drop_companion(&self, suffix: &str) -> anyhow::Result<()> {
        let sql = format!(
            "DROP DATABASE IF EXISTS {}_{suffix} WITH (FORCE)",
            self.name
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.server)
            .await
            .with_context(|| format!("dropping database {}_{suffix}", self.name))?;
        Ok(())
    }

    async fn create_named(server_url: &str, name: &str) -> anyhow::Result<BenchDb> {
        let server_url = DbUrl::parse(server_url)?;
        let server = PgPoolOptions::new()
            .max_connections(2)
            .connect(&server_url.url())
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", server_url.url()))?;
        let name = name.to_owned();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&server)
            .await
            .with_context(|| format!("creating database {name}"))?;
        let url = server_url.with_database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url.url())
            .await
            .context("connecting to the benchmark database")?;
        Ok(BenchDb {
            name,
            url,
            pool,
            server,
            server_url,
            next_row: AtomicU64::new(1),
        })
    }

    /// Drops the database (disconnecting whoever is still connected).
    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.server)
            .await
            .with_context(|| format!("dropping database {}", self.name))?;
        Ok(())
    }

    /// Reserves `count` row numbers never used before in this run.
    pub fn reserve(&self, count: u64) -> u64 {
        self.next_row.fetch_add(count, Ordering::Relaxed)
    }

    /// Inserts `count` CREATED payments numbered from `first`, with the PaymentIntent
    /// already recorded (as payments-api does before the webhook comes). Row `g` belongs to
    /// user `bench-{g mod USERS}`, whose wallet exists, as in the fixed minimal
    /// transaction's data (`bench/anchor/schema.sql`: 10,000 users with wallets).
    pub async fn insert_transactions(&self, first: u64, count: u64) -> anyhow::Result<()> {
        const CHUNK: u64 = 20_000;
        let mut conn = self.own_connection().await?;
        sqlx::query(
            "INSERT INTO wallets (user_id, currency) \
             SELECT 'bench-' || u, 'usd' FROM generate_series(0, $1::bigint - 1) u \
             ON CONFLICT DO NOTHING",
        )
        .bind(i64::try_from(USERS)?)
        .execute(&mut conn)
        .await
        .context("pre-inserting wallets")?;
        let mut start = first;
        while start < first + count {
            let end = (start + CHUNK).min(first + count) - 1;
            sqlx::query(
                "INSERT INTO transactions (id, user_id, kind, status, amount, currency, \
                 payment_method_id, idempotency_key, request_fingerprint, stripe_payment_intent_id) \
                 SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, \
                 'bench-' || (g % $3::bigint), 'payment', 'created', 1000, 'usd', 'pm_bench', \
                 'bench-' || g, 'bench', 'pi_bench_' || g \
                 FROM generate_series($1::bigint, $2::bigint) g",
            )
            .bind(i64::try_from(start)?)
            .bind(i64::try_from(end)?)
            .bind(i64::try_from(USERS)?)
            .execute(&mut conn)
            .await
            .context("pre-inserting transactions")?;
            start = end + 1;
        }
        conn.close().await?;
        Ok(())
    }

    /// Reserves and inserts `count` rows; returns the first row number.
    pub async fn fresh_transactions(&self, count: u64) -> anyhow::Result<u64> {
        let first = self.reserve(count);
        self.insert_transactions(first, count).await?;
        self.settle().await?;
        Ok(first)
    }

    /// Vacuums and checkpoints, so a measured run starts owing nothing to the runs before
    /// it: otherwise the autovacuum and checkpoint their writes call for fall on whichever
    /// run comes next, and a ratio of two runs measures their order.
    pub async fn settle(&self) -> anyhow::Result<()> {
        let mut conn = self.own_connection().await?;
        sqlx::raw_sql("VACUUM (ANALYZE)")
            .execute(&mut conn)
            .await
            .context("vacuuming the benchmark database")?;
        sqlx::raw_sql("CHECKPOINT")
            .execute(&mut conn)
            .await
            .context("CHECKPOINT (the benchmark needs a superuser or pg_checkpoint)")?;
        conn.close().await?;
        Ok(())
    }

    /// A connection closed after use: a backend that exits flushes its statistics at
    /// once, where an idle one may hold them up to 10 s, so the setup's rows and vacuum
    /// are not counted in the measured window that follows.
    async fn own_connection(&self) -> anyhow::Result<sqlx::PgConnection> {
        sqlx::PgConnection::connect(&self.url.url())
            .await
            .context("connecting to the benchmark database")
    }

    /// How many of rows `first..first+count` were credited (one ledger entry each at most).
    pub async fn credited(&self, first: u64, count: u64) -> anyhow::Result<u64> {
        let ids: Vec<Uuid> = (first..first + count).map(tx_id).collect();
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ledger_entries WHERE transaction_id = ANY($1) AND kind = 'payment_credit'",
        )
        .bind(&ids)
        .fetch_one(&self.pool)
        .await
        .context("counting credits")?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Commits the server has recorded for this database so far (all sessions).
    pub async fn commits(&self) -> anyhow::Result<i64> {
        sqlx::query_scalar(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&self.pool)
        .await
        .context("reading pg_stat_database")
    }
}

/// The transaction id of row `n`, as the SQL above writes it.
pub fn tx_id(n: u64) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | u128::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_ids_match_the_sql_formula() {
        assert_eq!(
            tx_id(0x1f).to_string(),
            "00000000-0000-4000-8000-00000000001f"
        );
    }

    #[test]
    fn urls_are_rewritten_piecewise() {
        let u = DbUrl::parse("postgres://postgres:pw@127.0.0.1:5433/postgres?sslmode=prefer")
            .expect("parses");
        assert_eq!(
            u.with_database("b").url(),
            "postgres://postgres:pw@127.0.0.1:5433/b?sslmode=prefer"
        );
        assert_eq!(
            u.with_database("b").via("127.0.0.1", 9).url(),
            "postgres://postgres:pw@127.0.0.1:9/b?sslmode=disable"
        );
        let bare = DbUrl::parse("postgres://localhost").expect("parses");
        assert_eq!((bare.port, bare.database.as_str()), (5432, "postgres"));
    }
}
