//! A success stored and applied in one statement: the transaction moved to SUCCEEDED
//! with its audit row, the wallet credited (the ledger trigger moves the balance), the
//! event stored once as applied, and the doorbell rung by the `transactions` trigger.
//! It commits on its own (no BEGIN), so one round trip does the whole event, or a whole
//! batch of them (group commit). The inbox
//! decides when the rules allow it (`inbox::one_statement`); this only writes under the
//! guard it is given.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{EventSource, EventState, MovementKind, StoreError, doorbell::doorbell_mode};
use crate::{Money, StripeEvent, TransactionId, TransactionKind, TransactionStatus};

/// The write, and the guard under which it is what the rules would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessWrite<'a> {
    pub transaction_id: TransactionId,
    /// The (kind, status) pairs the row may be in.
    pub from: Vec<(TransactionKind, TransactionStatus)>,
    /// The PaymentIntent that must be recorded on the row.
    pub payment_intent: &'a str,
    /// The amount and currency the row must hold: what the wallet is credited.
    pub amount: Money,
    /// The charge behind the success, recorded unless one is already.
    pub charge: Option<String>,
    pub credit: MovementKind,
    /// Why, for the audit trail.
    pub cause: &'static str,
}

/// [`write_successes`]' statement (public for the benchmark's replay of it), one row of
/// its input per event: `$1` the transactions, `$2`–`$4` the PaymentIntents, amounts and
/// currencies the rows must hold, `$5` the charges, `$6` the credits' kinds, `$7` the
/// causes, `$8`–`$14` the events' ids, types, API versions, creations, livemodes,
/// payloads and sources; `$15`–`$17` the (event, kind, status) triples of the pairs each
/// row may be in (the event by its place in the input, from 1); `$18` SUCCEEDED, `$19`
/// the events' state (applied); `$20` where the `transactions` trigger rings the
/// watchers' doorbell for this database transaction (`payments.doorbell`, migration
/// 0031: `after_commit` collects it instead, and the caller rings the `id:version` each
/// row returns once it has committed). The setting is made in the input's filter, which
/// runs before any row is written, so before the trigger (at the statement's end).
///
/// [`write_successes`] orders its input by transaction, so the rows are locked in id
/// order (the update follows the input); and the credits are inserted in user order,
/// so the ledger trigger takes the wallets in that order: the discipline
/// [`lock_many`](super::lock_many) keeps, so batches never wait on each other in a cycle.
///
/// The range on `n`, which every row passes, is there for the plan cache: planned with
/// its arrays known, the input is estimated at their length, and planned once for any
/// arrays at ten rows, which costs that plan so much more that PostgreSQL would plan
/// every execution anew (about 1.4 ms, three times the execution). A range on an
/// unknown column is estimated to keep 0.5% of the rows, so both plans count one row
/// per input, the same nested loops over the primary keys, and the one plan is kept.
pub const WRITE_SUCCESSES: &str = "WITH input AS ( \
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], \
         $12::bool[], $13::jsonb[], $14::text[]) WITH ORDINALITY \
         AS i(transaction_id, payment_intent, amount, currency, charge, credit, cause, \
              event_id, type, api_version, created, livemode, payload, source, n) \
       WHERE n > 0 AND n < 1000000 AND set_config('payments.doorbell', $20, true) IS NOT NULL \
     ), tx AS ( \
       UPDATE transactions t SET status = $18, failure_code = NULL, failure_message = NULL, \
         stripe_charge_id = COALESCE(t.stripe_charge_id, i.charge) \
       FROM input i JOIN transactions old ON old.id = i.transaction_id \
       WHERE t.id = i.transaction_id AND t.status = old.status \
         AND (i.n, t.kind::text, t.status::text) IN \
           (SELECT * FROM unnest($15::bigint[], $16::text[], $17::text[])) \
         AND t.stripe_payment_intent_id = i.payment_intent AND t.amount = i.amount \
         AND t.currency = i.currency AND t.amount_refunded = 0 AND t.failure_code IS NULL \
         AND EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = t.user_id \
                     AND w.currency = t.currency AND w.trial_state <> 'active') \
       RETURNING t.id, t.user_id, t.amount, t.currency, t.status, t.version, \
         old.status AS from_status, i.n \
     ), audit AS ( \
       INSERT INTO transaction_transitions \
         (transaction_id, from_status, to_status, version, cause, stripe_event_id) \
       SELECT tx.id, tx.from_status, tx.status, tx.version, i.cause, i.event_id \
       FROM tx JOIN input i USING (n) \
     ), credit AS ( \
       INSERT INTO ledger_entries \
         (user_id, transaction_id, kind, movement_key, amount, currency, stripe_event_id) \
       SELECT tx.user_id, tx.id, i.credit, '', tx.amount, tx.currency, i.event_id \
       FROM tx JOIN input i USING (n) ORDER BY tx.user_id \
     ), stored AS ( \
       INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source, \
         state, transaction_id, attempts, processed_at) \
       SELECT i.event_id, i.type, i.api_version, i.created, i.livemode, i.payload, i.source, \
         $19, tx.id, 1, now() \
       FROM tx JOIN input i USING (n) \
     ) SELECT n, from_status, version FROM tx";

/// What one write did: the status its transaction moved from, and the version it
/// moved to (what the watchers' doorbell carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub from: TransactionStatus,
    pub version: i64,
}

