//! The safety pass: doorbells can be lost (NOTIFYs sent while the listening connection
//! was down), so every `safety_reread`, and at once after the listening connection is
//! re-established, the versions of all watched rows are compared with the database's.
//! Only the rows that moved are queued for the reader, which re-reads them with the
//! doorbells. It runs in its own task on its own pool connections and reads only
//! `(id, version)` in chunks, so a doorbell never waits behind it.

use std::{sync::Arc, time::Duration};

use payments_core::store::StoreError;
use sqlx::PgConnection;
use uuid::Uuid;

use super::hub::Inner;

/// How long a failed pass waits before it starts again.
const RETRY: Duration = Duration::from_secs(1);

pub(super) async fn run(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.safety_reread);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
            () = inner.resync.notified() => {}
        }
        while let Err(e) = pass(&inner).await {
            tracing::warn!(error = %e, "watch safety pass failed; retrying");
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// One version check per chunk of watched ids; the moved ones ring like doorbells.
async fn pass(inner: &Inner) -> Result<(), StoreError> {
    let ids = inner.watched_ids();
    for chunk in ids.chunks(inner.config.reread_batch.max(1)) {
        inner.count_read(0);
        let mut conn = inner.pool.acquire().await?;
        let versions = versions(&mut conn, chunk).await?;
        drop(conn);
        inner.ring(versions);
    }
    Ok(())
}

/// The current version of each row: two small columns instead of the whole row a
/// watcher is sent.
async fn versions(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let rows = sqlx::query_as("SELECT id, version FROM transactions WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows)
}
