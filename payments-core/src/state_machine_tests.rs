use std::sync::LazyLock;

use super::*;
use Status::*;

const AMOUNT: i64 = 1_000;

static NOTHING: Moved = Moved::NOTHING;

/// A payment refunded in full by `re_1`.
static REFUNDED_IN_FULL: LazyLock<Moved> = LazyLock::new(|| moved(&[("re_1", AMOUNT, false)], &[]));

fn moved(refunds: &[(&str, i64, bool)], disputes: &[(&str, i64, bool)]) -> Moved {
    let steps = |list: &[(&str, i64, bool)]| {
        list.iter()
            .map(|(id, debited, reversed)| {
                let step = Step {
                    debited: *debited,
                    reversed: *reversed,
                };
                (id.to_string(), step)
            })
            .collect()
    };
    Moved {
        refunds: steps(refunds),
        disputes: steps(disputes),
    }
}

fn current(kind: Kind, status: Status) -> Current<'static> {
    let (amount_refunded, moved) = match status {
        Refunded => (AMOUNT, &*REFUNDED_IN_FULL),
        _ => (0, &NOTHING),
    };
    Current {
        kind,
        status,
        amount: AMOUNT,
        amount_refunded,
        moved,
        // A FAILED transaction knows why (`failed()`'s reason).
        failure_code: (status == Failed).then_some("card_declined"),
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

fn dispute(id: &str, amount: i64, withdrawn: bool, reinstated: bool) -> Signal {
    Signal::Dispute {
        dispute_id: id.into(),
        amount,
        withdrawn,
        reinstated,
    }
}

fn failed() -> Signal {
    Signal::Failed {
        code: "card_declined".into(),
        message: "Your card was declined.".into(),
    }
}

/// Every signal, in the order of the table rows below.
fn signals() -> Vec<Signal> {
    vec![
        Signal::Processing,
        Signal::RequiresAction,
        Signal::Succeeded,
        Signal::Authorized,
        failed(),
        Signal::Canceled,
        refund("re_1", AMOUNT, false),
        dispute("dp_1", AMOUNT, true, false),
        dispute("dp_1", AMOUNT, true, true),
    ]
}

/// The outcome as a short code: the new status, `=` for an applied change that keeps
/// the status, `-` stale, `D` deferred, `X` invalid.
fn code(decision: &Decision, from: Status) -> &'static str {
    match decision {
        Decision::Apply(t) if t.to == from => "=",
        Decision::Apply(t) => match t.to {
            Created => "CR",
            Pending => "P",
            RequiresAction => "RA",
            Succeeded => "S",
            Failed => "F",
            Canceled => "C",
            Refunded => "R",
        },
        Decision::Stale => "-",
        Decision::Defer(_) => "D",
        Decision::Invalid(_) => "X",
    }
}

/// Columns: CREATED, PENDING, REQUIRES_ACTION, SUCCEEDED, FAILED, CANCELED, REFUNDED.
fn assert_table(kind: Kind, table: [[&str; 7]; 9]) {
    let statuses = [
        Created,
        Pending,
        RequiresAction,
        Succeeded,
        Failed,
        Canceled,
        Refunded,
    ];
    for (signal, row) in signals().iter().zip(table) {
        for (status, expected) in statuses.iter().zip(row) {
            let got = code(&decide(current(kind, *status), signal), *status);
            assert_eq!(got, expected, "{kind} in {status} receiving {signal:?}");
        }
    }
}

#[test]
fn every_status_and_signal_pair_of_a_payment() {
    assert_table(
        Kind::Payment,
        [
            ["P", "-", "P", "-", "-", "-", "-"],   // processing
            ["RA", "RA", "-", "-", "-", "-", "-"], // requires_action
            ["S", "S", "S", "-", "S", "-", "-"],   // succeeded
            ["-", "-", "-", "-", "-", "-", "-"],   // authorized
            ["F", "F", "F", "-", "-", "-", "-"],   // payment_failed
            ["C", "C", "C", "-", "C", "-", "-"],   // canceled
            ["D", "D", "D", "R", "D", "X", "-"],   // refunded in full
            ["D", "D", "D", "=", "D", "X", "="],   // dispute funds withdrawn
            ["D", "D", "D", "=", "D", "X", "="],   // dispute funds reinstated (won)
        ],
    );
}

