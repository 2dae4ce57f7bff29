//! The inbox: every verified event is stored in `stripe_events` and applied in the same
//! database transaction, so the event, the transaction's new state and its side
//! effects commit together or not at all.
//!
//! - [`receive`] is the webhook (and catch-up) path: apply, then insert the event once
//!   with its outcome (no savepoint: a failure is recorded in a second transaction). The
//!   primary key decides duplicates, also between instances: a second insert of an id
//!   waits on the index for the first and fails if it commits, and its rollback undoes
//!   what the repeat applied. Its common case, a top-up's success, is first tried as
//!   one statement that commits on its own ([`one_statement`]): written only where the
//!   rules would write exactly that, otherwise nothing is written and the steps above run.
//! - [`process`] is the retry worker's and the operator's: apply inside a savepoint, then record
//!   the outcome (and the next attempt, or the dead letter) on the event row.
//! - [`apply`]: what one event does, in the caller's database transaction.
//!
//! The webhook path ([`receive_cached`], [`receive_batch`]) rings the watchers' doorbell
//! through the [`Doorbell`] it is given: after the commit, when the service runs it so
//! (`store::doorbell`); every other path rings inside the commit, from the trigger.

mod apply;
mod one_statement;

pub use apply::Handled;

use apply::Prelocked;

use std::collections::HashSet;

use chrono::Utc;
use sqlx::{Connection, PgConnection, PgPool};

use crate::{
    StripeEvent, StripeMode, TransactionId, TransactionStatus,
    retry::RetryPolicy,
    store::{
        self, ConnectionCache, Doorbell, EventOutcome, EventSource, EventState, StoreError,
        SuccessWrite,
    },
};

/// How the inbox treats events: their retry budget, and the mode (test or live) of
/// the service's Stripe key, the only mode whose events are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub retry: RetryPolicy,
    pub mode: StripeMode,
}

/// What the webhook path did with an event.
#[derive(Debug)]
pub enum Received {
    /// Newly stored and processed.
    Stored(Report),
    /// Its id was already stored: nothing was repeated.
    Duplicate,
}

/// Stores `event` and, if it is new, processes it, in one database transaction.
/// An error means the event is not stored.
///
/// This is the hot path, so it takes no savepoint: if applying fails on anything but
/// the database being away, the whole transaction rolls back and a second one stores
/// the event with the failure recorded, for the retry worker.
pub async fn receive(
    pool: &PgPool,
    event: &StripeEvent,
    source: EventSource,
    rules: &Rules,
) -> Result<Received, StoreError> {
    let mut conn = pool.acquire().await?;
    receive_on(&mut conn, event, source, rules, &Doorbell::in_commit()).await
}

/// [`receive`] on a connection from `cache`, put back in it when the work ended
/// cleanly (the webhook path: no pool hand-over and no pool test per event), ringing
/// the watchers' doorbell through `doorbell`.
pub async fn receive_cached(
    cache: &ConnectionCache,
    event: &StripeEvent,
    source: EventSource,
    rules: &Rules,
    doorbell: &Doorbell,
) -> Result<Received, StoreError> {
    cache
        .run(async |conn| receive_on(conn, event, source, rules, doorbell).await)
        .await
}

/// Every `Ok` ends with its COMMIT or ROLLBACK completed, as [`ConnectionCache::run`]
/// requires; so does [`receive_batch_on`]'s.
async fn receive_on(
    conn: &mut PgConnection,
    event: &StripeEvent,
    source: EventSource,
    rules: &Rules,
    doorbell: &Doorbell,
) -> Result<Received, StoreError> {
    // A catch-up pass or a replay mostly reads events stored long ago: looked up first,
    // so they are not applied only to be rolled back.
    if source != EventSource::Webhook
        && !store::stored_event_ids(conn, &[event.id.as_str()])
            .await?
            .is_empty()
    {
        return Ok(Received::Duplicate);
    }
    if let Some(write) = one_statement::plan(event, rules.mode)
        && let Some(received) =
            receive_in_one_statement(conn, &write, event, source, rules, doorbell).await?
    {
        return Ok(received);
    }
    receive_general(conn, event, source, rules, doorbell).await
}

