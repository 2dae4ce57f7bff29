//! The webhook path's common case in one statement: a `payment_intent.succeeded` for a
//! top-up waiting on it, with its wallet in the payment's currency and no trial running.
//! That is most of the webhook traffic, and [`apply`](super::apply)'s general path
//! takes six round trips for it (BEGIN, the lock, the status change, the credit, the
//! event's insert, COMMIT); here it takes one, committed on its own.
//!
//! The rules stay where they are. Before any SQL runs, the plan asks
//! [`binding::bind`] and [`decide`] what they would answer for every kind and status
//! the row might be in, assuming the row holds what the event says (its PaymentIntent
//! recorded, the event's amount and currency). It keeps the kind and status pairs for
//! which the answer is exactly "bound, then SUCCEEDED crediting the wallet (and ending a
//! trial)". The statement writes only if the row is in one of those pairs, and holds
//! every other input those two functions read: the PaymentIntent, the amount and
//! currency, nothing refunded and no failure recorded. The wallet must be in the same
//! currency and not in a trial, so the credit needs no flag and ending the trial is a
//! no-op. Otherwise the statement writes nothing and the general path runs as before,
//! so any other case is decided and written exactly as it was.

use crate::{
    Currency, Decision, Effect, Meaning, Money, Moved, Signal, StripeEvent, StripeMode,
    StripeObject, Transaction, TransactionId, TransactionKind, TransactionStatus, UserId,
    binding::{self, Binding},
    decide, settle,
    store::SuccessWrite,
};

/// The effects the one statement carries out: the credit, and ending a trial, which
/// its wallet guard makes a no-op.
const EFFECTS: [Effect; 2] = [Effect::CreditWallet, Effect::EndTrial];

/// The one-statement write for `event`, if it is a success that may take that path
/// (from a service holding a key of `mode`); None sends it down the general path.
pub(super) fn plan(event: &StripeEvent, mode: StripeMode) -> Option<SuccessWrite<'_>> {
    if event.mode() != mode {
        return None;
    }
    let Ok(Meaning::Transaction {
        target,
        signal: Signal::Succeeded,
        currency,
        charge,
        payment_method: _,
    }) = event.meaning()
    else {
        return None;
    };
    let object = StripeObject::new(event.object());
    if object.kind() != Some("payment_intent") {
        return None;
    }
    let transaction_id = target.transaction_id?;
    let payment_intent = object.id()?;
    let currency = Currency::parse(&currency?.to_ascii_lowercase()).ok()?;
    let amount = Money::new(object.amount("amount")?, currency).ok()?;
    let from = writable_from(transaction_id, object, payment_intent, amount);
    let credit = settle::credit_kind(from.first()?.0);
    if from
        .iter()
        .any(|(kind, _)| settle::credit_kind(*kind) != credit)
    {
        return None;
    }
    Some(SuccessWrite {
        transaction_id,
        from,
        payment_intent,
        amount,
        charge,
        credit,
        cause: settle::Cause::StripeEvent(event.id.as_str()).label(),
    })
}

/// The (kind, status) pairs from which the rules bind the event's PaymentIntent to the
/// transaction and move it to SUCCEEDED with exactly [`EFFECTS`], for a row holding
/// the event's PaymentIntent, amount and currency, nothing refunded and no failure.
fn writable_from(
    id: TransactionId,
    object: StripeObject<'_>,
    payment_intent: &str,
    amount: Money,
) -> Vec<(TransactionKind, TransactionStatus)> {
    let mut from = Vec::new();
    for kind in TransactionKind::ALL {
        let Some(row) = assumed_row(id, *kind, payment_intent, amount) else {
            continue;
        };
        if binding::bind(&row, object, Some(&Signal::Succeeded), None) != Binding::Bound {
            continue;
        }
        for status in TransactionStatus::ALL {
            if succeeds_with_credit(*kind, *status, amount) {
                from.push((*kind, *status));
            }
        }
    }
    from
}

fn succeeds_with_credit(kind: TransactionKind, status: TransactionStatus, amount: Money) -> bool {
    // A coupon's success may first cancel its user's retry: never this path's.
    if kind == TransactionKind::Coupon {
        return false;
    }
    let current = crate::Current {
        kind,
        status,
        amount: amount.minor(),
        amount_refunded: 0,
        moved: &Moved::default(),
        failure_code: None,
    };
    match decide(current, &Signal::Succeeded) {
        Decision::Apply(t) => {
            t.to == TransactionStatus::Succeeded
                && t.amount_refunded == 0
                && t.failure.is_none()
                && t.effects == EFFECTS
        }
        _ => false,
    }
}

