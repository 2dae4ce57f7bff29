//! Following a transaction to its end: [`TransactionWatch`] reads WatchTransaction and
//! opens it again when the stream breaks (a payments-api restart ends it with
//! UNAVAILABLE; a lost connection surfaces as UNAVAILABLE, INTERNAL, UNKNOWN or
//! CANCELLED), with the retry policy's backoff between attempts. Each new stream starts
//! with a snapshot; versions not newer than the last one delivered are skipped, so the
//! caller never sees an older version after a newer one, nor one twice.
//!
//! The server decides when the transaction has its answer: it ends the stream cleanly
//! after a settled status (or the awaited one). A clean end after at least one message
//! is that answer; a clean end without any is treated like a break.

use payments_proto::payments::v1::{self as pb, TransactionStatus};
use tonic::{Code, Streaming};

use crate::{Error, PaymentsClient, error::RpcError};

impl PaymentsClient {
    /// Every new version of the transaction until it settles (or reaches
    /// `await_status`), across reconnections.
    pub fn watch_transaction(
        &self,
        id: &str,
        await_status: Option<TransactionStatus>,
    ) -> TransactionWatch {
        TransactionWatch {
            client: self.clone(),
            id: id.to_owned(),
            await_status,
            stream: None,
            answered: false,
            last: None,
            failures: 0,
            server_delay: None,
            opened: 0,
            done: false,
        }
    }

    /// The transaction once it has settled (SUCCEEDED, FAILED, CANCELED, REFUNDED), however
    /// many times the stream has to be opened again on the way.
    pub async fn await_transaction(&self, id: &str) -> Result<pb::Transaction, Error> {
        self.watch_transaction(id, None).last().await
    }

    /// The transaction once it reaches `status` or settles, whichever comes first
    /// (e.g. REQUIRES_ACTION, to hand the client secret to the browser).
    pub async fn await_status(
        &self,
        id: &str,
        status: TransactionStatus,
    ) -> Result<pb::Transaction, Error> {
        self.watch_transaction(id, Some(status)).last().await
    }
}

/// A WatchTransaction that reconnects; see the module documentation.
#[derive(Debug)]
pub struct TransactionWatch {
    client: PaymentsClient,
    id: String,
    await_status: Option<TransactionStatus>,
    stream: Option<Streaming<pb::TransactionUpdate>>,
    /// Whether the open stream has sent a message.
    answered: bool,
    last: Option<pb::Transaction>,
    /// Consecutive failed attempts since the last message.
    failures: u32,
    /// The wait the server asked for with the last failure (RetryInfo).
    server_delay: Option<std::time::Duration>,
    opened: u32,
    done: bool,
}

impl TransactionWatch {
    /// The next newer version; `None` once the server has ended the watch.
    pub async fn next(&mut self) -> Option<Result<pb::Transaction, Error>> {
        while !self.done {
            let Some(stream) = self.stream.as_mut() else {
                if let Err(e) = self.open().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(update)) => {
                    self.answered = true;
                    self.failures = 0;
                    let Some(tx) = update.transaction else {
                        continue;
                    };
                    if self
                        .last
                        .as_ref()
                        .is_some_and(|last| last.version >= tx.version)
                    {
                        continue;
                    }
                    self.last = Some(tx.clone());
                    return Some(Ok(tx));
                }
                Ok(None) if self.answered => {
                    self.done = true;
                    self.stream = None;
                }
                Ok(None) => {
                    self.stream = None;
                    if let Err(e) = self.broke(Error::WatchEnded(self.id.clone())) {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                Err(status) => {
                    self.stream = None;
                    if let Err(e) = self.broke(status.into()) {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
        }
        None
    }

    /// The last version, once the watch has ended.
    pub async fn last(mut self) -> Result<pb::Transaction, Error> {
        while let Some(next) = self.next().await {
            next?;
        }
        self.last.ok_or_else(|| Error::WatchEnded(self.id.clone()))
    }

    /// How many times the stream was opened again after the first.
    pub fn reconnects(&self) -> u32 {
        self.opened.saturating_sub(1)
    }

    /// Opens the stream, after the backoff when earlier attempts failed; a failure the
    /// watch survives leaves `stream` empty for the next turn.
    async fn open(&mut self) -> Result<(), Error> {
        if self.failures > 0 {
            let policy = self.client.connection.retry_policy();
            let wait = match self.server_delay.take() {
                Some(asked) => asked.min(policy.max_server_delay),
                None => policy.backoff(self.failures),
            };
            tokio::time::sleep(wait).await;
        }
        match self.client.open_watch(&self.id, self.await_status).await {
            Ok(stream) => {
                self.opened += 1;
                self.answered = false;
                self.stream = Some(stream);
                Ok(())
            }
            Err(e) => self.broke(e),
        }
    }

    /// Counts a break; `Err` when it is not one to reconnect after, or the policy's
    /// attempts since the last message are spent.
    fn broke(&mut self, error: Error) -> Result<(), Error> {
        let survivable = match &error {
            Error::Rpc(e) => {
                self.server_delay = e.retry_delay;
                reconnects_after(e)
            }
            Error::WatchEnded(_) => true,
            _ => false,
        };
        self.failures += 1;
        let spent = self.failures >= self.client.connection.retry_policy().max_watch_attempts;
        if !survivable || spent {
            return Err(error);
        }
        tracing::debug!(transaction_id = %self.id, failures = self.failures, %error, "watch broke; reconnecting");
        Ok(())
    }
}

/// A watch only reads, so any sign of a broken stream or connection is worth another
/// try; a refusal (NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, …) is not.
fn reconnects_after(error: &RpcError) -> bool {
    error.is_retryable() || matches!(error.code, Code::Internal | Code::Unknown | Code::Cancelled)
}