/// [`receive_on`]'s steps after the one statement (or without it): apply and store in
/// one database transaction, or store the failure in a second.
async fn receive_general(
    conn: &mut PgConnection,
    event: &StripeEvent,
    source: EventSource,
    rules: &Rules,
    doorbell: &Doorbell,
) -> Result<Received, StoreError> {
    let mut tx = doorbell.begin(conn, "receive_event").await?;
    let failure = match receive_in(&mut tx, event, source, rules, &mut Prelocked::default()).await {
        Ok((report, doorbells)) => {
            tx.commit().await?;
            doorbell.ring(doorbells);
            return Ok(Received::Stored(report));
        }
        Err(e) if e.is_repeated_event() => {
            tx.rollback().await?;
            return Ok(Received::Duplicate);
        }
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) => e,
    };
    tx.rollback().await?;
    log_failure(event, &failure);
    let handled = Handled::failed(failure.to_string());
    let (outcome, report) = outcome(event, &handled, 0, &rules.retry);
    // Nothing was applied, so nothing rings.
    let mut tx = store::begin_on(conn, "receive_event_failed").await?;
    match store::insert_event(&mut tx, event, source, &outcome).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(Received::Stored(report))
        }
        // Another delivery stored it in the meantime.
        Err(e) if e.is_repeated_event() => {
            tx.rollback().await?;
            Ok(Received::Duplicate)
        }
        Err(e) => Err(e),
    }
}

/// The common success, planned as `write`, in one statement that commits on its own
/// ([`one_statement`]), its doorbell rung through `doorbell`; None when it wrote
/// nothing and the general path must run.
async fn receive_in_one_statement(
    conn: &mut PgConnection,
    write: &SuccessWrite<'_>,
    event: &StripeEvent,
    source: EventSource,
    rules: &Rules,
    doorbell: &Doorbell,
) -> Result<Option<Received>, StoreError> {
    let collect = doorbell.collects();
    match write_planned(conn, write, event, source, rules, collect).await {
        Ok(Some(written)) => {
            doorbell.ring(written.doorbell);
            Ok(Some(Received::Stored(written.report)))
        }
        Ok(None) => Ok(None),
        Err(e) if e.is_repeated_event() => Ok(Some(Received::Duplicate)),
        Err(e) if e.is_unavailable() => Err(e),
        // Refused by a wall (the ledger's key, a legal-transition check): the general
        // path decides again and records what it finds.
        Err(e) => {
            tracing::warn!(
                event_id = %event.id, error = %crate::error_chain(&e),
                "the one-statement success was refused; the event takes the general path"
            );
            Ok(None)
        }
    }
}

/// What a planned one-statement write did.
struct PlannedWrite {
    report: Report,
    /// Its doorbell's payload, to ring once it has committed if it was collected.
    doorbell: String,
}

/// Runs a planned one-statement write, its doorbell collected if `collect` (see
/// [`store::write_successes`]). Inside a database transaction, it commits with it; an
/// error leaves that transaction unusable, as [`receive_in`]'s do.
async fn write_planned(
    conn: &mut PgConnection,
    write: &SuccessWrite<'_>,
    event: &StripeEvent,
    source: EventSource,
    rules: &Rules,
    collect: bool,
) -> Result<Option<PlannedWrite>, StoreError> {
    let Some(written) = store::write_success(conn, write, event, source, collect).await? else {
        return Ok(None);
    };
    Ok(Some(PlannedWrite {
        report: applied(event, write, written.from, rules),
        doorbell: written.doorbell(write.transaction_id),
    }))
}

/// The report of a one-statement write that moved its transaction from `from`.
fn applied(
    event: &StripeEvent,
    write: &SuccessWrite<'_>,
    from: TransactionStatus,
    rules: &Rules,
) -> Report {
    let handled = Handled {
        transaction_id: Some(write.transaction_id),
        transition: Some((from, TransactionStatus::Succeeded)),
        ..Handled::new(EventState::Applied)
    };
    outcome(event, &handled, 0, &rules.retry).1
}

