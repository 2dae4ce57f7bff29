//! What one event does, decided by payments-core and written in the caller's database
//! transaction: find the transaction (or customer) it is about, make sure the event's
//! object is that transaction's own ([`binding`]), and apply its signal.
//! Nothing here commits, and nothing here decides a state rule.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    CardDetails, Meaning, Signal, StripeEvent, StripeMode, StripeObject, Target, Transaction,
    TransactionId, TransactionKind, TransactionStatus,
    binding::{self, Binding},
    reconcile::{self, ObjectKind},
    settle::{self, Cause, Context, Outcome},
    store::{self, EventState, Locked, RowAddress, StoreError, Upserted},
};

/// What one processing attempt found, before it is recorded on the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub state: EventState,
    pub transaction_id: Option<TransactionId>,
    /// Why the event ended in this state, when that needs saying (kept as `last_error`).
    pub note: Option<String>,
    /// The status change committed, if any (from, to).
    pub transition: Option<(TransactionStatus, TransactionStatus)>,
    /// Where a retryable event ends when its retry budget is spent: dead (an operator
    /// must look) unless said otherwise.
    pub when_spent: EventState,
}

impl Handled {
    pub(super) fn new(state: EventState) -> Self {
        Handled {
            state,
            transaction_id: None,
            note: None,
            transition: None,
            when_spent: EventState::Dead,
        }
    }

    fn because(state: EventState, note: impl Into<String>) -> Self {
        Handled {
            note: Some(note.into()),
            ..Handled::new(state)
        }
    }

    /// The attempt failed with an error that is not the database being away: the event
    /// stays stored (state received) and is retried.
    pub fn failed(error: impl Into<String>) -> Self {
        Handled::because(EventState::Received, error)
    }
}

/// Transactions a batch of events locked together before applying them one by one
/// ([`Prelocked::lock`]), each to be used once, by the first event about it, instead of
/// a lock statement of its own.
///
/// A row read here is the transaction's state only while nothing else in the database
/// transaction has written it. Every write of a transaction goes through a lock of it,
/// so one taken any other way ([`apply_with`]'s by a Stripe id) removes that row from
/// here; and coupons are left out, since a coupon's late success cancels its sibling (a
/// coupon too) without the event being about it.
#[derive(Debug, Default)]
pub struct Prelocked(HashMap<TransactionId, Locked>);

impl Prelocked {
    /// Locks, in one statement, the transactions `events` name by our id (those of
    /// `mode`, the only ones applied), then their users' wallets
    /// ([`store::lock_many`]).
    pub async fn lock<'e>(
        conn: &mut PgConnection,
        events: impl IntoIterator<Item = &'e StripeEvent>,
        mode: StripeMode,
    ) -> Result<Prelocked, StoreError> {
        let ids: Vec<Uuid> = events
            .into_iter()
            .filter(|event| event.mode() == mode)
            .filter_map(|event| event.target().transaction_id)
            .map(|id| id.as_uuid())
            .collect();
        if ids.is_empty() {
            return Ok(Prelocked::default());
        }
        let locked = store::lock_many(conn, &ids).await?;
        Ok(Prelocked(
            locked
                .into_iter()
                .filter(|l| l.transaction.kind != TransactionKind::Coupon)
                .map(|l| (l.transaction.id, l))
                .collect(),
        ))
    }

    /// Drops what was read of `id`: written since, it must be locked and read anew.
    pub fn forget(&mut self, id: TransactionId) {
        self.0.remove(&id);
    }
}

/// Applies `event`, received by a service holding a key of `mode`. Errors are the
/// store's; a missing transaction or customer is an outcome (unmatched, or foreign
/// when nothing in the event is ours), not an error.
pub async fn apply(
    conn: &mut PgConnection,
    event: &StripeEvent,
    mode: StripeMode,
) -> Result<Handled, StoreError> {
    apply_with(conn, event, mode, &mut Prelocked::default()).await
}

/// [`apply`], taking the event's transaction from `prelocked` when it is there.
pub async fn apply_with(
    conn: &mut PgConnection,
    event: &StripeEvent,
    mode: StripeMode,
    prelocked: &mut Prelocked,
) -> Result<Handled, StoreError> {
    if event.mode() != mode {
        // The other account's object may carry a real transaction id (a live endpoint
        // pointed at a test receiver, or the reverse): it is never ours to apply.
        return Ok(Handled::because(
            EventState::Flagged,
            format!(
                "a {}-mode event, and this service holds a {}-mode key",
                event.mode().as_str(),
                mode.as_str()
            ),
        ));
    }
    let meaning = match event.meaning() {
        Ok(meaning) => meaning,
        // The type is one we act on but the object lacks what the rule needs: retrying
        // cannot help, an operator must look.
        Err(e) => return Ok(Handled::because(EventState::Flagged, e.to_string())),
    };
    match meaning {
        Meaning::Transaction {
            target,
            signal,
            currency,
            charge,
            payment_method: _,
        } => {
            let found = match target.transaction_id.and_then(|id| prelocked.0.remove(&id)) {
                Some(locked) => Some(locked),
                None => {
                    let found = store::lock_by_target(conn, &target).await?;
                    // Found by a Stripe id, it may be a row read ahead under our id.
                    if let Some(locked) = &found {
                        prelocked.0.remove(&locked.transaction.id);
                    }
                    found
                }
            };
            let Some(locked) = found else {
                return Ok(not_found(&target, StripeObject::new(event.object()).kind()));
            };
            let (tx, address) = match bound(conn, event, locked, &signal).await? {
                Ok(bound) => bound,
                Err(handled) => return Ok(handled),
            };
            let context = Context {
                currency: currency.as_deref(),
                charge: charge.as_deref(),
                address: address.as_ref(),
            };
            settle_transaction(conn, event, &tx, &signal, context).await
        }
        Meaning::PaymentMethodAttached(card) => attach(conn, &card).await,
        Meaning::PaymentMethodDetached { payment_method_id } => {
            match store::mark_detached(conn, &payment_method_id).await? {
                Some(_) => Ok(Handled::new(EventState::Applied)),
                // The attach may still be on its way (events are not delivered in order).
                None => Ok(not_ours_yet("payment method not known yet")),
            }
        }
        Meaning::Nothing => Ok(Handled::new(EventState::Ignored)),
    }
}

