//! Property: whatever order Stripe delivers a flow's events in, with duplicates, the
//! transaction ends in the same state, with the same money moved, as when they arrive
//! in order. Deferred signals are retried after the others, as the ingestor's worker does.

use payments_core::{
    Current, Decision, Effect, Moved, Refund, Signal, TransactionKind as Kind,
    TransactionStatus as Status, decide,
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
    let (mut status, mut amount_refunded) = (Status::Created, 0);
    // The ledger's refund and dispute movements, as settle reads them back.
    let mut ledger = Moved::default();
    let mut moved = 0;
    let mut queue: std::collections::VecDeque<Signal> = signals.iter().cloned().collect();
    let mut stalled = 0;
    while let Some(signal) = queue.pop_front() {
        let now = Current {
            kind,
            status,
            amount: AMOUNT,
            amount_refunded,
            moved: &ledger,
            failure_code: None,
        };
        match decide(now, &signal) {
            Decision::Apply(t) => {
                stalled = 0;
                for effect in &t.effects {
                    moved += match effect {
                        Effect::CreditWallet => AMOUNT,
                        Effect::DebitRefund { refund_id, amount } => {
                            ledger.refunds.entry(refund_id.clone()).or_default().debited = *amount;
                            -amount
                        }
                        Effect::ReverseRefund { refund_id, amount } => {
                            ledger
                                .refunds
                                .entry(refund_id.clone())
                                .or_default()
                                .reversed = true;
                            *amount
                        }
                        Effect::DebitDispute { dispute_id, amount } => {
                            ledger
                                .disputes
                                .entry(dispute_id.clone())
                                .or_default()
                                .debited = *amount;
                            -amount
                        }
                        Effect::ReverseDispute { dispute_id, amount } => {
                            ledger
                                .disputes
                                .entry(dispute_id.clone())
                                .or_default()
                                .reversed = true;
                            *amount
                        }
                        _ => 0,
                    };
                }
                status = t.to;
                amount_refunded = t.amount_refunded;
            }
            Decision::Stale | Decision::Invalid(_) => stalled = 0,
            Decision::Defer(_) => {
                stalled += 1;
                assert!(
                    stalled <= queue.len() + 1,
                    "deferred forever: {signal:?} in {status}"
                );
                queue.push_back(signal);
            }
        }
    }
    End {
        status,
        amount_refunded,
        moved,
    }
}

fn refund(id: &str, amount: i64, failed: bool) -> Signal {
    Signal::Refunded {
        refunds: vec![Refund {
            id: id.into(),
            amount,
            failed,
        }],
        amount_refunded: None,
    }
}

fn dispute(amount: i64, withdrawn: bool, reinstated: bool) -> Signal {
    Signal::Dispute {
        dispute_id: "dp_1".into(),
        amount,
        withdrawn,
        reinstated,
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
            // Refunds, one of which may fail after it was reported.
            let mut refunded = 0;
            let mut n = 0;
            while refunded < AMOUNT && rng.random_bool(0.4) {
                let amount = rng.random_range(1..=AMOUNT - refunded);
                let id = format!("re_{n}");
                n += 1;
                s.push(refund(&id, amount, false));
                if rng.random_bool(0.3) {
                    s.push(refund(&id, amount, true));
                } else {
                    refunded += amount;
                }
                // charge.refunded: the net so far, explained by the refunds above.
                s.push(Signal::Refunded {
                    refunds: vec![],
                    amount_refunded: Some(refunded),
                });
            }
            // A dispute: an inquiry moves nothing; a chargeback withdraws, and may be won.
            if rng.random_bool(0.3) {
                let amount = rng.random_range(1..=AMOUNT);
                s.push(dispute(amount, false, false));
                s.push(dispute(amount, true, false));
                if rng.random_bool(0.5) {
                    s.push(dispute(amount, true, true));
                }
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
    let end = run(
        Kind::Payment,
        &[
            Signal::Succeeded,
            refund("re_1", 300, false),
            refund("re_2", 200, false),
            refund("re_2", 200, true),
            dispute(400, false, false),
            dispute(400, true, false),
            dispute(400, true, true),
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
