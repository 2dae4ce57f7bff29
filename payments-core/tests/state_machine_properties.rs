//! Property: whatever order Stripe delivers a flow's events in, with duplicates, the
//! transaction ends in the same state, with the same money moved, as when they arrive
//! in order. Deferred signals are retried after the others, as the ingestor's worker does.

use payments_core::{
    Current, Decision, Effect, Signal, TransactionKind as Kind, TransactionStatus as Status, decide,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

const AMOUNT: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct End {
    status: Status,
    amount_refunded: i64,
    /// Net wallet movement from the effects.
    moved: i64,
}

fn run(kind: Kind, signals: &[Signal]) -> End {
    let mut now = Current {
        kind,
        status: Status::Created,
        amount: AMOUNT,
        amount_refunded: 0,
    };
    let mut moved = 0;
    let mut queue: std::collections::VecDeque<Signal> = signals.iter().cloned().collect();
    let mut dispute_keys = std::collections::HashSet::new();
    let mut stalled = 0;
    while let Some(signal) = queue.pop_front() {
        match decide(now, &signal) {
            Decision::Apply(t) => {
                stalled = 0;
                for effect in &t.effects {
                    moved += match effect {
                        Effect::CreditWallet => AMOUNT,
                        Effect::DebitRefund { delta, .. } => -delta,
                        // Keyed by dispute id in the ledger: once each.
                        Effect::DebitDispute { dispute_id, amount }
                            if dispute_keys.insert(("debit", dispute_id.clone())) =>
                        {
                            -amount
                        }
                        Effect::ReverseDispute { dispute_id, amount }
                            if dispute_keys.insert(("reverse", dispute_id.clone())) =>
                        {
                            *amount
                        }
                        _ => 0,
                    };
                }
                now.status = t.to;
                now.amount_refunded = t.amount_refunded;
            }
            Decision::Stale | Decision::Invalid(_) => stalled = 0,
            Decision::Defer(_) => {
                stalled += 1;
                assert!(
                    stalled <= queue.len() + 1,
                    "deferred forever: {signal:?} in {now:?}"
                );
                queue.push_back(signal);
            }
        }
    }
    End {
        status: now.status,
        amount_refunded: now.amount_refunded,
        moved,
    }
}

/// A realistic flow of one transaction, in Stripe's order.
fn flow(rng: &mut StdRng, kind: Kind) -> Vec<Signal> {
    let mut s = Vec::new();
    if rng.random_bool(0.5) {
        s.push(Signal::RequiresAction);
    }
    if rng.random_bool(0.3) {
        s.push(Signal::Processing);
    }
    let failed = Signal::Failed {
        code: "card_declined".into(),
        message: "declined".into(),
    };
    match (kind, rng.random_range(0..4)) {
        (_, 0) => s.push(failed),
        (_, 1) => s.push(Signal::Canceled),
        (Kind::CardValidation, _) => {
            if rng.random_bool(0.3) {
                s.push(failed);
            }
            s.push(Signal::Authorized);
        }
        (Kind::Coupon, _) => s.push(Signal::Succeeded),
        (Kind::Payment, _) => {
            if rng.random_bool(0.3) {
                s.push(failed); // the customer retried the same PaymentIntent with another card
            }
            s.push(Signal::Succeeded);
            let mut refunded = 0;
            while refunded < AMOUNT && rng.random_bool(0.4) {
                refunded = (refunded + rng.random_range(1..=AMOUNT)).min(AMOUNT);
                s.push(Signal::Refunded {
                    amount_refunded: refunded,
                });
            }
            if rng.random_bool(0.3) {
                let amount = rng.random_range(1..=AMOUNT);
                s.push(Signal::DisputeOpened {
                    dispute_id: "dp_1".into(),
                    amount,
                });
                s.push(Signal::DisputeClosed {
                    dispute_id: "dp_1".into(),
                    amount,
                    won: rng.random_bool(0.5),
                });
            }
        }
    }
    s
}

#[test]
fn any_order_with_duplicates_ends_where_the_ordered_flow_ends() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for case in 0..20_000 {
        let kind = [Kind::Payment, Kind::Coupon, Kind::CardValidation][case % 3];
        let ordered = flow(&mut rng, kind);
        let expected = run(kind, &ordered);
        let mut delivered = ordered.clone();
        for _ in 0..rng.random_range(0..=ordered.len()) {
            let dup = delivered[rng.random_range(0..delivered.len())].clone();
            delivered.push(dup);
        }
        delivered.shuffle(&mut rng);
        assert_eq!(
            run(kind, &delivered),
            expected,
            "{kind}: ordered {ordered:?}, delivered {delivered:?}"
        );
    }
}

#[test]
fn the_ordered_flows_move_the_money_the_rules_say() {
    let won = Signal::DisputeClosed {
        dispute_id: "dp".into(),
        amount: 400,
        won: true,
    };
    let end = run(
        Kind::Payment,
        &[
            Signal::Succeeded,
            Signal::Refunded {
                amount_refunded: 300,
            },
            Signal::DisputeOpened {
                dispute_id: "dp".into(),
                amount: 400,
            },
            won,
        ],
    );
    assert_eq!(
        end,
        End {
            status: Status::Succeeded,
            amount_refunded: 300,
            moved: 700
        }
    );
    let failed = Signal::Failed {
        code: "x".into(),
        message: "y".into(),
    };
    assert_eq!(run(Kind::Payment, std::slice::from_ref(&failed)).moved, 0);
    assert_eq!(
        run(Kind::Payment, &[failed, Signal::Succeeded]).moved,
        AMOUNT
    );
}
