//! Group commit: webhooks that arrive while a database transaction is being filled or
//! committed are stored and applied together in the next one (one commit, one WAL
//! flush for all), and each is answered only after that commit. Nothing waits on a
//! timer: a batch is whatever queued up while the committers were busy, up to
//! `max_events`, so a lone webhook goes straight through.
//!
//! The committers end when every handle is dropped (the server has stopped and its
//! in-flight requests have their answers), so a graceful shutdown loses nothing.

use std::sync::Arc;

use payments_core::{
    StripeEvent,
    inbox::{self, Received, Rules},
    store::{ConnectionCache, Doorbell, EventSource, StoreError},
};
use tokio::{
    sync::{Mutex, mpsc, oneshot},
    task::JoinHandle,
};

use crate::{config::GroupCommitConfig, metrics::Metrics};

type Reply = oneshot::Sender<Result<Received, GroupCommitError>>;

/// Why group commit did not store an event.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupCommitError {
    /// No committer took the event, or the one that did stopped before answering (the
    /// service is going away): it was not committed.
    #[error("the group committer stopped before committing the event")]
    Stopped,
    /// The group's database transaction failed: none of its events is stored. Every
    /// event of the group gets the one cause.
    #[error("the group's database transaction failed")]
    Failed(#[source] Arc<StoreError>),
}

impl GroupCommitError {
    /// Whether asking again later may store the event (the database was away, or the
    /// service is shutting down and another instance will take it).
    pub fn is_unavailable(&self) -> bool {
        match self {
            GroupCommitError::Stopped => true,
            GroupCommitError::Failed(e) => e.is_unavailable(),
        }
    }
}

struct Job {
    event: StripeEvent,
    reply: Reply,
}

/// The webhook path's handle; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts `config.committers` committer tasks.
    pub fn start(
        connections: ConnectionCache,
        doorbell: Doorbell,
        rules: Rules,
        config: GroupCommitConfig,
        metrics: Arc<Metrics>,
    ) -> (GroupCommit, Vec<JoinHandle<()>>) {
        let max_events = config.max_events.max(1);
        let (jobs, queue) = mpsc::channel(max_events * config.committers.max(1) * 4);
        let queue = Arc::new(Mutex::new(queue));
        let committers = (0..config.committers.max(1))
            .map(|_| {
                let committer = Committer {
                    connections: connections.clone(),
                    doorbell: doorbell.clone(),
                    rules,
                    max_events,
                    queue: queue.clone(),
                    metrics: metrics.clone(),
                };
                tokio::spawn(committer.run())
            })
            .collect();
        (GroupCommit { jobs }, committers)
    }

    /// Stores and applies `event` in the next group's commit.
    pub async fn receive(&self, event: StripeEvent) -> Result<Received, GroupCommitError> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { event, reply }).await.is_err() {
            return Err(GroupCommitError::Stopped);
        }
        // A committer that went away without answering has not committed it.
        answer.await.unwrap_or(Err(GroupCommitError::Stopped))
    }
}

struct Committer {
    connections: ConnectionCache,
    doorbell: Doorbell,
    rules: Rules,
    max_events: usize,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    metrics: Arc<Metrics>,
}

impl Committer {
    async fn run(self) {
        while let Some(batch) = self.next_batch().await {
            self.commit(batch).await;
        }
    }

    /// Waits for one job, then takes whatever else is already queued.
    async fn next_batch(&self) -> Option<Vec<Job>> {
        let mut queue = self.queue.lock().await;
        let first = queue.recv().await?;
        let mut batch = vec![first];
        while batch.len() < self.max_events {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn commit(&self, batch: Vec<Job>) {
        self.metrics.group_committed(batch.len());
        let events: Vec<_> = batch
            .iter()
            .map(|job| (&job.event, EventSource::Webhook))
            .collect();
        match inbox::receive_batch(&self.connections, &events, &self.rules, &self.doorbell).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    // The sender may have gone (client hung up); the event is stored.
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), events = batch.len(), "a group commit failed; none of its events is stored");
                let cause = Arc::new(e);
                for job in batch {
                    let _ = job.reply.send(Err(GroupCommitError::Failed(cause.clone())));
                }
            }
        }
    }
}
