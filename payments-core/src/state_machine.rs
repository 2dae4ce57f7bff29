//! The transaction state machine: a pure function from (kind, current state, signal)
//! to a decision. Every writer — the webhook ingestor, reconciliation, the request
//! path — goes through it, so a rule lives in exactly one place.
//!
//! Rules: settled states never regress (a late `payment_failed` or `canceled` after
//! SUCCEEDED changes nothing); REFUNDED only follows SUCCEEDED, and goes back to it
//! only when a refund fails; FAILED may still become SUCCEEDED when the customer
//! retries the same PaymentIntent with another card. A signal that cannot apply *yet*
//! (a refund or dispute before the success it implies) is deferred, never dropped.
//!
//! Refunds and disputes move money per Stripe object, keyed by its id: a refund is
//! debited once and, if it fails, given back once; a dispute's funds are withdrawn once
//! and reinstated once. What the ledger already holds ([`Moved`]) is part of the input,
//! so any order of delivery, with duplicates, ends in the same wallet.
//!
//! [`transitions`] lists every status change `decide` can make; the database refuses
//! any other (a trigger written from this list, tied to it by a test).
//!
//! - this file: [`Signal`], [`Effect`], [`decide`] and the payment rules.
//! - `state_machine_money.rs`: refunds and disputes against what the ledger holds.
//! - `state_machine_transitions.rs`: [`transitions`], derived by running `decide`.

use std::collections::BTreeMap;

use crate::transaction::{TransactionKind as Kind, TransactionStatus as Status};

/// What Stripe (or a request to Stripe) told us about the object behind a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The payment is being processed (`payment_intent.processing`, or a PaymentIntent
    /// accepted by Stripe whose outcome the webhook will tell).
    Processing,
    /// The customer must authenticate (3DS).
    RequiresAction,
    /// Money moved: `payment_intent.succeeded`, `invoice.paid`, `invoice.payment_succeeded`.
    Succeeded,
    /// A manual-capture hold was placed (`payment_intent.amount_capturable_updated`).
    Authorized,
    /// `payment_intent.payment_failed` / `invoice.payment_failed`.
    Failed { code: String, message: String },
    /// `payment_intent.canceled` / `invoice.voided`.
    Canceled,
    /// Refunds of the payment's charge: one from a `refund.*` event, those a
    /// `charge.refunded` lists (older API versions), with that charge's net
    /// `amount_refunded` (which a refund not known by id yet may explain).
    Refunded {
        refunds: Vec<Refund>,
        amount_refunded: Option<i64>,
    },
    /// A dispute's money as Stripe moved it: funds withdrawn (`funds_withdrawn`, a
    /// withdrawal in `balance_transactions`, a closed chargeback) and reinstated
    /// (`funds_reinstated`, a reversal, `won`). An inquiry moves neither.
    Dispute {
        dispute_id: String,
        amount: i64,
        withdrawn: bool,
        reinstated: bool,
    },
}

/// One refund as Stripe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    /// `failed` or `canceled`: the money went back to the account.
    pub failed: bool,
}

/// A movement or follow-up that a transition commits together with the new status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Credit the transaction's amount to the wallet (once: unique per transaction).
    CreditWallet,
    /// A real top-up ends a running trial.
    EndTrial,
    /// Mark the card validated (creating its row if the attach event has not arrived).
    MarkCardValidated,
    /// Grant the trial if the validation came from StartTrial (once per card fingerprint).
    GrantTrialIfRequested,
    /// Release the validation hold by cancelling the PaymentIntent, through the outbox;
    /// once per [`Release`].
    ReleaseHold(Release),
    /// Void (a draft: delete) the invoice of a coupon attempt that failed or was
    /// canceled, through the outbox, so nothing is left open that could still be paid.
    VoidInvoice,
    /// Debit a refund (keyed by refund id).
    DebitRefund { refund_id: String, amount: i64 },
    /// Give a failed refund's amount back (keyed by refund id).
    ReverseRefund { refund_id: String, amount: i64 },
    /// Debit a dispute's withdrawn funds (keyed by dispute id).
    DebitDispute { dispute_id: String, amount: i64 },
    /// Give a dispute's reinstated funds back (keyed by dispute id).
    ReverseDispute { dispute_id: String, amount: i64 },
}

