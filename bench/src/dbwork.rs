//! The database work of a measured window, from PostgreSQL's own counters: a snapshot of
//! `pg_stat_database`, `pg_stat_user_tables`, `pg_statio_user_tables` and `pg_stat_wal`
//! before and after, the difference divided by the events of the window.
//!
//! The first three are per database, so each contender runs against a database of its
//! own. `pg_stat_wal` is cluster-wide: whatever else the server does during a window is
//! counted too. Where `pg_walinspect` is available, the window's WAL is also read back and
//! only the records of this database's transactions are counted ([`WalOfDb`]), which does
//! not depend on the server being otherwise idle.
//!
//! Backends flush their counters at most once a second and when they go idle or exit, so
//! the closing snapshot waits [`FLUSH`] after the load stopped.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgPool};

/// How long after the load stopped the closing snapshot waits for the counters of
/// backends that exited (pgbench's), and the opening one for the benchmark's own.
pub const FLUSH: Duration = Duration::from_millis(2_500);
/// The same for backends that stay connected (the services' pools): PostgreSQL 15 flushes
/// an idle backend's counters at most once a second, and when it could not, only 10 s
/// later (`PGSTAT_IDLE_INTERVAL`).
pub const IDLE_FLUSH: Duration = Duration::from_millis(11_000);

/// Cumulative counters of one database (and the cluster's WAL) at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub db: Counters,
    /// Per user table: rows inserted, updated, HOT-updated, buffer accesses.
    pub tables: BTreeMap<String, TableCounters>,
    /// `pg_current_wal_flush_lsn()`, to read the window's WAL back.
    pub lsn: String,
}

/// The per-database and WAL counters, as differences they are the window's work.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    pub xact_commit: f64,
    pub xact_rollback: f64,
    pub blks_hit: f64,
    pub blks_read: f64,
    pub tup_inserted: f64,
    pub tup_updated: f64,
    pub tup_deleted: f64,
    /// Cluster-wide (`pg_stat_wal`).
    pub wal_records: f64,
    pub wal_fpi: f64,
    pub wal_bytes: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct TableCounters {
    pub ins: f64,
    pub upd: f64,
    pub hot_upd: f64,
    pub del: f64,
    /// heap + index + TOAST blocks hit or read (`pg_statio_user_tables`).
    pub heap_blks: f64,
    pub idx_blks: f64,
    pub toast_blks: f64,
}

/// The WAL of one database's transactions in a window, read back with `pg_walinspect`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct WalOfDb {
    pub records: f64,
    pub bytes: f64,
    pub fpi_bytes: f64,
}

/// One window's work, total and per event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Work {
    pub events: u64,
    /// From the opening snapshot to the closing one (the wait for the flush included).
    pub secs: f64,
    pub total: Counters,
    pub tables: BTreeMap<String, TableCounters>,
    /// This database's WAL alone (None where `pg_walinspect` could not read the window).
    pub wal_of_db: Option<WalOfDb>,
}

impl Snapshot {
    pub async fn take(pool: &PgPool) -> anyhow::Result<Snapshot> {
        let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, String) = sqlx::query_as(
            "SELECT d.xact_commit, d.xact_rollback, d.blks_hit, d.blks_read, d.tup_inserted, \
             d.tup_updated, d.tup_deleted, w.wal_records, w.wal_fpi, w.wal_bytes::bigint, \
             pg_current_wal_flush_lsn()::text \
             FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .context("reading pg_stat_database and pg_stat_wal")?;
        let f = |v: i64| v as f64;
        let db = Counters {
            xact_commit: f(row.0),
            xact_rollback: f(row.1),
            blks_hit: f(row.2),
            blks_read: f(row.3),
            tup_inserted: f(row.4),
            tup_updated: f(row.5),
            tup_deleted: f(row.6),
            wal_records: f(row.7),
            wal_fpi: f(row.8),
            wal_bytes: f(row.9),
        };
        type TableRow = (String, i64, i64, i64, i64, i64, i64, i64);
        let rows: Vec<TableRow> = sqlx::query_as(
            "SELECT t.relname::text, t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd, t.n_tup_del, \
             coalesce(s.heap_blks_hit, 0) + coalesce(s.heap_blks_read, 0), \
             coalesce(s.idx_blks_hit, 0) + coalesce(s.idx_blks_read, 0), \
             coalesce(s.toast_blks_hit, 0) + coalesce(s.toast_blks_read, 0) \
                 + coalesce(s.tidx_blks_hit, 0) + coalesce(s.tidx_blks_read, 0) \
             FROM pg_stat_user_tables t JOIN pg_statio_user_tables s USING (relid)",
        )
        .fetch_all(pool)
        .await
        .context("reading pg_stat_user_tables and pg_statio_user_tables")?;
        let tables = rows
            .into_iter()
            .map(|(name, ins, upd, hot, del, heap, idx, toast)| {
                let t = TableCounters {
                    ins: f(ins),
                    upd: f(upd),
                    hot_upd: f(hot),
                    del: f(del),
                    heap_blks: f(heap),
                    idx_blks: f(idx),
                    toast_blks: f(toast),
                };
                (name, t)
            })
            .collect();
        Ok(Snapshot {
            db,
            tables,
            lsn: row.10,
        })
    }
}