#[test]
fn every_status_and_signal_pair_of_a_coupon() {
    assert_table(
        Kind::Coupon,
        [
            ["P", "-", "P", "-", "-", "-", "-"],
            ["RA", "RA", "-", "-", "-", "-", "-"],
            ["S", "S", "S", "-", "S", "-", "-"],
            ["X", "X", "X", "-", "X", "-", "-"],
            ["F", "F", "F", "-", "-", "-", "-"],
            ["C", "C", "C", "-", "-", "-", "-"], // a failed attempt's void is our own
            ["X", "X", "X", "X", "X", "X", "X"],
            ["X", "X", "X", "X", "X", "X", "X"],
            ["X", "X", "X", "X", "X", "X", "X"],
        ],
    );
}

#[test]
fn every_status_and_signal_pair_of_a_card_validation() {
    assert_table(
        Kind::CardValidation,
        [
            ["P", "-", "P", "-", "-", "-", "-"],
            ["RA", "RA", "-", "-", "-", "-", "-"],
            ["S", "S", "S", "-", "S", "-", "-"],
            ["S", "S", "S", "=", "S", "-", "-"], // a hold after the success: released
            ["F", "F", "F", "-", "-", "-", "-"],
            ["C", "C", "C", "-", "C", "-", "-"],
            ["-", "-", "-", "-", "-", "-", "-"], // the released hold's charge.refunded
            ["X", "X", "X", "X", "X", "X", "X"],
            ["X", "X", "X", "X", "X", "X", "X"],
        ],
    );
}

#[test]
fn a_late_payment_failed_never_undoes_a_success() {
    assert_eq!(
        decide(current(Kind::Payment, Succeeded), &failed()),
        Decision::Stale
    );
    assert_eq!(
        decide(current(Kind::Payment, Refunded), &failed()),
        Decision::Stale
    );
}

#[test]
fn the_hold_release_cancellation_never_undoes_a_validation() {
    let d = decide(current(Kind::CardValidation, Succeeded), &Signal::Canceled);
    assert_eq!(d, Decision::Stale);
}

#[test]
fn a_failed_payment_still_succeeds_when_the_customer_retries_the_same_intent() {
    let Decision::Apply(t) = decide(current(Kind::Payment, Failed), &Signal::Succeeded) else {
        panic!("retry after a failure must succeed");
    };
    assert_eq!(t.to, Succeeded);
    assert_eq!(t.effects, vec![Effect::CreditWallet, Effect::EndTrial]);
}

#[test]
fn a_payment_success_credits_and_ends_the_trial_and_a_duplicate_changes_nothing() {
    let Decision::Apply(t) = decide(current(Kind::Payment, Pending), &Signal::Succeeded) else {
        panic!("success must apply");
    };
    assert_eq!(t.effects, vec![Effect::CreditWallet, Effect::EndTrial]);
    assert_eq!(
        decide(current(Kind::Payment, Succeeded), &Signal::Succeeded),
        Decision::Stale
    );
}

#[test]
fn a_validation_hold_marks_the_card_grants_the_trial_and_releases_the_hold() {
    let d = decide(
        current(Kind::CardValidation, RequiresAction),
        &Signal::Authorized,
    );
    let Decision::Apply(t) = d else {
        panic!("authorization must apply")
    };
    assert_eq!(
        t.effects,
        vec![
            Effect::MarkCardValidated,
            Effect::GrantTrialIfRequested,
            Effect::ReleaseHold(Release::Hold)
        ]
    );
}

#[test]
fn a_validation_settled_by_a_success_still_releases_its_hold_whenever_it_appears() {
    let Decision::Apply(t) = decide(current(Kind::CardValidation, Pending), &Signal::Succeeded)
    else {
        panic!("success must apply")
    };
    assert!(t.effects.contains(&Effect::ReleaseHold(Release::Success)));
    let later = decide(
        current(Kind::CardValidation, Succeeded),
        &Signal::Authorized,
    );
    let Decision::Apply(t) = later else {
        panic!("a later hold must be released")
    };
    assert_eq!(t.to, Succeeded);
    assert_eq!(t.effects, vec![Effect::ReleaseHold(Release::Hold)]);
}

