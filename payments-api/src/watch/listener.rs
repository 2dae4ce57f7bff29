//! The one listening connection of an instance.

use std::{sync::Arc, time::Duration};

use payments_core::{TRANSACTION_CHANNEL, store::StoreError};
use sqlx::{PgPool, postgres::PgListener};
use uuid::Uuid;

use super::hub::Inner;

pub(super) async fn listen(pool: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Shutdown is driven by our token, not by the pool closing under us.
    listener.ignore_pool_close_event(true);
    listener.listen(TRANSACTION_CHANNEL).await?;
    Ok(listener)
}

/// `"{uuid}:{version}"`, as the trigger writes it.
fn parse_doorbell(payload: &str) -> Option<(Uuid, i64)> {
    let (id, version) = payload.split_once(':')?;
    Some((Uuid::parse_str(id).ok()?, version.parse().ok()?))
}

/// Receives doorbells until shutdown, re-establishing the connection when it breaks.
/// Whenever notifications may have been missed, the safety pass runs at once.
pub(super) async fn run(inner: Arc<Inner>, mut listener: PgListener) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let received = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            r = listener.try_recv() => r,
        };
        match received {
            Ok(Some(n)) => {
                backoff = Duration::from_millis(100);
                let Some((id, version)) = parse_doorbell(n.payload()) else {
                    tracing::warn!(payload = n.payload(), "unexpected doorbell payload");
                    continue;
                };
                inner.ring([(id, version)]);
            }
            // The connection dropped and sqlx has re-established it (and re-LISTENed):
            // whatever was notified in between is lost.
            Ok(None) => {
                tracing::warn!(
                    "listening connection was lost and re-established; checking watched transactions"
                );
                inner.resync.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "listening connection failed; reconnecting");
                listener = match reconnect(&inner, &mut backoff).await {
                    Some(l) => l,
                    None => return,
                };
                inner.resync.notify_one();
            }
        }
    }
}

async fn reconnect(inner: &Inner, backoff: &mut Duration) -> Option<PgListener> {
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return None,
            () = tokio::time::sleep(*backoff) => {}
        }
        match listen(&inner.pool).await {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                *backoff = (*backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_doorbell;

    #[test]
    fn doorbells_carry_only_id_and_version() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(parse_doorbell(&format!("{id}:7")), Some((id, 7)));
        assert_eq!(parse_doorbell("nope"), None);
        assert_eq!(parse_doorbell(&format!("{id}:x")), None);
    }
}
