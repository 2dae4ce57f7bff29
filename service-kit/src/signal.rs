//! The one shutdown signal: SIGTERM (what Kubernetes and `docker stop` send) or SIGINT
//! (Ctrl-C in a terminal) cancels a token that every server and loop selects on.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT; the listener runs in a task of
/// its own. Call it inside the runtime, once, before serving.
pub fn shutdown_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
    shutdown
}

/// Resolves on SIGTERM or SIGINT. A signal that cannot be listened for is logged and
/// left out, so the other still stops the service.
pub async fn signalled() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT; only SIGTERM stops the service");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the service");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
