//! Applying a signal to a transaction: the one path through which every writer —
//! the ingestor, reconciliation, the request path — changes a transaction's state
//! and moves money. The caller opens the database transaction and locks the row
//! (`store::lock_transaction` / `lock_by_target`); this commits nothing itself, so the
//! status, the audit trail, the ledger, the outbox and the doorbell (a trigger on the
//! row) all land in the caller's single commit.

use sqlx::PgConnection;

use crate::{
    Current, Decision, Effect, Money, Moved, Release, Signal, Transaction, TransactionKind,
    TransactionStatus, Transition, decide,
    store::{
        self, Movement, MovementKind, OutboxKind, RowAddress, StatusChange, StoreError, TrialState,
    },
};

/// Why a transition happened, recorded in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause<'a> {
    /// A Stripe event (webhook, catch-up or replay), by id.
    StripeEvent(&'a str),
    /// Stripe's synchronous answer to our own request.
    Request,
    /// We read the object back from Stripe: the reconciliation sweeper, an operator's
    /// reconciliation, or the outbox reading an invoice's payment before voiding it.
    Reconciliation,
}

impl<'a> Cause<'a> {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Cause::StripeEvent(_) => "stripe_event",
            Cause::Request => "request",
            Cause::Reconciliation => "reconciliation",
        }
    }

    fn event_id(self) -> Option<&'a str> {
        match self {
            Cause::StripeEvent(id) => Some(id),
            _ => None,
        }
    }
}

/// What the object behind the signal said besides the signal itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The object's currency, if it names one.
    pub currency: Option<&'a str>,
    /// The charge behind a successful PaymentIntent.
    pub charge: Option<&'a str>,
    /// Where the transaction's row lay when the caller locked it, if it knows, for the
    /// status change to go straight to it.
    pub address: Option<&'a RowAddress>,
}

// One outcome per applied signal, returned and consumed at once: boxing the row
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The transaction changed (or money moved); the new row.
    Applied(Transaction),
    Stale,
    Deferred(&'static str),
    /// Recorded for an operator: invalid for this transaction, or a currency mismatch.
    Flagged(String),
}

/// Decides and writes. `tx` must be locked by the caller in the same database transaction.
pub async fn apply(
    conn: &mut PgConnection,
    tx: &Transaction,
    signal: &Signal,
    cause: Cause<'_>,
    context: Context<'_>,
) -> Result<Outcome, StoreError> {
    if let Some(why) = currency_mismatch(tx, context) {
        store::flag_transaction(conn, tx.id, &why).await?;
        return Ok(Outcome::Flagged(why));
    }
    // Refunds and disputes are decided with what the ledger already holds of them.
    let moved = match signal {
        Signal::Refunded { .. } | Signal::Dispute { .. } => store::moved(conn, tx.id).await?,
        _ => Moved::default(),
    };
    let current = Current {
        kind: tx.kind,
        status: tx.status,
        amount: tx.amount.minor(),
        amount_refunded: tx.amount_refunded,
        moved: &moved,
        failure_code: tx.failure_code.as_deref(),
    };
    match decide(current, signal) {
        Decision::Apply(transition) => {
            if transition.to == TransactionStatus::Succeeded
                && tx.status != TransactionStatus::Succeeded
                && tx.kind == TransactionKind::Coupon
                && let Some(flag) = make_way_for_late_coupon(conn, tx, cause).await?
            {
                store::flag_transaction(conn, tx.id, &flag).await?;
                return Ok(Outcome::Flagged(flag));
            }
            write(conn, tx, &transition, cause, context).await
        }
        Decision::Stale => Ok(Outcome::Stale),
        Decision::Defer(why) => Ok(Outcome::Deferred(why)),
        Decision::Invalid(why) => Ok(Outcome::Flagged(why.to_owned())),
    }
}

/// A coupon attempt Stripe paid after all, when the user already retried it: the
/// paid one is credited and a retry still unsettled is canceled (its invoice voided
/// through the outbox), so one redemption per coupon holds. If the retry already
/// succeeded too, the late one is not credited: the reason to flag it for an operator.
async fn make_way_for_late_coupon(
    conn: &mut PgConnection,
    tx: &Transaction,
    cause: Cause<'_>,
) -> Result<Option<String>, StoreError> {
    let Some(sibling) = store::lock_live_coupon_sibling(conn, tx).await? else {
        return Ok(None);
    };
    if sibling.status.is_settled() {
        return Ok(Some(format!(
            "coupon paid after the user's retry {} already redeemed it: not credited twice",
            sibling.id
        )));
    }
    let current = Current {
        kind: sibling.kind,
        status: sibling.status,
        amount: sibling.amount.minor(),
        amount_refunded: sibling.amount_refunded,
        moved: &Moved::default(),
        failure_code: sibling.failure_code.as_deref(),
    };
    match decide(current, &Signal::Canceled) {
        Decision::Apply(cancel) => {
            Box::pin(write(conn, &sibling, &cancel, cause, Context::default())).await?;
            Ok(None)
        }
        _ => Ok(Some(format!(
            "coupon paid after the user's retry {}, which cannot be canceled",
            sibling.id
        ))),
    }
}