/// Takes the opening snapshot; [`Window::finish`] the closing one.
pub struct Window {
    pool: PgPool,
    before: Snapshot,
    started: std::time::Instant,
    /// A connection of its own holding a temporary replication slot from the opening
    /// snapshot on, so no checkpoint removes the window's WAL before it is read back
    /// (the slot goes with the connection, also when the window is dropped unfinished).
    slot: Option<sqlx::PgConnection>,
}

impl Window {
    /// Waits [`FLUSH`] first, so what the benchmark itself just did (inserting the rows,
    /// vacuuming) is counted before the window, not in it.
    pub async fn open(pool: &PgPool) -> anyhow::Result<Window> {
        tokio::time::sleep(FLUSH).await;
        let slot = hold_wal(pool).await;
        let before = Snapshot::take(pool).await?;
        Ok(Window {
            pool: pool.clone(),
            before,
            started: std::time::Instant::now(),
            slot,
        })
    }

    /// Call after the load stopped; waits [`FLUSH`] for the counters to be flushed.
    pub async fn finish(self, events: u64) -> anyhow::Result<Work> {
        self.finish_after(events, FLUSH).await
    }

    /// [`Window::finish`], waiting `flush` (e.g. [`IDLE_FLUSH`]).
    pub async fn finish_after(self, events: u64, flush: Duration) -> anyhow::Result<Work> {
        tokio::time::sleep(flush).await;
        // The span the counters cover, the wait for the flush included.
        let secs = self.started.elapsed().as_secs_f64();
        let after = Snapshot::take(&self.pool).await?;
        let wal_of_db = wal_of_db(&self.pool, &self.before.lsn, &after.lsn).await;
        if let Some(conn) = self.slot {
            let _ = conn.close().await;
        }
        Ok(Work {
            events,
            secs,
            total: after.db.minus(&self.before.db),
            tables: after
                .tables
                .iter()
                .map(|(name, a)| {
                    let b = self.before.tables.get(name).copied().unwrap_or_default();
                    (name.clone(), a.minus(&b))
                })
                .filter(|(_, d)| *d != TableCounters::default())
                .collect(),
            wal_of_db,
        })
    }
}

/// A detached connection with a temporary physical replication slot reserving WAL from
/// now on (None where the server refuses one: the read-back may then fail).
async fn hold_wal(pool: &PgPool) -> Option<sqlx::PgConnection> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut conn = pool.acquire().await.ok()?.detach();
    let name = format!(
        "bench_window_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query("SELECT pg_create_physical_replication_slot($1, true, true)")
        .bind(name)
        .execute(&mut conn)
        .await
        .ok()?;
    Some(conn)
}

/// Creates `pg_walinspect` in the database if the server has it (a superuser may).
pub async fn enable_walinspect(pool: &PgPool) -> bool {
    sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        .execute(pool)
        .await
        .is_ok()
}