/// A batch made only of one-statement successes, of distinct events and transactions:
/// all written by one statement that commits on its own (one round trip for the
/// batch). An event whose guard failed is then received on its own, by the general
/// path ([`receive_general`]).
/// None when the batch is not one of those, or the statement was refused (an event
/// stored before): nothing was written, and the caller's steps run.
async fn receive_batch_in_one_statement(
    conn: &mut PgConnection,
    events: &[(&StripeEvent, EventSource)],
    planned: &[Option<SuccessWrite<'_>>],
    rules: &Rules,
    doorbell: &Doorbell,
) -> Result<Option<Vec<Received>>, StoreError> {
    let Some(writes) = planned
        .iter()
        .map(Option::as_ref)
        .collect::<Option<Vec<&SuccessWrite>>>()
    else {
        return Ok(None);
    };
    let (mut transactions, mut ids) = (HashSet::new(), HashSet::new());
    let distinct = writes.iter().zip(events).all(|(write, (event, _))| {
        transactions.insert(write.transaction_id) && ids.insert(event.id.as_str())
    });
    if !distinct {
        return Ok(None);
    }
    let items: Vec<_> = writes
        .iter()
        .zip(events)
        .map(|(write, (event, source))| (*write, *event, *source))
        .collect();
    let written = match store::write_successes(conn, &items, doorbell.collects()).await {
        Ok(written) => written,
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) => {
            if !e.is_repeated_event() {
                tracing::warn!(
                    error = %crate::error_chain(&e), batch = events.len(),
                    "a batch's one statement was refused; the batch takes the general path"
                );
            }
            return Ok(None);
        }
    };
    // Committed: ring what was written before anything else runs.
    for (write, done) in writes.iter().zip(&written) {
        if let Some(done) = done {
            doorbell.ring(done.doorbell(write.transaction_id));
        }
    }
    let mut received = Vec::with_capacity(events.len());
    for ((write, (event, source)), done) in writes.iter().zip(events).zip(written) {
        received.push(match done {
            Some(done) => Received::Stored(applied(event, write, done.from, rules)),
            // Its guard failed a moment ago: the general path, without trying again.
            None => receive_general(conn, event, *source, rules, doorbell).await?,
        });
    }
    Ok(Some(received))
}

/// Stores and applies several events in one database transaction (group commit: one
/// commit and one WAL flush for all of them). The results are in the events' order.
/// Each event is applied exactly as [`receive`] would; an id stored before, or repeated
/// within the batch, is a duplicate and is not applied. If applying any of them fails on
/// anything but the database being away (or another instance stores one of them
/// first), the batch rolls back and each event goes through [`receive`]'s steps on its
/// own, on the same connection, so one bad event costs the others only time. An error
/// (the database away) means the events may or may not be stored: those committed
/// before it (a batch of successes written in one statement, then one of its events on
/// its own; the steps one event at a time) are, and their redelivery is a duplicate,
/// as for a 200 lost on its way back.
pub async fn receive_batch(
    cache: &ConnectionCache,
    events: &[(&StripeEvent, EventSource)],
    rules: &Rules,
    doorbell: &Doorbell,
) -> Result<Vec<Received>, StoreError> {
    cache
        .run(async |conn| receive_batch_on(conn, events, rules, doorbell).await)
        .await
}

async fn receive_batch_on(
    conn: &mut PgConnection,
    events: &[(&StripeEvent, EventSource)],
    rules: &Rules,
    doorbell: &Doorbell,
) -> Result<Vec<Received>, StoreError> {
    // A batch of one (what a lone webhook makes) needs no look-up of stored ids: the
    // primary key decides it as on the single path.
    if let [(event, source)] = events {
        return Ok(vec![
            receive_on(conn, event, *source, rules, doorbell).await?,
        ]);
    }
    let planned: Vec<Option<SuccessWrite>> = events
        .iter()
        .map(|(event, _)| one_statement::plan(event, rules.mode))
        .collect();
    if let Some(received) =
        receive_batch_in_one_statement(conn, events, &planned, rules, doorbell).await?
    {
        return Ok(received);
    }
    let mut tx = doorbell.begin(conn, "receive_events").await?;
    match apply_batch(&mut tx, events, &planned, rules, doorbell.collects()).await {
        Ok((received, doorbells)) => {
            tx.commit().await?;
            doorbell.ring(doorbells);
            return Ok(received);
        }
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) => {
            tx.rollback().await?;
            tracing::warn!(
                error = %crate::error_chain(&e), batch = events.len(),
                "a batch failed (an event that cannot be applied, or one stored meanwhile by another instance); it is applied one event at a time"
            );
        }
    }
    let mut one_by_one = Vec::with_capacity(events.len());
    for (event, source) in events {
        one_by_one.push(receive_on(conn, event, *source, rules, doorbell).await?);
    }
    Ok(one_by_one)
}