/// Why the object's money cannot be taken at face value, if it names another currency.
fn currency_mismatch(tx: &Transaction, context: Context<'_>) -> Option<String> {
    let currency = context.currency?;
    let theirs = !currency.eq_ignore_ascii_case(tx.currency().as_str());
    theirs.then(|| {
        format!(
            "currency mismatch: Stripe says {currency}, transaction is {}",
            tx.currency()
        )
    })
}

/// Writes a decided transition: the status with its audit entry, then each effect.
/// An effect that cannot be done as the rules want flags the transaction; the rest
/// still commits.
async fn write(
    conn: &mut PgConnection,
    tx: &Transaction,
    transition: &Transition,
    cause: Cause<'_>,
    context: Context<'_>,
) -> Result<Outcome, StoreError> {
    if let [Effect::ReleaseHold(after)] = transition.effects.as_slice()
        && transition.to == tx.status
    {
        // A hold seen after the validation succeeded: no status change to record,
        // only the release; a repeat of it is stale.
        return match release_hold(conn, tx, *after).await? {
            Ok(true) => Ok(Outcome::Applied(tx.clone())),
            Ok(false) => Ok(Outcome::Stale),
            Err(flag) => {
                store::flag_transaction(conn, tx.id, &flag).await?;
                Ok(Outcome::Flagged(flag))
            }
        };
    }
    let event_id = cause.event_id();
    let change = StatusChange {
        to: transition.to,
        amount_refunded: transition.amount_refunded,
        failure: transition
            .failure
            .as_ref()
            .map(|(code, message)| (code.as_str(), message.as_str())),
        charge: context
            .charge
            .filter(|_| transition.to == TransactionStatus::Succeeded),
        cause: cause.label(),
        stripe_event_id: event_id,
    };
    let mut updated = store::change_status(conn, tx, context.address, &change).await?;
    let mut flagged = false;
    let mut wallet = WalletRead::default();
    for effect in &transition.effects {
        if let Some(flag) = run_effect(conn, tx, effect, event_id, &mut wallet).await? {
            store::flag_transaction(conn, tx.id, &flag).await?;
            flagged = true;
        }
    }
    if flagged {
        updated = store::get_transaction(conn, tx.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("transaction {} vanished", tx.id)))?;
    }
    Ok(Outcome::Applied(updated))
}

/// What an effect read of the user's wallet, for the effects after it in the same
/// transition. A trial granted by another database transaction after that read is not
/// ended by this one, exactly as when it commits after the ending statement would run.
#[derive(Debug, Clone, Copy, Default)]
struct WalletRead {
    /// The trial state, once an effect has read it.
    trial: Option<TrialState>,
}

/// A ledger movement of `tx`, caused by `event_id` if an event.
fn movement<'a>(
    tx: &'a Transaction,
    kind: MovementKind,
    key: &'a str,
    money: Money,
    event_id: Option<&'a str>,
) -> Movement<'a> {
    Movement {
        user_id: &tx.user_id,
        transaction_id: tx.id,
        kind,
        key,
        money,
        stripe_event_id: event_id,
    }
}

/// `minor` units of the transaction's currency, for an amount the state machine has
/// already checked to be positive.
fn money_of(tx: &Transaction, minor: i64) -> Result<Money, StoreError> {
    Money::new(minor, tx.currency())
        .map_err(|e| StoreError::Corrupt(format!("transaction {}: {e}", tx.id)))
}

/// Runs one effect; returns a reason to flag the transaction if it could not be done
/// as the rules want (the rest of the transition still commits).
async fn run_effect(
    conn: &mut PgConnection,
    tx: &Transaction,
    effect: &Effect,
    event_id: Option<&str>,
    wallet: &mut WalletRead,
) -> Result<Option<String>, StoreError> {
    match effect {
        Effect::CreditWallet => return credit_wallet(conn, tx, event_id, wallet).await,
        // The credit before it read the wallet: a trial that is not running needs no
        // statement of its own.
        Effect::EndTrial => {
            if wallet.trial.is_none_or(|trial| trial == TrialState::Active) {
                store::end_trial(conn, &tx.user_id).await?;
            }
        }
        Effect::MarkCardValidated => {
            let Some(pm) = &tx.payment_method_id else {
                return Ok(Some(
                    "validated, but the transaction names no payment method".into(),
                ));
            };
            store::mark_validated(conn, &tx.user_id, pm, tx.card_fingerprint.as_deref()).await?;
        }
        Effect::GrantTrialIfRequested => return grant_trial(conn, tx, event_id).await,
        Effect::ReleaseHold(after) => {
            if let Err(flag) = release_hold(conn, tx, *after).await? {
                return Ok(Some(flag));
            }
        }
        Effect::VoidInvoice => {
            // No invoice recorded: the attempt never got one to leave behind.
            if let Some(invoice) = &tx.stripe_invoice_id {
                let key = format!("void-invoice-{}", tx.id);
                store::enqueue(conn, OutboxKind::VoidInvoice, tx.id, invoice, &key).await?;
            }
        }
        Effect::DebitRefund { refund_id, amount } => {
            let m = (MovementKind::RefundDebit, refund_id.as_str(), *amount);
            record_keyed(conn, tx, m, event_id).await?;
        }
        Effect::ReverseRefund { refund_id, amount } => {
            let m = (MovementKind::RefundReversal, refund_id.as_str(), *amount);
            record_keyed(conn, tx, m, event_id).await?;
        }
        Effect::DebitDispute { dispute_id, amount } => {
            let m = (MovementKind::DisputeDebit, dispute_id.as_str(), *amount);
            record_keyed(conn, tx, m, event_id).await?;
        }
        Effect::ReverseDispute { dispute_id, amount } => {
            let m = (MovementKind::DisputeReversal, dispute_id.as_str(), *amount);
            record_keyed(conn, tx, m, event_id).await?;
        }
    }
    Ok(None)
}

