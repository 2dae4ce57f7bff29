//! Every status change [`decide`] can make, found by asking it: each kind, in each
//! status, with the amounts and ledger a transaction can hold there, receiving every
//! kind of signal (success, failure, a full and a partial refund, a refund that fails,
//! disputes). The database's transition trigger is written from this list and a test
//! ties the two; the table tests and a random search check that `decide` makes no
//! change outside it.

use std::collections::BTreeSet;

use super::{Current, Decision, Moved, Refund, Signal, Step, decide};
use crate::transaction::{TransactionKind as Kind, TransactionStatus as Status};

const AMOUNT: i64 = 1_000;

/// `(kind, from, to)` for every change of status `decide` makes (`from != to`).
pub fn transitions() -> BTreeSet<(Kind, Status, Status)> {
    let mut found = BTreeSet::new();
    for kind in Kind::ALL {
        for status in Status::ALL {
            for (amount_refunded, moved) in holdings(*status) {
                let current = Current {
                    kind: *kind,
                    status: *status,
                    amount: AMOUNT,
                    amount_refunded,
                    moved: &moved,
                    failure_code: None,
                };
                for signal in signals() {
                    if let Decision::Apply(t) = decide(current, &signal)
                        && t.to != *status
                    {
                        found.insert((*kind, *status, t.to));
                    }
                }
            }
        }
    }
    found
}

/// What a transaction in `status` can have refunded: nothing, half (only SUCCEEDED),
/// everything (only REFUNDED), each by the refund `re_held`.
fn holdings(status: Status) -> Vec<(i64, Moved)> {
    let refunded = |amount| {
        let mut moved = Moved::default();
        moved.refunds.insert(
            "re_held".into(),
            Step {
                debited: amount,
                reversed: false,
            },
        );
        (amount, moved)
    };
    match status {
        Status::Succeeded => vec![(0, Moved::default()), refunded(AMOUNT / 2)],
        Status::Refunded => vec![refunded(AMOUNT)],
        _ => vec![(0, Moved::default())],
    }
}

fn signals() -> Vec<Signal> {
    let refund = |id: &str, amount, failed| Signal::Refunded {
        refunds: vec![Refund {
            id: id.into(),
            amount,
            failed,
        }],
        amount_refunded: None,
    };
    let dispute = |withdrawn, reinstated| Signal::Dispute {
        dispute_id: "dp_1".into(),
        amount: AMOUNT,
        withdrawn,
        reinstated,
    };
    vec![
        Signal::Processing,
        Signal::RequiresAction,
        Signal::Succeeded,
        Signal::Authorized,
        Signal::Failed {
            code: "card_declined".into(),
            message: "declined".into(),
        },
        Signal::Canceled,
        refund("re_new", AMOUNT, false),
        refund("re_new", AMOUNT / 2, false),
        refund("re_held", AMOUNT, true),
        refund("re_held", AMOUNT / 2, true),
        Signal::Refunded {
            refunds: vec![],
            amount_refunded: Some(AMOUNT),
        },
        dispute(false, false),
        dispute(true, false),
        dispute(true, true),
    ]
}
