//! The doorbell path: queued ids are re-read in batches, one query per batch whatever
//! the number of watchers, and at most one batch starts per coalescing window.

use std::{sync::Arc, time::Duration};

use payments_core::store::{self, StoreError};
use tokio::time::Instant;
use uuid::Uuid;

use super::hub::Inner;

/// How long a failed re-read waits before its ids are tried again.
const RETRY: Duration = Duration::from_millis(250);

/// Re-reads queued ids until shutdown. After a quiet spell the first doorbell is read at
/// once; doorbells that ring within `coalesce` of the last read start wait for the window
/// to end and share one query, so the query rate stays below one per window however fast
/// rows change.
pub(super) async fn run(inner: Arc<Inner>) {
    let window = inner.config.coalesce;
    let batch = inner.config.reread_batch.max(1);
    let mut last_read: Option<Instant> = None;
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = inner.wake_reader.notified() => {}
        }
        loop {
            // The window holds between any two reads: ids that rang during the last
            // one, and the batches of a backlog, wait for it too.
            if let Some(started) = last_read {
                tokio::select! {
                    () = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep_until(started + window) => {}
                }
            }
            let ids = inner.take_pending(batch);
            if ids.is_empty() {
                break;
            }
            last_read = Some(Instant::now());
            match reread(&inner, &ids).await {
                Ok(()) => inner.reread_done(),
                Err(e) => {
                    tracing::warn!(error = %e, ids = ids.len(), "watch re-read failed; retrying");
                    inner.requeue(ids);
                    inner.reread_done();
                    tokio::select! {
                        () = inner.shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
    }
}

async fn reread(inner: &Inner, ids: &[Uuid]) -> Result<(), StoreError> {
    inner.count_read(ids.len());
    let mut conn = inner.pool.acquire().await?;
    let rows = store::get_transactions(&mut conn, ids).await?;
    drop(conn);
    for tx in rows {
        inner.publish(Arc::new(tx));
    }
    Ok(())
}