/// Enqueues the cancellation that releases a card validation's hold, once per
/// [`Release`]: whether it was newly enqueued, or why it cannot be.
async fn release_hold(
    conn: &mut PgConnection,
    tx: &Transaction,
    after: Release,
) -> Result<Result<bool, String>, StoreError> {
    let Some(pi) = &tx.stripe_payment_intent_id else {
        return Ok(Err("no PaymentIntent recorded to release".into()));
    };
    let key = match after {
        Release::Hold => format!("release-hold-{}", tx.id),
        Release::Success => format!("release-hold-{}-after-success", tx.id),
    };
    let enqueued = store::enqueue(conn, OutboxKind::CancelPaymentIntent, tx.id, pi, &key).await?;
    Ok(Ok(enqueued))
}

/// The ledger movement that credits a transaction of `kind`.
pub(crate) fn credit_kind(kind: TransactionKind) -> MovementKind {
    match kind {
        TransactionKind::Coupon => MovementKind::CouponCredit,
        _ => MovementKind::PaymentCredit,
    }
}

/// Credits the transaction's amount, unless the wallet is in another currency. The
/// wallet is read and credited in one statement (the user's first credit makes it);
/// what it read of the trial is kept in `wallet`.
async fn credit_wallet(
    conn: &mut PgConnection,
    tx: &Transaction,
    event_id: Option<&str>,
    wallet: &mut WalletRead,
) -> Result<Option<String>, StoreError> {
    let credit = movement(tx, credit_kind(tx.kind), "", tx.amount, event_id);
    let (currency, trial) = match store::record_movement_in_wallet(conn, &credit).await? {
        Some(read) => read,
        // The user's first money: the wallet is made in the payment's currency (or found
        // made meanwhile, in whichever), then credited the same way.
        None => {
            store::ensure_wallet(conn, &tx.user_id, tx.currency()).await?;
            store::record_movement_in_wallet(conn, &credit)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("wallet of {} made but not read", tx.user_id))
                })?
        }
    };
    wallet.trial = Some(trial);
    if currency != tx.currency() {
        return Ok(Some(format!(
            "not credited: wallet is in {currency}, payment in {}",
            tx.currency()
        )));
    }
    Ok(None)
}

/// Records a refund's or dispute's movement `(kind, Stripe id, amount)` in the
/// transaction's currency; the wallet is made if missing.
async fn record_keyed(
    conn: &mut PgConnection,
    tx: &Transaction,
    (kind, key, amount): (MovementKind, &str, i64),
    event_id: Option<&str>,
) -> Result<(), StoreError> {
    let money = money_of(tx, amount)?;
    store::ensure_wallet(conn, &tx.user_id, tx.currency()).await?;
    store::record_movement(conn, &movement(tx, kind, key, money, event_id)).await?;
    Ok(())
}

async fn grant_trial(
    conn: &mut PgConnection,
    tx: &Transaction,
    event_id: Option<&str>,
) -> Result<Option<String>, StoreError> {
    use sqlx::Connection;

    let Some(credit) = tx.trial_credit else {
        return Ok(None);
    };
    let Some(fingerprint) = tx.card_fingerprint.as_deref().filter(|f| !f.is_empty()) else {
        return Ok(Some("trial not granted: card fingerprint unknown".into()));
    };
    let wallet = store::ensure_wallet(conn, &tx.user_id, tx.currency()).await?;
    if wallet.currency != credit.currency() {
        return Ok(Some(format!(
            "trial not granted: wallet is in {}",
            wallet.currency
        )));
    }
    // Card claim, trial start and credit stand or fall together (a savepoint).
    let mut savepoint = conn.begin().await?;
    if !store::claim_trial_for_card(&mut savepoint, fingerprint, &tx.user_id, tx.id).await? {
        savepoint.rollback().await?;
        return Ok(Some(
            "trial not granted: this card already started a trial".into(),
        ));
    }
    if !store::start_trial(&mut savepoint, &tx.user_id, credit.minor()).await? {
        savepoint.rollback().await?;
        return Ok(Some(
            "trial not granted: the wallet already had a trial".into(),
        ));
    }
    let grant = movement(tx, MovementKind::TrialGrant, "", credit, event_id);
    store::record_movement(&mut savepoint, &grant).await?;
    savepoint.commit().await?;
    Ok(None)
}
