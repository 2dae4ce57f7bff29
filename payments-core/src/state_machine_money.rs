//! Money after a payment's success: refunds and disputes, each keyed by its Stripe id.
//! A refund is debited once and given back once if it fails; a dispute's funds are
//! debited once when withdrawn and given back once when reinstated. A signal that
//! implies an earlier step (a failed refund, a won dispute) also takes that step, so
//! whichever event comes first the ledger ends the same.

use std::collections::BTreeMap;

use super::{Current, Decision, Effect, Refund, Step, Transition};
use crate::transaction::{TransactionKind as Kind, TransactionStatus as Status};

/// None if money may move after the payment now; else what to do: `canceled` (it
/// never will) or `early` (before the success it implies).
fn after_success(
    current: Current<'_>,
    canceled: &'static str,
    early: &'static str,
) -> Option<Decision> {
    match current.status {
        Status::Succeeded | Status::Refunded => None,
        Status::Canceled => Some(Decision::Invalid(canceled)),
        _ => Some(Decision::Defer(early)),
    }
}

/// Refunds: debits what is new, gives back what failed. `charge_refunded` is a
/// `charge.refunded`'s net amount: more than every refund we know of ever took means
/// a refund we have not seen by id yet, whose own event is awaited.
pub(super) fn refund(
    current: Current<'_>,
    refunds: &[Refund],
    charge_refunded: Option<i64>,
) -> Decision {
    // Releasing a validation hold refunds its uncaptured charge: no money had moved.
    if current.kind == Kind::CardValidation {
        return Decision::Stale;
    }
    if current.kind != Kind::Payment {
        return Decision::Invalid("only a card payment can be refunded");
    }
    let listed_too_much = refunds
        .iter()
        .any(|r| r.amount <= 0 || r.amount > current.amount);
    let charge_too_much = charge_refunded.is_some_and(|c| c < 0 || c > current.amount);
    if listed_too_much || charge_too_much {
        return Decision::Invalid("refunded amount exceeds the payment");
    }
    let not_now = after_success(
        current,
        "a canceled payment has nothing to refund",
        "refund before the payment's success",
    );
    if let Some(not_now) = not_now {
        return not_now;
    }
    let mut steps: BTreeMap<&str, Step> = current
        .moved
        .refunds
        .iter()
        .map(|(k, s)| (k.as_str(), *s))
        .collect();
    let mut net = current.amount_refunded;
    let mut effects = Vec::new();
    for r in refunds {
        let step = steps.entry(r.id.as_str()).or_default();
        let (refund_id, amount) = (r.id.clone(), r.amount);
        if step.debited == 0 {
            step.debited = amount;
            net += amount;
            effects.push(Effect::DebitRefund {
                refund_id: refund_id.clone(),
                amount,
            });
        }
        if r.failed && !step.reversed {
            step.reversed = true;
            net -= step.debited;
            effects.push(Effect::ReverseRefund {
                refund_id,
                amount: step.debited,
            });
        }
    }
    // Only if a refund failed and its failure is still on its way (a refund can be made
    // of what a failed one gave back): that failure's event comes, and this is retried.
    if net > current.amount {
        return Decision::Defer("refunds exceed the payment until a failed refund is seen");
    }
    if effects.is_empty() {
        return match charge_refunded {
            Some(c) if c > current.moved.refunds_ever_debited() => {
                Decision::Defer("a refund not known by its id yet")
            }
            _ => Decision::Stale,
        };
    }
    let to = match net == current.amount {
        true => Status::Refunded,
        false => Status::Succeeded,
    };
    Decision::Apply(Transition {
        to,
        amount_refunded: net,
        failure: None,
        effects,
    })
}

/// A dispute moves money but not the status; `(withdrawn, reinstated)` as Stripe says.
/// Reinstated funds were withdrawn first, so a `won` seen first takes both steps. The
/// disputes of one payment never hold more than it brought.
pub(super) fn dispute(
    current: Current<'_>,
    dispute_id: &str,
    amount: i64,
    (withdrawn, reinstated): (bool, bool),
) -> Decision {
    if current.kind != Kind::Payment {
        return Decision::Invalid("only a card payment can be disputed");
    }
    if amount <= 0 || amount > current.amount {
        return Decision::Invalid("disputed amount outside the payment");
    }
    let not_now = after_success(
        current,
        "a canceled payment cannot be disputed",
        "dispute before the payment's success",
    );
    if let Some(not_now) = not_now {
        return not_now;
    }
    // An inquiry, or a dispute whose funds have not moved (yet).
    if !withdrawn && !reinstated {
        return Decision::Stale;
    }
    let step = current
        .moved
        .disputes
        .get(dispute_id)
        .copied()
        .unwrap_or_default();
    let mut effects = Vec::new();
    let mut held = current.moved.disputes_held();
    if step.debited == 0 {
        held += amount;
        effects.push(Effect::DebitDispute {
            dispute_id: dispute_id.to_owned(),
            amount,
        });
    }
    if reinstated && !step.reversed {
        // Exactly what was debited comes back.
        let debited = match step.debited {
            0 => amount,
            debited => debited,
        };
        held -= debited;
        effects.push(Effect::ReverseDispute {
            dispute_id: dispute_id.to_owned(),
            amount: debited,
        });
    }
    if effects.is_empty() {
        return Decision::Stale;
    }
    if held > current.amount {
        return Decision::Invalid("the payment's disputes would take more than it brought");
    }
    Decision::Apply(Transition {
        to: current.status,
        amount_refunded: current.amount_refunded,
        failure: None,
        effects,
    })
}