/// The records between two flush LSNs that belong to this database: those touching its
/// relations, and every record of a transaction that did (its commit record).
async fn wal_of_db(pool: &PgPool, from: &str, to: &str) -> Option<WalOfDb> {
    let row: Result<(i64, i64, i64), _> = sqlx::query_as(
        "WITH r AS ( \
           SELECT xid::text::bigint AS xid, record_length, fpi_length, block_ref \
           FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) \
         ), mine AS ( \
           SELECT (SELECT 'rel [0-9]+/' || oid || '/' FROM pg_database \
                   WHERE datname = current_database()) AS pattern \
         ), ours AS ( \
           SELECT DISTINCT xid FROM r, mine WHERE xid <> 0 AND block_ref ~ mine.pattern \
         ) \
         SELECT count(*), coalesce(sum(record_length), 0)::bigint, \
                coalesce(sum(fpi_length), 0)::bigint \
         FROM r, mine WHERE block_ref ~ mine.pattern OR xid IN (SELECT xid FROM ours)",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await;
    match row {
        Ok((records, bytes, fpi)) => Some(WalOfDb {
            records: records as f64,
            bytes: bytes as f64,
            fpi_bytes: fpi as f64,
        }),
        Err(e) => {
            eprintln!("    (WAL of the window not read back: {e})");
            None
        }
    }
}

impl Counters {
    fn minus(&self, b: &Counters) -> Counters {
        Counters {
            xact_commit: self.xact_commit - b.xact_commit,
            xact_rollback: self.xact_rollback - b.xact_rollback,
            blks_hit: self.blks_hit - b.blks_hit,
            blks_read: self.blks_read - b.blks_read,
            tup_inserted: self.tup_inserted - b.tup_inserted,
            tup_updated: self.tup_updated - b.tup_updated,
            tup_deleted: self.tup_deleted - b.tup_deleted,
            wal_records: self.wal_records - b.wal_records,
            wal_fpi: self.wal_fpi - b.wal_fpi,
            wal_bytes: self.wal_bytes - b.wal_bytes,
        }
    }
}

impl TableCounters {
    fn minus(&self, b: &TableCounters) -> TableCounters {
        TableCounters {
            ins: self.ins - b.ins,
            upd: self.upd - b.upd,
            hot_upd: self.hot_upd - b.hot_upd,
            del: self.del - b.del,
            heap_blks: self.heap_blks - b.heap_blks,
            idx_blks: self.idx_blks - b.idx_blks,
            toast_blks: self.toast_blks - b.toast_blks,
        }
    }
}

/// The figures printed per event.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct PerEvent {
    pub commits: f64,
    /// `blks_hit + blks_read` of the database: every buffer access, catalog included.
    pub buffers: f64,
    /// Rows inserted + updated + deleted in user tables (triggers' writes included).
    pub rows_written: f64,
    pub rows_updated: f64,
    /// HOT updates ÷ updates (NaN when nothing was updated).
    pub hot_ratio: f64,
    /// This database's WAL where it could be read back, else the cluster's.
    pub wal_records: f64,
    pub wal_bytes: f64,
    /// Of `wal_bytes`, full-page images (first change of a page after a checkpoint);
    /// NaN when the WAL is the cluster's.
    pub wal_fpi_bytes: f64,
    /// Whether the WAL figures are this database's alone.
    pub wal_own: bool,
    /// The cluster's WAL (`pg_stat_wal`), whoever wrote it.
    pub cluster_wal_records: f64,
    pub cluster_wal_bytes: f64,
}

impl Work {
    pub fn per_event(&self) -> PerEvent {
        let n = (self.events as f64).max(1.0);
        let t = &self.total;
        let (ins, upd, hot, del) = self.tables.values().fold((0.0, 0.0, 0.0, 0.0), |a, x| {
            (a.0 + x.ins, a.1 + x.upd, a.2 + x.hot_upd, a.3 + x.del)
        });
        let (wal_records, wal_bytes, wal_fpi_bytes, wal_own) = match self.wal_of_db {
            Some(w) => (w.records / n, w.bytes / n, w.fpi_bytes / n, true),
            None => (t.wal_records / n, t.wal_bytes / n, f64::NAN, false),
        };
        PerEvent {
            commits: t.xact_commit / n,
            buffers: (t.blks_hit + t.blks_read) / n,
            rows_written: (ins + upd + del) / n,
            rows_updated: upd / n,
            hot_ratio: if upd > 0.0 { hot / upd } else { f64::NAN },
            wal_records,
            wal_bytes,
            wal_fpi_bytes,
            wal_own,
            cluster_wal_records: t.wal_records / n,
            cluster_wal_bytes: t.wal_bytes / n,
        }
    }

    /// Per event, per table: `(name, inserted, updated, HOT, buffer accesses)`.
    pub fn tables_per_event(&self) -> Vec<(String, TableCounters)> {
        let n = (self.events as f64).max(1.0);
        self.tables
            .iter()
            .map(|(name, t)| {
                let per = TableCounters {
                    ins: t.ins / n,
                    upd: t.upd / n,
                    hot_upd: t.hot_upd / n,
                    del: t.del / n,
                    heap_blks: t.heap_blks / n,
                    idx_blks: t.idx_blks / n,
                    toast_blks: t.toast_blks / n,
                };
                (name.clone(), per)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_event_figures_divide_the_window_by_its_events() {
        let mut tables = BTreeMap::new();
        tables.insert(
            "a".to_owned(),
            TableCounters {
                ins: 100.0,
                upd: 200.0,
                hot_upd: 50.0,
                ..TableCounters::default()
            },
        );
        let work = Work {
            events: 100,
            secs: 1.0,
            total: Counters {
                xact_commit: 100.0,
                blks_hit: 4_000.0,
                blks_read: 600.0,
                wal_records: 1_100.0,
                wal_bytes: 590_000.0,
                ..Counters::default()
            },
            tables,
            wal_of_db: None,
        };
        let p = work.per_event();
        assert_eq!(
            (p.commits, p.buffers, p.rows_written, p.hot_ratio),
            (1.0, 46.0, 3.0, 0.25)
        );
        assert_eq!(
            (p.wal_records, p.wal_bytes, p.wal_own),
            (11.0, 5_900.0, false)
        );
        let own = Work {
            wal_of_db: Some(WalOfDb {
                records: 900.0,
                bytes: 500_000.0,
                fpi_bytes: 0.0,
            }),
            ..work
        }
        .per_event();
        assert_eq!(
            (own.wal_records, own.wal_own, own.cluster_wal_records),
            (9.0, true, 11.0)
        );
    }
}