/// The row the statement's guard requires, as [`binding::bind`] reads it: of a bound
/// PaymentIntent, bind looks at the transaction's kind, id, recorded PaymentIntent and
/// amount only (the rest matters when adopting, which this path never does).
fn assumed_row(
    id: TransactionId,
    kind: TransactionKind,
    payment_intent: &str,
    amount: Money,
) -> Option<Transaction> {
    let user = UserId::parse("assumed").ok()?;
    Some(Transaction {
        stripe_payment_intent_id: Some(payment_intent.to_owned()),
        ..Transaction::created(id, user, kind, amount)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::store::MovementKind;

    fn event(event_type: &str, livemode: bool, object: Value) -> StripeEvent {
        let payload = json!({
            "id": "evt_1", "object": "event", "type": event_type, "created": 1_700_000_000,
            "livemode": livemode, "data": { "object": object }
        });
        StripeEvent::from_value(payload).expect("valid envelope")
    }

    fn intent(id: TransactionId, amount: i64, received: i64) -> Value {
        json!({
            "id": "pi_1", "object": "payment_intent", "status": "succeeded",
            "amount": amount, "amount_received": received, "currency": "usd",
            "latest_charge": "ch_1", "metadata": { "transaction_id": id.to_string() }
        })
    }

    fn succeeded(object: Value) -> StripeEvent {
        event("payment_intent.succeeded", false, object)
    }

    #[test]
    fn a_top_up_success_is_written_from_every_status_the_rules_credit_it_from() {
        let id = TransactionId::new();
        let event = succeeded(intent(id, 500, 500));
        let write = plan(&event, StripeMode::Test).expect("the common success");
        // Computed from the rules, and checked here against them by hand: a top-up
        // waiting on Stripe, or one that failed and was paid after all (a late success).
        let expected: Vec<_> = [
            TransactionStatus::Created,
            TransactionStatus::Pending,
            TransactionStatus::RequiresAction,
            TransactionStatus::Failed,
        ]
        .into_iter()
        .map(|status| (TransactionKind::Payment, status))
        .collect();
        assert_eq!(write.from, expected);
        assert_eq!(write.transaction_id, id);
        assert_eq!(write.payment_intent, "pi_1");
        assert_eq!(write.amount, Money::new(500, Currency::USD).expect("money"));
        assert_eq!(write.charge.as_deref(), Some("ch_1"));
        assert_eq!(write.credit, MovementKind::PaymentCredit);
        assert_eq!(write.cause, "stripe_event");
    }

    #[test]
    fn anything_else_takes_the_general_path() {
        let id = TransactionId::new();
        // The other mode's event is flagged there.
        let live = event("payment_intent.succeeded", true, intent(id, 500, 500));
        assert_eq!(plan(&live, StripeMode::Test), None);
        // Binding refuses a PaymentIntent whose received amount is not its amount.
        assert_eq!(
            plan(&succeeded(intent(id, 500, 400)), StripeMode::Test),
            None
        );
        // No id of ours: found by a Stripe id, or not ours.
        let mut anonymous = intent(id, 500, 500);
        anonymous["metadata"] = json!({});
        assert_eq!(plan(&succeeded(anonymous), StripeMode::Test), None);
        // No currency: nothing to guard the credit with.
        let mut no_currency = intent(id, 500, 500);
        no_currency
            .as_object_mut()
            .expect("object")
            .remove("currency");
        assert_eq!(plan(&succeeded(no_currency), StripeMode::Test), None);
        // Other signals and objects.
        let failed = event("payment_intent.payment_failed", false, intent(id, 500, 0));
        assert_eq!(plan(&failed, StripeMode::Test), None);
        let invoice = json!({
            "id": "in_1", "object": "invoice", "status": "paid", "subtotal": 500,
            "total": 0, "currency": "usd", "metadata": { "transaction_id": id.to_string() }
        });
        assert_eq!(
            plan(&event("invoice.paid", false, invoice), StripeMode::Test),
            None
        );
    }

    #[test]
    fn a_card_validation_is_never_written_in_one_statement() {
        // Its success marks the card and releases the hold: not the statement's effects.
        let amount = Money::new(100, Currency::USD).expect("money");
        for status in TransactionStatus::ALL {
            assert!(!succeeds_with_credit(
                TransactionKind::CardValidation,
                *status,
                amount
            ));
            assert!(!succeeds_with_credit(
                TransactionKind::Coupon,
                *status,
                amount
            ));
        }
    }
}
