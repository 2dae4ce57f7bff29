//! Everything a service spawns, so that shutdown can wait for it. Each task (a server,
//! a background loop) runs until the shutdown token is cancelled; one that ends before
//! means the service cannot go on. At shutdown the tasks get a grace period to finish
//! what they started (in-flight requests, a worker's database transaction), and
//! whatever still runs after it is aborted.
//!
//! ```ignore
//! let mut tasks = Tasks::default();
//! tasks.spawn("HTTP server", server);
//! tasks.until_stopped(&shutdown).await; // cancelled, or a task ended
//! shutdown.cancel();
//! let drained = tasks.drain(grace).await;
//! pool.close().await;
//! drained
//! ```

use std::{collections::HashMap, future::Future, time::Duration};

use anyhow::anyhow;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

/// What a task's future returns: nothing (a loop that only ends at shutdown), or a
/// result whose error is the task's failure.
pub trait Outcome: Send + 'static {
    fn into_result(self) -> anyhow::Result<()>;
}

impl Outcome for () {
    fn into_result(self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl<E> Outcome for Result<(), E>
where
    E: Into<anyhow::Error> + Send + 'static,
{
    fn into_result(self) -> anyhow::Result<()> {
        self.map_err(Into::into)
    }
}

/// The tasks of one service, each with a name for the logs ("HTTP server",
/// "outbox worker").
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
    /// Why a task ended before [`Tasks::drain`]: the first failure it returns.
    failure: Option<anyhow::Error>,
}

impl Tasks {
    /// Spawns `task` on the runtime at once.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Outcome,
    {
        let handle = self.set.spawn(async move { task.await.into_result() });
        self.names.insert(handle.id(), name);
    }

    /// Waits until `shutdown` is cancelled, or until a task ends before that: its
    /// failure, or that it stopped unasked, is then the error [`Tasks::drain`] returns.
    /// The caller cancels the token and drains the rest either way.
    pub async fn until_stopped(&mut self, shutdown: &CancellationToken) {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {}
            Some(joined) = self.set.join_next_with_id() => {
                let (name, ended) = self.ended(joined);
                // A loop that saw the token first may end before this select does.
                let error = match ended {
                    Ok(()) if shutdown.is_cancelled() => return,
                    Ok(()) => anyhow!("the {name} stopped before shutdown was requested"),
                    Err(e) => e,
                };
                tracing::error!(error = format!("{error:#}"), "stopping the service");
                self.failure = Some(error);
            }
        }
    }

    /// Waits for every task to end, up to `grace`; whatever still runs then is aborted
    /// (and named in a warning). The first failure (a task that ended before shutdown,
    /// an error, a panic) is returned, the others are logged.
    pub async fn drain(mut self, grace: Duration) -> anyhow::Result<()> {
        let mut first = self.failure.take();
        let joined_all = tokio::time::timeout(grace, async {
            while let Some(joined) = self.set.join_next_with_id().await {
                let (_, ended) = self.ended(joined);
                match (ended, &first) {
                    (Ok(()), _) => {}
                    (Err(e), None) => first = Some(e),
                    (Err(e), Some(_)) => {
                        tracing::error!(error = format!("{e:#}"), "a task failed while draining");
                    }
                }
            }
        })
        .await;
        if joined_all.is_err() {
            let mut running: Vec<&str> = self.names.values().copied().collect();
            running.sort_unstable();
            tracing::warn!(
                ?grace,
                ?running,
                "shutdown grace elapsed; aborting what is still running"
            );
            self.set.abort_all();
        }
        first.map_or(Ok(()), Err)
    }

    /// The name of a task that ended, and its outcome with the name in the error.
    fn ended(
        &mut self,
        joined: Result<(Id, anyhow::Result<()>), JoinError>,
    ) -> (&'static str, anyhow::Result<()>) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Err(e.into())),
        };
        let name = self.names.remove(&id).unwrap_or("task");
        (
            name,
            outcome.map_err(|e| e.context(format!("the {name} failed"))),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    fn until(token: &CancellationToken) -> impl Future<Output = ()> + use<> {
        token.clone().cancelled_owned()
    }

    #[tokio::test]
    async fn a_requested_shutdown_drains_every_task() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        let finished = Arc::new(AtomicBool::new(false));
        let (flag, stop) = (finished.clone(), until(&shutdown));
        tasks.spawn("worker", async move {
            stop.await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        });
        let stop = until(&shutdown);
        tasks.spawn("server", async move {
            stop.await;
            Ok::<(), std::io::Error>(())
        });
        shutdown.cancel();
        // The server has ended before the service looks: that is no early stop.
        tokio::time::sleep(Duration::from_millis(5)).await;
        tasks.until_stopped(&shutdown).await;
        tasks.drain(Duration::from_secs(5)).await.expect("clean");
        assert!(
            finished.load(Ordering::SeqCst),
            "the worker finished its pass"
        );
    }

    #[tokio::test]
    async fn a_task_that_ends_before_shutdown_is_an_error_naming_it() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        tasks.spawn("loop", until(&shutdown));
        tasks.spawn("HTTP server", async {
            Err::<(), _>(std::io::Error::other("accept failed"))
        });
        tasks.until_stopped(&shutdown).await;
        assert!(!shutdown.is_cancelled(), "the caller cancels");
        shutdown.cancel();
        let drained = tasks.drain(Duration::from_secs(5)).await;
        assert_eq!(
            format!("{:#}", drained.expect_err("ended")),
            "the HTTP server failed: accept failed"
        );

        let mut tasks = Tasks::default();
        tasks.spawn("metrics endpoint", async {});
        tasks.until_stopped(&CancellationToken::new()).await;
        let drained = tasks.drain(Duration::from_secs(5)).await;
        assert_eq!(
            drained.expect_err("ended").to_string(),
            "the metrics endpoint stopped before shutdown was requested"
        );
    }

    #[tokio::test]
    async fn what_outlives_the_grace_is_aborted_and_a_panic_is_a_failure() {
        let mut tasks = Tasks::default();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        tasks.spawn("stuck", async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tasks.spawn("buggy", async {
            let empty: Vec<u8> = Vec::new();
            assert!(!empty.is_empty(), "a bug");
        });
        let drained = tasks.drain(Duration::from_millis(100)).await;
        let error = format!("{:#}", drained.expect_err("the panic"));
        assert!(error.starts_with("the buggy failed: task"), "{error}");
        assert!(error.contains("panicked"), "{error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!finished.load(Ordering::SeqCst));
    }
}
