//! The transaction state machine: a pure function from (kind, current state, signal)
//! to a decision. Every writer — the webhook ingestor, reconciliation, the request
//! path — goes through it, so a rule lives in exactly one place.
//!
//! Rules: settled states never regress (a late `payment_failed` or `canceled` after
//! SUCCEEDED changes nothing); REFUNDED only follows SUCCEEDED; FAILED may still become
//! SUCCEEDED when the customer retries the same PaymentIntent with another card. A
//! signal that cannot apply *yet* (a refund or dispute before the success it implies)
//! is deferred, never dropped.

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
    /// `charge.refunded`, with the charge's cumulative `amount_refunded`.
    Refunded { amount_refunded: i64 },
    /// `charge.dispute.created`.
    DisputeOpened { dispute_id: String, amount: i64 },
    /// `charge.dispute.closed`; `won` gives the money back.
    DisputeClosed {
        dispute_id: String,
        amount: i64,
        won: bool,
    },
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
    /// Release the validation hold by cancelling the PaymentIntent, through the outbox.
    ReleaseHold,
    /// Void (a draft: delete) the invoice of a coupon attempt that failed or was
    /// canceled, through the outbox, so nothing is left open that could still be paid.
    VoidInvoice,
    /// Debit the refunded delta; `amount_refunded` (cumulative) keys the movement.
    DebitRefund { delta: i64, amount_refunded: i64 },
    /// Debit a disputed amount (keyed by dispute id).
    DebitDispute { dispute_id: String, amount: i64 },
    /// Give a won dispute's amount back (keyed by dispute id).
    ReverseDispute { dispute_id: String, amount: i64 },
}

/// The part of a transaction the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub kind: Kind,
    pub status: Status,
    pub amount: i64,
    pub amount_refunded: i64,
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
        Signal::Failed { code, message } => {
            if current.status.is_settled() {
                return Decision::Stale;
            }
            Decision::Apply(Transition {
                to: Failed,
                amount_refunded: current.amount_refunded,
                failure: Some((code.clone(), message.clone())),
                effects: current.leftover_invoice(),
            })
        }
        Signal::Canceled if current.may_still_succeed() => {
            current.to(Canceled, current.leftover_invoice())
        }
        Signal::Canceled => Decision::Stale,
        Signal::Refunded { amount_refunded } => refund(current, *amount_refunded),
        Signal::DisputeOpened { dispute_id, amount } => dispute(current, dispute_id, *amount, None),
        Signal::DisputeClosed {
            dispute_id,
            amount,
            won,
        } => dispute(current, dispute_id, *amount, Some(*won)),
    }
}

impl Current {
    /// Unsettled, or FAILED (the customer may retry the same PaymentIntent).
    fn may_still_succeed(self) -> bool {
        !self.status.is_settled() || self.status == Status::Failed
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

/// Money moved (`Succeeded`) or a hold was placed (`Authorized`): what that means
/// depends on what the transaction is for.
fn success(current: Current, signal: &Signal) -> Decision {
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
            Effect::ReleaseHold,
        ]),
        // Captured rather than held: the card is proven; there is no hold to release.
        (Kind::CardValidation, _) => succeeded(vec![
            Effect::MarkCardValidated,
            Effect::GrantTrialIfRequested,
        ]),
    }
}

fn refund(current: Current, amount_refunded: i64) -> Decision {
    // Releasing a validation hold refunds its uncaptured charge: no money had moved.
    if current.kind == Kind::CardValidation {
        return Decision::Stale;
    }
    if current.kind != Kind::Payment {
        return Decision::Invalid("only a card payment can be refunded");
    }
    if amount_refunded > current.amount || amount_refunded < 0 {
        return Decision::Invalid("refunded amount exceeds the payment");
    }
    match current.status {
        Status::Succeeded | Status::Refunded => {}
        Status::Canceled => return Decision::Invalid("a canceled payment has nothing to refund"),
        _ => return Decision::Defer("refund before the payment's success"),
    }
    if amount_refunded <= current.amount_refunded {
        return Decision::Stale;
    }
    let to = if amount_refunded == current.amount {
        Status::Refunded
    } else {
        Status::Succeeded
    };
    Decision::Apply(Transition {
        to,
        amount_refunded,
        failure: None,
        effects: vec![Effect::DebitRefund {
            delta: amount_refunded - current.amount_refunded,
            amount_refunded,
        }],
    })
}

/// A dispute moves money but not the status. A closing event also takes the debit
/// (idempotently), so a lost `created` event can neither mint nor lose money.
fn dispute(current: Current, dispute_id: &str, amount: i64, won: Option<bool>) -> Decision {
    if current.kind != Kind::Payment {
        return Decision::Invalid("only a card payment can be disputed");
    }
    if amount <= 0 || amount > current.amount {
        return Decision::Invalid("disputed amount outside the payment");
    }
    match current.status {
        Status::Succeeded | Status::Refunded => {}
        Status::Canceled => return Decision::Invalid("a canceled payment cannot be disputed"),
        _ => return Decision::Defer("dispute before the payment's success"),
    }
    let dispute_id = dispute_id.to_owned();
    let mut effects = vec![Effect::DebitDispute {
        dispute_id: dispute_id.clone(),
        amount,
    }];
    if won == Some(true) {
        effects.push(Effect::ReverseDispute { dispute_id, amount });
    }
    Decision::Apply(Transition {
        to: current.status,
        amount_refunded: current.amount_refunded,
        failure: None,
        effects,
    })
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;