/// What a card validation's hold release follows. A validation may be settled by a
/// success seen before its hold (a `succeeded` read or delivered first), and the hold
/// may still become capturable after that: each of the two releases once, so the
/// PaymentIntent ends canceled whichever path settled the validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The hold was seen capturable (`Authorized`).
    Hold,
    /// The validation was settled by a success.
    Success,
}

/// The part of a transaction the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current<'a> {
    pub kind: Kind,
    pub status: Status,
    pub amount: i64,
    pub amount_refunded: i64,
    /// The transaction's refund and dispute movements already in the ledger.
    pub moved: &'a Moved,
    /// The recorded failure's code (FAILED): one Stripe did not explain
    /// ([`UNEXPLAINED_FAILURE`], or none) gives way to the payment's real reason.
    pub failure_code: Option<&'a str>,
}

/// The code of a failure Stripe did not explain: `invoice.payment_failed` carries no
/// payment error (its invoice's `last_finalization_error` is empty for a declined
/// card), so the failure it reports says only that the payment failed. The real reason,
/// read later from the invoice's payment or given by our own request's answer, replaces
/// it; a failure that was explained is never replaced.
pub const UNEXPLAINED_FAILURE: &str = "payment_failed";

/// A transaction's refund and dispute movements, by movement key (the Stripe id;
/// refunds recorded before refunds were keyed by id carry their cumulative amount).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub refunds: BTreeMap<String, Step>,
    pub disputes: BTreeMap<String, Step>,
}

/// What the ledger holds for one refund or dispute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// The amount debited (positive).
    pub debited: i64,
    /// Whether it was given back.
    pub reversed: bool,
}

impl Moved {
    /// Nothing moved yet.
    pub const NOTHING: Moved = Moved {
        refunds: BTreeMap::new(),
        disputes: BTreeMap::new(),
    };

    /// Everything debited, given back or not: what the refunds Stripe counted in a
    /// charge's `amount_refunded` can at most add up to.
    fn refunds_ever_debited(&self) -> i64 {
        self.refunds.values().map(|s| s.debited).sum()
    }

