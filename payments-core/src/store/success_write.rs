//! A success stored and applied in one statement: the transaction moved to SUCCEEDED
//! with its audit row, the wallet credited (the ledger trigger moves the balance), the
//! event stored once as applied, and the doorbell rung by the `transactions` trigger.
//! It commits on its own (no BEGIN), so one round trip does the whole event. The inbox
//! decides when the rules allow it (`inbox::one_statement`); this only writes under the
//! guard it is given.

use sqlx::PgConnection;

use super::{EventSource, EventState, MovementKind, StoreError};
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

/// [`write_success`]'s statement (public for the benchmark's replay of it):
/// `$1` the transaction, `$2`/`$4` the (kind, status) pairs as two arrays, `$3` SUCCEEDED,
/// `$5`–`$7` the PaymentIntent, amount and currency the row must hold, `$8` the charge,
/// `$9` the cause, `$10` the event id, `$11` the credit's kind, `$12`–`$18` the event's
/// type, API version, creation, livemode, payload, source and state.
pub const WRITE_SUCCESS: &str = "WITH tx AS ( \
           UPDATE transactions t SET status = $3, failure_code = NULL, failure_message = NULL, \
             stripe_charge_id = COALESCE(t.stripe_charge_id, $8) \
           FROM (SELECT id, status FROM transactions WHERE id = $1) old \
           WHERE t.id = $1 AND t.status = old.status \
             AND (t.kind::text, t.status::text) IN (SELECT * FROM unnest($2::text[], $4::text[])) \
             AND t.stripe_payment_intent_id = $5 AND t.amount = $6 AND t.currency = $7 \
             AND t.amount_refunded = 0 AND t.failure_code IS NULL \
             AND EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = t.user_id \
                         AND w.currency = t.currency AND w.trial_state <> 'active') \
           RETURNING t.id, t.user_id, t.amount, t.currency, t.status, t.version, \
             old.status AS from_status \
         ), audit AS ( \
           INSERT INTO transaction_transitions \
             (transaction_id, from_status, to_status, version, cause, stripe_event_id) \
           SELECT id, from_status, status, version, $9, $10 FROM tx \
         ), credit AS ( \
           INSERT INTO ledger_entries \
             (user_id, transaction_id, kind, movement_key, amount, currency, stripe_event_id) \
           SELECT user_id, id, $11, '', amount, currency, $10 FROM tx \
         ), stored AS ( \
           INSERT INTO stripe_events (id, type, api_version, created, livemode, payload, source, \
             state, transaction_id, attempts, processed_at) \
           SELECT $10, $12, $13, $14, $15, $16, $17, $18, id, 1, now() FROM tx \
         ) SELECT from_status FROM tx";

/// Writes `write` for `event`, received from `source`, if the row passes its guard;
/// returns the status the transaction moved from, or None (nothing written). On top of
/// the write's guard the row must hold nothing refunded and no failure, and its user's
/// wallet must be in the same currency and not in a trial.
///
/// Like [`insert_event`](super::insert_event), a repeated event id is refused by the
/// primary key ([`StoreError::is_repeated_event`]) and the whole statement is undone.
/// The status is re-checked on the row version the update meets, so a writer that
/// changed it meanwhile makes this write nothing.
pub async fn write_success(
    conn: &mut PgConnection,
    write: &SuccessWrite<'_>,
    event: &StripeEvent,
    source: EventSource,
) -> Result<Option<TransactionStatus>, StoreError> {
    let (kinds, statuses): (Vec<&str>, Vec<&str>) = write
        .from
        .iter()
        .map(|(kind, status)| (kind.as_str(), status.as_str()))
        .unzip();
    Ok(sqlx::query_scalar(WRITE_SUCCESS)
        .bind(write.transaction_id.as_uuid())
        .bind(&kinds)
        .bind(TransactionStatus::Succeeded)
        .bind(&statuses)
        .bind(write.payment_intent)
        .bind(write.amount.minor())
        .bind(write.amount.currency())
        .bind(write.charge.as_deref())
        .bind(write.cause)
        .bind(event.id.as_str())
        .bind(write.credit)
        .bind(&event.event_type)
        .bind(&event.api_version)
        .bind(event.created)
        .bind(event.livemode)
        .bind(&event.payload)
        .bind(source)
        .bind(EventState::Applied)
        .fetch_optional(&mut *conn)
        .await?)
}