#[test]
fn a_failure_records_the_code_and_message() {
    let Decision::Apply(t) = decide(current(Kind::Payment, Created), &failed()) else {
        panic!("failure must apply");
    };
    assert_eq!(
        t.failure,
        Some(("card_declined".into(), "Your card was declined.".into()))
    );
}

#[test]
fn a_failure_stripe_did_not_explain_gives_way_to_the_real_reason_whichever_arrives_first() {
    let unexplained = Signal::Failed {
        code: UNEXPLAINED_FAILURE.into(),
        message: "The payment failed.".into(),
    };
    for kind in [Kind::Coupon, Kind::Payment] {
        let generic_first = Current {
            failure_code: Some(UNEXPLAINED_FAILURE),
            ..current(kind, Failed)
        };
        let Decision::Apply(t) = decide(generic_first, &failed()) else {
            panic!("the real reason must replace an unexplained failure");
        };
        assert_eq!(t.to, Failed);
        assert_eq!(
            t.failure,
            Some(("card_declined".into(), "Your card was declined.".into()))
        );
        assert_eq!(t.effects, vec![], "the first failure did its effects");
        // The real reason first: the unexplained one, or another, replaces nothing.
        assert_eq!(decide(current(kind, Failed), &unexplained), Decision::Stale);
        assert_eq!(decide(current(kind, Failed), &failed()), Decision::Stale);
        assert_eq!(decide(generic_first, &unexplained), Decision::Stale);
    }
    // Only a failure is refined: a success or a cancellation keeps no failure to refine.
    for status in [Succeeded, Canceled, Refunded] {
        let now = Current {
            failure_code: Some(UNEXPLAINED_FAILURE),
            ..current(Kind::Payment, status)
        };
        assert_eq!(decide(now, &failed()), Decision::Stale, "{status}");
    }
}

/// Applies `signals` in order as the ingestor would, keeping the ledger as settle
/// does (a movement per key, once); returns the end and the money moved.
fn run(kind: Kind, status: Status, signals: &[Signal]) -> (Status, i64, i64) {
    let (mut status, mut refunded, mut ledger, mut balance) = (status, 0, Moved::default(), 0);
    for signal in signals {
        let now = Current {
            kind,
            status,
            amount: AMOUNT,
            amount_refunded: refunded,
            moved: &ledger,
            failure_code: None,
        };
        let Decision::Apply(t) = decide(now, signal) else {
            continue;
        };
        for effect in &t.effects {
            let (steps, key, amount, debit) = match effect {
                Effect::DebitRefund { refund_id, amount } => {
                    (&mut ledger.refunds, refund_id, *amount, true)
                }
                Effect::ReverseRefund { refund_id, amount } => {
                    (&mut ledger.refunds, refund_id, *amount, false)
                }
                Effect::DebitDispute { dispute_id, amount } => {
                    (&mut ledger.disputes, dispute_id, *amount, true)
                }
                Effect::ReverseDispute { dispute_id, amount } => {
                    (&mut ledger.disputes, dispute_id, *amount, false)
                }
                _ => continue,
            };
            let step = steps.entry(key.clone()).or_default();
            match debit {
                true if step.debited == 0 => (step.debited, balance) = (amount, balance - amount),
                false if !step.reversed => (step.reversed, balance) = (true, balance + amount),
                _ => panic!("{effect:?} a second time"),
            }
        }
        (status, refunded) = (t.to, t.amount_refunded);
    }
    (status, refunded, balance)
}

#[test]
fn partial_refunds_accumulate_and_the_last_one_refunds_fully() {
    let signals = [
        refund("re_1", 300, false),
        refund("re_1", 300, false),
        refund("re_2", 400, false),
        refund("re_3", 300, false),
    ];
    assert_eq!(
        run(Kind::Payment, Succeeded, &signals),
        (Refunded, AMOUNT, -AMOUNT)
    );
}