/// A batch's work inside its database transaction, when it is not made only of
/// one-statement successes ([`receive_batch_in_one_statement`]): the look-up of the ids
/// stored before, one statement locking every transaction the new events name by our id
/// and then their wallets (each in id order, so batches never wait on each other in a
/// cycle: [`store::lock_many`]), then each new event as [`receive`] applies and stores
/// it, minus its lock. The common success is written in one statement, as on the single
/// path, on the row locked for it. Any error
/// leaves the database transaction to be rolled back. Also returns the doorbells
/// collected if `collect` (the database transaction collects them: an insert's read of
/// them covers everything before it, and the one-statement writes after the last insert
/// are added).
async fn apply_batch(
    conn: &mut PgConnection,
    events: &[(&StripeEvent, EventSource)],
    planned: &[Option<SuccessWrite<'_>>],
    rules: &Rules,
    collect: bool,
) -> Result<(Vec<Received>, String), StoreError> {
    let ids: Vec<&str> = events.iter().map(|(event, _)| event.id.as_str()).collect();
    let mut seen: HashSet<String> = store::stored_event_ids(conn, &ids)
        .await?
        .into_iter()
        .collect();
    // An id stored before, or repeated within the batch, is a duplicate: not applied.
    let fresh: Vec<bool> = events
        .iter()
        .map(|(event, _)| seen.insert(event.id.as_str().to_owned()))
        .collect();
    let new: Vec<(&StripeEvent, EventSource, &Option<SuccessWrite>)> = events
        .iter()
        .zip(planned)
        .zip(&fresh)
        .filter_map(|(((event, source), write), fresh)| fresh.then_some((*event, *source, write)))
        .collect();
    let to_lock = new.iter().map(|(event, _, _)| *event);
    let mut prelocked = Prelocked::lock(conn, to_lock, rules.mode).await?;
    let mut reports = Vec::with_capacity(new.len());
    // The last insert's read of the collected doorbells, and the writes' since.
    let (mut collected_by_insert, mut written_since) = (String::new(), Vec::new());
    for (event, source, write) in &new {
        if let Some(write) = write
            && let Some(written) =
                write_planned(conn, write, event, *source, rules, collect).await?
        {
            // Its row changed: an event after it about the same transaction locks it anew.
            prelocked.forget(write.transaction_id);
            reports.push(written.report);
            written_since.push(written.doorbell);
            continue;
        }
        match receive_in(conn, event, *source, rules, &mut prelocked).await {
            Ok((report, collected)) => {
                reports.push(report);
                collected_by_insert = collected;
                written_since.clear();
            }
            Err(e) => {
                if !e.is_unavailable() {
                    tracing::warn!(event_id = %event.id, error = %crate::error_chain(&e), "an event failed inside a batch");
                }
                return Err(e);
            }
        }
    }
    let mut reports = reports.into_iter();
    let received = fresh
        .into_iter()
        .map(|fresh| match fresh.then(|| reports.next()).flatten() {
            Some(report) => Received::Stored(report),
            None => Received::Duplicate,
        })
        .collect();
    let doorbells = match collect {
        true => std::iter::once(collected_by_insert)
            .chain(written_since)
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        false => String::new(),
    };
    Ok((received, doorbells))
}

/// Applies, then stores the event once with its outcome, inside the caller's database
/// transaction and without a savepoint: an error leaves that transaction unusable. The
/// insert comes last so the row is written once, in its final state; a repeated id fails
/// it ([`StoreError::is_repeated_event`]) and the caller's rollback undoes the apply.
/// Also returns the doorbells the database transaction collected so far
/// ([`store::insert_event`]).
async fn receive_in(
    conn: &mut PgConnection,
    event: &StripeEvent,
    source: EventSource,
    rules: &Rules,
    prelocked: &mut Prelocked,
) -> Result<(Report, String), StoreError> {
    let handled = apply::apply_with(conn, event, rules.mode, prelocked).await?;
    let (outcome, report) = outcome(event, &handled, 0, &rules.retry);
    let doorbells = store::insert_event(conn, event, source, &outcome).await?;
    Ok((report, doorbells))
}

fn log_failure(event: &StripeEvent, e: &StoreError) {
    tracing::error!(
        event_id = %event.id, error = %crate::error_chain(e),
        "applying the event failed; it stays stored and will be retried"
    );
}

/// One processing attempt of a stored event, in the caller's database transaction.
/// Only the database being unavailable is an error (the caller rolls back); any other
/// failure is recorded on the event, which stays stored and is retried.
pub async fn process(
    conn: &mut PgConnection,
    event: &StripeEvent,
    attempts_before: i32,
    rules: &Rules,
) -> Result<Report, StoreError> {
    let mut savepoint = conn.begin().await?;
    let handled = match apply::apply(&mut savepoint, event, rules.mode).await {
        Ok(handled) => {
            savepoint.commit().await?;
            handled
        }
        Err(e) if e.is_unavailable() => return Err(e),
        Err(e) => {
            savepoint.rollback().await?;
            log_failure(event, &e);
            Handled::failed(e.to_string())
        }
    };
    let (outcome, report) = outcome(event, &handled, attempts_before, &rules.retry);
    store::record_event_outcome(conn, event.id.as_str(), &outcome).await?;
    Ok(report)
}

/// How an attempt's outcome is recorded on the event, and its report: a retryable
/// outcome past the budget becomes dead (or what the outcome says it becomes then).
fn outcome<'a>(
    event: &StripeEvent,
    handled: &'a Handled,
    attempts_before: i32,
    policy: &RetryPolicy,
) -> (EventOutcome<'a>, Report) {
    let attempts = u32::try_from(attempts_before.saturating_add(1)).unwrap_or(u32::MAX);
    let (state, next_attempt_at) = match handled.state.is_retryable() {
        false => (handled.state, None),
        true => match policy.next_attempt_at(attempts, Utc::now()) {
            Some(at) => (handled.state, Some(at)),
            None => (handled.when_spent, None),
        },
    };
    if state == EventState::Dead {
        tracing::warn!(
            event_id = %event.id, event_type = %event.event_type, attempts,
            reason = handled.note.as_deref().unwrap_or_default(),
            "event dead-lettered after its retry budget"
        );
    }
    let outcome = EventOutcome {
        state,
        transaction_id: handled.transaction_id,
        error: handled.note.as_deref(),
        next_attempt_at,
        count_attempt: true,
    };
    let report = Report {
        event_type: event.event_type.clone(),
        transaction_id: handled.transaction_id,
        handled: handled.state,
        state,
        transition: handled.transition,
    };
    (outcome, report)
}