impl Written {
    /// The doorbell's payload for this write of `transaction`, as the trigger rings it.
    pub fn doorbell(&self, transaction: TransactionId) -> String {
        format!("{}:{}", transaction.as_uuid(), self.version)
    }
}

/// Writes each of `writes` (a write, its event, where the event came from) whose row
/// passes its guard, in one statement that commits with the caller's database
/// transaction, or on its own outside one. Returns, for each write, what it did, or
/// None (nothing written for it). On top of each write's guard the row must hold
/// nothing refunded and no failure, and its user's wallet must be in the same currency
/// and not in a trial. The writes must name distinct transactions: a row is updated
/// once per statement, so a second write of it would silently be left out.
///
/// With `collect_doorbells` the trigger collects the doorbells instead of ringing them
/// (for the rest of the database transaction, as [`begin_collecting_doorbells`] does):
/// the caller rings [`Written::doorbell`] of each write once it has committed.
///
/// The writes are made in transaction-id order, whatever their order here (see
/// [`WRITE_SUCCESSES`]); the answers are in this order.
///
/// Like [`insert_event`](super::insert_event), an event id stored before is refused by
/// the primary key ([`StoreError::is_repeated_event`]) and the whole statement is
/// undone. The status is re-checked on the row version the update meets, so a writer
/// that changed it meanwhile makes the write of that row nothing.
///
/// [`begin_collecting_doorbells`]: super::begin_collecting_doorbells
pub async fn write_successes(
    conn: &mut PgConnection,
    writes: &[(&SuccessWrite<'_>, &StripeEvent, EventSource)],
    collect_doorbells: bool,
) -> Result<Vec<Option<Written>>, StoreError> {
    // The statement's input in transaction-id order, and where each came from.
    let mut order: Vec<usize> = (0..writes.len()).collect();
    order.sort_by_key(|&i| writes[i].0.transaction_id.as_uuid());
    let c = Columns::of(order.iter().map(|&i| &writes[i]));
    let written: Vec<(i64, TransactionStatus, i64)> = sqlx::query_as(WRITE_SUCCESSES)
        .bind(c.transaction)
        .bind(c.payment_intent)
        .bind(c.amount)
        .bind(c.currency)
        .bind(c.charge)
        .bind(c.credit)
        .bind(c.cause)
        .bind(c.event)
        .bind(c.event_type)
        .bind(c.api_version)
        .bind(c.created)
        .bind(c.livemode)
        .bind(c.payload)
        .bind(c.source)
        .bind(c.pair_event)
        .bind(c.pair_kind)
        .bind(c.pair_status)
        .bind(TransactionStatus::Succeeded)
        .bind(EventState::Applied)
        .bind(doorbell_mode(collect_doorbells))
        .fetch_all(&mut *conn)
        .await?;
    let mut done = vec![None; writes.len()];
    for (n, from, version) in written {
        let place = usize::try_from(n - 1).ok().and_then(|i| order.get(i));
        if let Some(slot) = place.and_then(|&i| done.get_mut(i)) {
            *slot = Some(Written { from, version });
        }
    }
    Ok(done)
}

/// [`WRITE_SUCCESSES`]' input, a column (an array parameter) per field.
#[derive(Default)]
struct Columns<'w> {
    transaction: Vec<Uuid>,
    payment_intent: Vec<&'w str>,
    amount: Vec<i64>,
    currency: Vec<String>,
    charge: Vec<Option<&'w str>>,
    credit: Vec<&'w str>,
    cause: Vec<&'w str>,
    event: Vec<&'w str>,
    event_type: Vec<&'w str>,
    api_version: Vec<Option<&'w str>>,
    created: Vec<DateTime<Utc>>,
    livemode: Vec<bool>,
    payload: Vec<&'w Value>,
    source: Vec<&'w str>,
    pair_event: Vec<i64>,
    pair_kind: Vec<&'w str>,
    pair_status: Vec<&'w str>,
}

impl<'w> Columns<'w> {
    fn of(
        writes: impl Iterator<Item = &'w (&'w SuccessWrite<'w>, &'w StripeEvent, EventSource)>,
    ) -> Columns<'w> {
        let mut c = Columns::default();
        for (n, (write, event, source)) in (1..).zip(writes) {
            c.transaction.push(write.transaction_id.as_uuid());
            c.payment_intent.push(write.payment_intent);
            c.amount.push(write.amount.minor());
            c.currency.push(write.amount.currency().to_string());
            c.charge.push(write.charge.as_deref());
            c.credit.push(write.credit.as_str());
            c.cause.push(write.cause);
            c.event.push(event.id.as_str());
            c.event_type.push(&event.event_type);
            c.api_version.push(event.api_version.as_deref());
            c.created.push(event.created);
            c.livemode.push(event.livemode);
            c.payload.push(&event.payload);
            c.source.push(source.as_str());
            for (kind, status) in &write.from {
                c.pair_event.push(n);
                c.pair_kind.push(kind.as_str());
                c.pair_status.push(status.as_str());
            }
        }
        c
    }
}

/// [`write_successes`] for one event.
pub async fn write_success(
    conn: &mut PgConnection,
    write: &SuccessWrite<'_>,
    event: &StripeEvent,
    source: EventSource,
    collect_doorbells: bool,
) -> Result<Option<Written>, StoreError> {
    let written = write_successes(conn, &[(write, event, source)], collect_doorbells).await?;
    Ok(written.into_iter().next().flatten())
}