#[test]
fn a_failed_refund_gives_its_debit_back_once_and_a_new_refund_debits_again() {
    let signals = [
        refund("re_1", AMOUNT, false),
        refund("re_1", AMOUNT, true),
        refund("re_1", AMOUNT, true),
        refund("re_1", AMOUNT, false), // a late refund.created
    ];
    assert_eq!(run(Kind::Payment, Succeeded, &signals), (Succeeded, 0, 0));
    let again = [&signals[..], &[refund("re_2", 600, false)]].concat();
    assert_eq!(
        run(Kind::Payment, Succeeded, &again),
        (Succeeded, 600, -600)
    );
}

#[test]
fn a_refund_seen_only_once_it_failed_is_debited_and_given_back_at_once() {
    let Decision::Apply(t) = decide(
        current(Kind::Payment, Succeeded),
        &refund("re_1", 400, true),
    ) else {
        panic!("a failed refund must apply");
    };
    assert_eq!(
        t.effects,
        vec![
            Effect::DebitRefund {
                refund_id: "re_1".into(),
                amount: 400
            },
            Effect::ReverseRefund {
                refund_id: "re_1".into(),
                amount: 400
            },
        ]
    );
    assert_eq!((t.to, t.amount_refunded), (Succeeded, 0));
}

#[test]
fn a_charge_refunded_without_refund_ids_waits_for_them() {
    let charge_refunded = |net| Signal::Refunded {
        refunds: vec![],
        amount_refunded: Some(net),
    };
    let d = decide(current(Kind::Payment, Succeeded), &charge_refunded(400));
    assert!(matches!(d, Decision::Defer(_)), "{d:?}");
    // Explained by a refund known by id, even one that failed since.
    let ledger = moved(&[("re_1", 400, true)], &[]);
    let now = Current {
        moved: &ledger,
        ..current(Kind::Payment, Succeeded)
    };
    assert_eq!(decide(now, &charge_refunded(400)), Decision::Stale);
}

#[test]
fn refunding_more_than_the_payment_waits_or_is_invalid() {
    let mut now = current(Kind::Payment, Succeeded);
    let ledger = moved(&[("re_1", 700, false)], &[]);
    (now.amount_refunded, now.moved) = (700, &ledger);
    // A refund of money a failed refund gave back, seen before that failure: it waits.
    let d = decide(now, &refund("re_2", 301, false));
    assert!(matches!(d, Decision::Defer(_)), "{d:?}");
    let d = decide(
        current(Kind::Payment, Succeeded),
        &refund("re_2", AMOUNT + 1, false),
    );
    assert!(matches!(d, Decision::Invalid(_)), "{d:?}");
}

#[test]
fn a_refund_before_its_success_is_deferred_not_dropped() {
    let d = decide(current(Kind::Payment, Pending), &refund("re_1", 100, false));
    assert!(matches!(d, Decision::Defer(_)));
}

#[test]
fn an_inquiry_moves_no_money_even_after_a_full_refund() {
    for status in [Succeeded, Refunded] {
        let d = decide(
            current(Kind::Payment, status),
            &dispute("dp_1", AMOUNT, false, false),
        );
        assert_eq!(d, Decision::Stale, "{status}");
    }
}

#[test]
fn dispute_funds_move_once_each_whatever_the_order() {
    let withdrawn = dispute("dp_1", 400, true, false);
    let won = dispute("dp_1", 400, true, true);
    let orders = [
        vec![withdrawn.clone(), won.clone()],
        vec![won.clone(), withdrawn.clone()],
        vec![
            won.clone(),
            won.clone(),
            withdrawn.clone(),
            withdrawn.clone(),
        ],
    ];
    for order in orders {
        assert_eq!(
            run(Kind::Payment, Succeeded, &order),
            (Succeeded, 0, 0),
            "{order:?}"
        );
    }
    let lost = [
        withdrawn.clone(),
        dispute("dp_1", 400, true, false),
        withdrawn,
    ];
    assert_eq!(run(Kind::Payment, Succeeded, &lost), (Succeeded, 0, -400));
}