/// What a committed attempt did, for metrics (counted only after the commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub event_type: String,
    /// The transaction the event was matched to, if any.
    pub transaction_id: Option<TransactionId>,
    /// The attempt's own outcome.
    pub handled: EventState,
    /// The state recorded (dead when a retryable outcome spent the budget).
    pub state: EventState,
    pub transition: Option<(TransactionStatus, TransactionStatus)>,
}

/// Where a service counts what the inbox did (its Prometheus registry).
pub trait InboxMetrics {
    fn event_outcome(&self, state: &str);
    fn event_applied(&self, event_type: &str);
    fn event_unmatched(&self);
    fn event_dead_lettered(&self);
    fn transition(&self, from: &str, to: &str);
}

impl<M: InboxMetrics + ?Sized> InboxMetrics for std::sync::Arc<M> {
    fn event_outcome(&self, state: &str) {
        (**self).event_outcome(state);
    }
    fn event_applied(&self, event_type: &str) {
        (**self).event_applied(event_type);
    }
    fn event_unmatched(&self) {
        (**self).event_unmatched();
    }
    fn event_dead_lettered(&self) {
        (**self).event_dead_lettered();
    }
    fn transition(&self, from: &str, to: &str) {
        (**self).transition(from, to);
    }
}

impl Report {
    /// Counts the attempt; call only after its database transaction committed.
    pub fn count(&self, metrics: &impl InboxMetrics) {
        metrics.event_outcome(self.state.as_str());
        match self.handled {
            EventState::Applied => metrics.event_applied(&self.event_type),
            EventState::Unmatched => metrics.event_unmatched(),
            _ => {}
        }
        if self.state == EventState::Dead {
            metrics.event_dead_lettered();
        }
        if let Some((from, to)) = self.transition
            && from != to
        {
            metrics.transition(from.as_str(), to.as_str());
        }
    }
}