    /// What the disputes hold now (debited and not given back).
    fn disputes_held(&self) -> i64 {
        self.disputes
            .values()
            .filter(|s| !s.reversed)
            .map(|s| s.debited)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// May equal the current status (a partial refund, a dispute).
    pub to: Status,
    pub amount_refunded: i64,
    pub failure: Option<(String, String)>,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Apply(Transition),
    /// Valid but late or duplicate: record it, change nothing.
    Stale,
    /// Cannot apply yet (it presupposes a state we have not seen): keep and retry.
    Defer(&'static str),
    /// Does not make sense for this transaction: record and flag.
    Invalid(&'static str),
}

pub fn decide(current: Current, signal: &Signal) -> Decision {
    use Status::*;
    match signal {
        Signal::Processing => match current.status {
            Created | RequiresAction => current.to(Pending, vec![]),
            _ => Decision::Stale,
        },
        Signal::RequiresAction => match current.status {
            Created | Pending => current.to(RequiresAction, vec![]),
            _ => Decision::Stale,
        },
        Signal::Succeeded | Signal::Authorized => success(current, signal),
        Signal::Failed { code, message } => failure(current, code, message),
        Signal::Canceled if current.cancel_applies() => {
            current.to(Canceled, current.leftover_invoice())
        }
        Signal::Canceled => Decision::Stale,
        Signal::Refunded {
            refunds,
            amount_refunded,
        } => money::refund(current, refunds, *amount_refunded),
        Signal::Dispute {
            dispute_id,
            amount,
            withdrawn,
            reinstated,
        } => money::dispute(current, dispute_id, *amount, (*withdrawn, *reinstated)),
    }
}

impl Current<'_> {
    /// Unsettled, or FAILED (the customer may retry the same PaymentIntent).
    fn may_still_succeed(self) -> bool {
        !self.status.is_settled() || self.status == Status::Failed
    }

    /// Whether a cancel at Stripe changes the transaction: not a FAILED coupon, whose
    /// invoice is voided by our own outbox (the failure queued it): it stays FAILED with
    /// its reason, rather than turning CANCELED under a watcher's eyes.
    fn cancel_applies(self) -> bool {
        self.may_still_succeed() && !(self.kind == Kind::Coupon && self.status == Status::Failed)
    }

    /// A coupon attempt that ends without success leaves no invoice to pay.
    fn leftover_invoice(self) -> Vec<Effect> {
        match self.kind {
            Kind::Coupon => vec![Effect::VoidInvoice],
            _ => vec![],
        }
    }

    /// A move to `status` with `effects`, keeping the refunded amount.
    fn to(self, status: Status, effects: Vec<Effect>) -> Decision {
        Decision::Apply(Transition {
            to: status,
            amount_refunded: self.amount_refunded,
            failure: None,
            effects,
        })
    }
}

/// A payment failed: an unsettled transaction fails; a FAILED one whose failure was
/// not explained learns the real reason (nothing else changes); anything else is stale.
fn failure(current: Current, code: &str, message: &str) -> Decision {
    let failed = |effects| {
        Decision::Apply(Transition {
            to: Status::Failed,
            amount_refunded: current.amount_refunded,
            failure: Some((code.to_owned(), message.to_owned())),
            effects,
        })
    };
    if !current.status.is_settled() {
        return failed(current.leftover_invoice());
    }
    let explains = code != UNEXPLAINED_FAILURE;
    let unexplained = current
        .failure_code
        .is_none_or(|c| c == UNEXPLAINED_FAILURE);
    match current.status == Status::Failed && unexplained && explains {
        true => failed(vec![]),
        false => Decision::Stale,
    }
}

/// Money moved (`Succeeded`) or a hold was placed (`Authorized`): what that means
/// depends on what the transaction is for.
fn success(current: Current, signal: &Signal) -> Decision {
    if current.kind == Kind::CardValidation
        && current.status == Status::Succeeded
        && *signal == Signal::Authorized
    {
        // A hold that became capturable after the validation succeeded: release it.
        return current.to(Status::Succeeded, vec![Effect::ReleaseHold(Release::Hold)]);
    }
    if !current.may_still_succeed() {
        return Decision::Stale;
    }
    let succeeded = |effects| current.to(Status::Succeeded, effects);
    match (current.kind, signal) {
        (Kind::Payment, Signal::Succeeded) => {
            succeeded(vec![Effect::CreditWallet, Effect::EndTrial])
        }
        // Automatic capture: a hold on a top-up is only a step towards success.
        (Kind::Payment, _) => Decision::Stale,
        (Kind::Coupon, Signal::Succeeded) => succeeded(vec![Effect::CreditWallet]),
        (Kind::Coupon, _) => Decision::Invalid("a coupon invoice has no authorization"),
        (Kind::CardValidation, Signal::Authorized) => succeeded(vec![
            Effect::MarkCardValidated,
            Effect::GrantTrialIfRequested,
            Effect::ReleaseHold(Release::Hold),
        ]),
        // The card is proven. If a hold stands behind the success (or appears later,
        // below), it is released all the same.
        (Kind::CardValidation, _) => succeeded(vec![
            Effect::MarkCardValidated,
            Effect::GrantTrialIfRequested,
            Effect::ReleaseHold(Release::Success),
        ]),
    }
}

#[path = "state_machine_money.rs"]
mod money;
#[path = "state_machine_transitions.rs"]
mod transitions;

pub use transitions::transitions;

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;