#[test]
fn the_disputes_of_one_payment_never_hold_more_than_it_brought() {
    let signals = [
        dispute("dp_1", AMOUNT, true, false),
        dispute("dp_2", AMOUNT, true, false),
    ];
    assert_eq!(
        run(Kind::Payment, Succeeded, &signals),
        (Succeeded, 0, -AMOUNT)
    );
    let ledger = moved(&[], &[("dp_1", AMOUNT, false)]);
    let now = Current {
        moved: &ledger,
        ..current(Kind::Payment, Succeeded)
    };
    let d = decide(now, &dispute("dp_2", AMOUNT, true, false));
    assert!(matches!(d, Decision::Invalid(_)), "{d:?}");
    // Once the first is reinstated, the second may hold the payment.
    let reinstated = [
        &signals[..],
        &[dispute("dp_1", AMOUNT, true, true), signals[1].clone()],
    ]
    .concat();
    assert_eq!(
        run(Kind::Payment, Succeeded, &reinstated),
        (Succeeded, 0, -AMOUNT)
    );
}

/// The transitions `decide` makes, as the table tests above show them.
#[test]
fn the_transitions_are_those_of_the_tables() {
    let unsettled = [Created, Pending, RequiresAction];
    let mut expected = std::collections::BTreeSet::new();
    for kind in Kind::ALL {
        for (from, to) in [
            (Created, Pending),
            (RequiresAction, Pending),
            (Created, RequiresAction),
            (Pending, RequiresAction),
            (Failed, Succeeded),
        ] {
            expected.insert((*kind, from, to));
        }
        // A failed coupon's invoice is voided by our own outbox: it stays FAILED.
        if *kind != Kind::Coupon {
            expected.insert((*kind, Failed, Canceled));
        }
        for from in unsettled {
            for to in [Succeeded, Failed, Canceled] {
                expected.insert((*kind, from, to));
            }
        }
    }
    expected.insert((Kind::Payment, Succeeded, Refunded));
    expected.insert((Kind::Payment, Refunded, Succeeded));
    assert_eq!(transitions(), expected);
}

/// A random search over states and signals finds no change of status outside
/// [`transitions`].
#[test]
fn no_decision_changes_status_outside_the_transitions() {
    let legal = transitions();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % n as u64).unwrap_or(0)
    };
    let amounts = [1, AMOUNT / 3, AMOUNT / 2, AMOUNT - 1, AMOUNT];
    for _ in 0..50_000 {
        let kind = Kind::ALL[next(Kind::ALL.len())];
        let status = Status::ALL[next(Status::ALL.len())];
        let refunded = match status {
            Refunded => AMOUNT,
            Succeeded => amounts[next(amounts.len())] - 1,
            _ => 0,
        };
        let ledger = moved(
            &[("re_1", refunded.max(1), next(4) == 0)],
            &[("dp_1", amounts[next(5)], next(2) == 0)],
        );
        let now = Current {
            kind,
            status,
            amount: AMOUNT,
            amount_refunded: refunded,
            moved: &ledger,
            failure_code: None,
        };
        let amount = amounts[next(amounts.len())];
        let mut all = signals();
        all.push(refund(["re_1", "re_2"][next(2)], amount, next(2) == 0));
        all.push(dispute(
            ["dp_1", "dp_2"][next(2)],
            amount,
            next(2) == 0,
            next(3) == 0,
        ));
        all.push(Signal::Refunded {
            refunds: vec![],
            amount_refunded: Some(amount),
        });
        for signal in all {
            if let Decision::Apply(t) = decide(now, &signal)
                && t.to != status
            {
                assert!(
                    legal.contains(&(kind, status, t.to)),
                    "{now:?} {signal:?} -> {:?}",
                    t.to
                );
            }
        }
    }
}

#[test]
fn a_coupon_attempt_that_fails_or_is_canceled_voids_its_invoice_and_a_payment_does_not() {
    let failed = Signal::Failed {
        code: "invalid_request_error".into(),
        message: "refused".into(),
    };
    for signal in [&failed, &Signal::Canceled] {
        let Decision::Apply(t) = decide(current(Kind::Coupon, Pending), signal) else {
            panic!("{signal:?} must apply to a pending coupon");
        };
        assert_eq!(t.effects, vec![Effect::VoidInvoice], "{signal:?}");
        let Decision::Apply(t) = decide(current(Kind::Payment, Pending), signal) else {
            panic!("{signal:?} must apply to a pending payment");
        };
        assert_eq!(t.effects, vec![], "{signal:?}");
    }
}