/// No transaction found: ours but not committed yet if it carries our id (retried
/// until it is). A PaymentIntent or invoice without our id is someone else's: we put
/// our id on every one we create. A charge, dispute or refund without it, naming no
/// Stripe id we recorded, may still be ours before its PaymentIntent is recorded (the
/// request's answer still on its way to payments-api; Stripe's dispute test cards make
/// that immediate): retried the same, and `foreign` rather than dead once the budget
/// is spent, so a shared account fills no dead-letter list.
fn not_found(target: &Target, kind: Option<&str>) -> Handled {
    match (target.transaction_id, kind) {
        (Some(_), _) => Handled::because(
            EventState::Unmatched,
            "no transaction matches the event yet",
        ),
        (None, Some("payment_intent" | "invoice")) => Handled::because(
            EventState::Foreign,
            "not ours: no transaction id of ours and no Stripe id we recorded",
        ),
        (None, _) => Handled {
            when_spent: EventState::Foreign,
            ..Handled::because(
                EventState::Unmatched,
                "no transaction id of ours and no Stripe id we recorded (yet)",
            )
        },
    }
}

/// A payment method (or its customer) we do not know. A PaymentMethod carries no
/// metadata of ours, so nothing says whose it is: ours before payments-api's write is
/// committed, or another integration's on a shared account. It is retried like an
/// unmatched event, and ends `foreign` rather than dead once the budget is spent.
fn not_ours_yet(why: &str) -> Handled {
    Handled {
        when_spent: EventState::Foreign,
        ..Handled::because(EventState::Unmatched, why)
    }
}

/// The transaction, once the event's object is proven to be its own ([`binding`]), with
/// where its row lies (unless an object adopted on the way was recorded on it, which
/// moved the row). Otherwise what to record on the event: flagged (another object:
/// nothing moves) or deferred (nothing recorded yet to compare it with).
async fn bound(
    conn: &mut PgConnection,
    event: &StripeEvent,
    locked: Locked,
    signal: &Signal,
) -> Result<Result<(Transaction, Option<RowAddress>), Handled>, StoreError> {
    let object = StripeObject::new(event.object());
    let Locked {
        transaction: tx,
        stripe_customer: customer,
        address,
    } = locked;
    let refused = |state, why: String| Handled {
        transaction_id: Some(tx.id),
        ..Handled::because(state, why)
    };
    Ok(
        match binding::bind(&tx, object, Some(signal), customer.as_deref()) {
            Binding::Bound => Ok((tx, Some(address))),
            Binding::Adopt => {
                let kind = match object.kind() {
                    Some("invoice") => ObjectKind::Invoice,
                    _ => ObjectKind::PaymentIntent,
                };
                Ok((
                    reconcile::adopt(conn, &tx, kind, event.object()).await?,
                    None,
                ))
            }
            Binding::NotYet(why) => Err(refused(EventState::Deferred, why.to_owned())),
            Binding::Mismatch(why) => {
                tracing::warn!(
                    event_id = %event.id, event_type = %event.event_type, transaction_id = %tx.id,
                    reason = %why, "an event about another object than the transaction's: flagged, nothing applied"
                );
                Err(refused(EventState::Flagged, why))
            }
        },
    )
}

async fn settle_transaction(
    conn: &mut PgConnection,
    event: &StripeEvent,
    tx: &Transaction,
    signal: &Signal,
    context: Context<'_>,
) -> Result<Handled, StoreError> {
    let cause = Cause::StripeEvent(event.id.as_str());
    let outcome = settle::apply(conn, tx, signal, cause, context).await?;
    let handled = match outcome {
        Outcome::Applied(updated) => Handled {
            transition: Some((tx.status, updated.status)),
            ..Handled::new(EventState::Applied)
        },
        Outcome::Stale => Handled::new(EventState::Stale),
        Outcome::Deferred(why) => Handled::because(EventState::Deferred, why),
        Outcome::Flagged(why) => Handled::because(EventState::Flagged, why),
    };
    Ok(Handled {
        transaction_id: Some(tx.id),
        ..handled
    })
}

async fn attach(conn: &mut PgConnection, card: &CardDetails) -> Result<Handled, StoreError> {
    let user = match &card.customer {
        Some(customer) => store::user_for_customer(conn, customer).await?,
        None => None,
    };
    // The customer row may not be committed yet (payments-api creates it around the
    // same time), so this is retried like any unmatched event.
    let Some(user) = user else {
        return Ok(not_ours_yet(
            "no user for the payment method's customer yet",
        ));
    };
    match store::upsert_payment_method(conn, &user, card).await? {
        Upserted::Recorded(_) => Ok(Handled::new(EventState::Applied)),
        Upserted::OwnedByAnotherUser => Ok(Handled::because(
            EventState::Flagged,
            "the payment method is recorded for another user",
        )),
    }
}
