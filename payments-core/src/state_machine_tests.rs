use super::*;
use Status::*;

const AMOUNT: i64 = 1_000;

fn current(kind: Kind, status: Status) -> Current {
    let amount_refunded = if status == Refunded { AMOUNT } else { 0 };
    Current {
        kind,
        status,
        amount: AMOUNT,
        amount_refunded,
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
        Signal::Refunded {
            amount_refunded: AMOUNT,
        },
        Signal::DisputeOpened {
            dispute_id: "dp_1".into(),
            amount: AMOUNT,
        },
        Signal::DisputeClosed {
            dispute_id: "dp_1".into(),
            amount: AMOUNT,
            won: true,
        },
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
            ["D", "D", "D", "=", "D", "X", "="],   // dispute opened
            ["D", "D", "D", "=", "D", "X", "="],   // dispute closed
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
            ["C", "C", "C", "-", "C", "-", "-"],
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
            ["S", "S", "S", "-", "S", "-", "-"],
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
            Effect::ReleaseHold
        ]
    );
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
fn partial_refunds_accumulate_and_the_last_one_refunds_fully() {
    let mut now = current(Kind::Payment, Succeeded);
    let mut debited = 0;
    for cumulative in [300, 300, 700, 1_000] {
        match decide(
            now,
            &Signal::Refunded {
                amount_refunded: cumulative,
            },
        ) {
            Decision::Apply(t) => {
                for e in &t.effects {
                    if let Effect::DebitRefund { delta, .. } = e {
                        debited += delta;
                    }
                }
                now.status = t.to;
                now.amount_refunded = t.amount_refunded;
            }
            Decision::Stale => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(debited, 1_000);
    assert_eq!(now.status, Refunded);
}

#[test]
fn an_older_refund_after_a_newer_one_is_stale() {
    let mut now = current(Kind::Payment, Succeeded);
    now.amount_refunded = 700;
    assert_eq!(
        decide(
            now,
            &Signal::Refunded {
                amount_refunded: 300
            }
        ),
        Decision::Stale
    );
}

#[test]
fn refunding_more_than_the_payment_is_invalid() {
    let d = decide(
        current(Kind::Payment, Succeeded),
        &Signal::Refunded {
            amount_refunded: AMOUNT + 1,
        },
    );
    assert!(matches!(d, Decision::Invalid(_)));
}

#[test]
fn a_refund_before_its_success_is_deferred_not_dropped() {
    let d = decide(
        current(Kind::Payment, Pending),
        &Signal::Refunded {
            amount_refunded: 100,
        },
    );
    assert!(matches!(d, Decision::Defer(_)));
}

#[test]
fn a_won_dispute_also_takes_the_debit_so_a_lost_created_event_cannot_mint_money() {
    let closed = Signal::DisputeClosed {
        dispute_id: "dp_9".into(),
        amount: 400,
        won: true,
    };
    let Decision::Apply(t) = decide(current(Kind::Payment, Succeeded), &closed) else {
        panic!("a closed dispute must apply");
    };
    assert_eq!(
        t.effects,
        vec![
            Effect::DebitDispute {
                dispute_id: "dp_9".into(),
                amount: 400
            },
            Effect::ReverseDispute {
                dispute_id: "dp_9".into(),
                amount: 400
            },
        ]
    );
    let lost = Signal::DisputeClosed {
        dispute_id: "dp_9".into(),
        amount: 400,
        won: false,
    };
    let Decision::Apply(t) = decide(current(Kind::Payment, Succeeded), &lost) else {
        panic!("a lost dispute must apply");
    };
    assert_eq!(
        t.effects,
        vec![Effect::DebitDispute {
            dispute_id: "dp_9".into(),
            amount: 400
        }]
    );
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
