//! Whether a Stripe object may move a transaction. Our metadata id only says where
//! to look: anyone able to create objects on the account (another integration on a
//! shared account, a leaked key) can write any transaction id into an object's
//! metadata, and a correctly signed event about that object proves only that Stripe
//! sent it. So an object is applied to a transaction only if it is the transaction's
//! own object:
//!
//! - of a kind the transaction is paid through (a PaymentIntent, its charge, a refund
//!   or a dispute of it for a card transaction; an invoice for a coupon);
//! - the one recorded on the transaction (its PaymentIntent, invoice or charge id);
//! - for the amount the transaction holds.
//!
//! When the answer that carried the object's id was lost (or the webhook beat our
//! own write), nothing is recorded yet: the object is *adopted* only if it carries
//! our id and its kind, amount, currency and customer all match the transaction.
//! [`bind`] is a pure function; the inbox and reconciliation act on its answer.

use crate::{Signal, Transaction, TransactionKind, stripe_object::StripeObject};

/// What [`bind`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// The object is the one recorded on the transaction.
    Bound,
    /// Nothing of its kind is recorded yet and it matches in every respect: record
    /// its id on the transaction, then apply it.
    Adopt,
    /// Nothing is recorded to compare it with yet (a charge's event before its
    /// PaymentIntent is known): keep the event and retry.
    NotYet(&'static str),
    /// Not the transaction's object: move nothing, flag the event for an operator.
    Mismatch(String),
}

/// Whether `object` (an event's, or one read back from Stripe, saying `signal`) is
/// `tx`'s own object. `customer` is the Stripe customer recorded for the
/// transaction's user.
pub fn bind(
    tx: &Transaction,
    object: StripeObject<'_>,
    signal: Option<&Signal>,
    customer: Option<&str>,
) -> Binding {
    let kind = object.kind().unwrap_or_default();
    if !paid_through(tx.kind, kind) {
        return mismatch(format!(
            "a {} cannot settle a {} transaction",
            describe(kind),
            tx.kind
        ));
    }
    if let Some(named) = object.transaction_id()
        && named != tx.id
    {
        return mismatch(format!("the object names transaction {named}"));
    }
    match kind {
        "payment_intent" => own_object(
            tx,
            object,
            signal,
            customer,
            tx.stripe_payment_intent_id.as_deref(),
        ),
        "invoice" => own_object(
            tx,
            object,
            signal,
            customer,
            tx.stripe_invoice_id.as_deref(),
        ),
        // A charge, a refund or a dispute: tied to the transaction through its charge or its
        // PaymentIntent; they are never adopted (only a PaymentIntent is).
        _ => {
            let charge = match kind {
                "charge" => object.id(),
                _ => object.reference("charge"),
            };
            if kind == "charge"
                && let Some(why) = wrong_amount(tx, object, "amount")
            {
                return mismatch(why);
            }
            tied_through_charge(tx, charge, object.reference("payment_intent"))
        }
    }
}

fn mismatch(why: String) -> Binding {
    Binding::Mismatch(why)
}

fn describe(kind: &str) -> &str {
    match kind {
        "" => "object of no stated kind",
        kind => kind,
    }
}

/// The kinds of object a transaction of `kind` is paid through.
fn paid_through(kind: TransactionKind, object: &str) -> bool {
    match kind {
        TransactionKind::Payment | TransactionKind::CardValidation => {
            matches!(object, "payment_intent" | "charge" | "dispute" | "refund")
        }
        TransactionKind::Coupon => object == "invoice",
    }
}

/// A PaymentIntent or invoice: the recorded one, or adoptable.
fn own_object(
    tx: &Transaction,
    object: StripeObject<'_>,
    signal: Option<&Signal>,
    customer: Option<&str>,
    recorded: Option<&str>,
) -> Binding {
    let id = object.id().unwrap_or_default();
    match recorded {
        Some(recorded) if recorded != id => {
            return mismatch(format!(
                "{} {id} is not the transaction's ({recorded})",
                describe(object.kind().unwrap_or_default())
            ));
        }
        _ => {}
    }
    if let Some(why) = amounts(tx, object, signal) {
        return mismatch(why);
    }
    if recorded.is_some() {
        return Binding::Bound;
    }
    match adoptable(tx, object, customer) {
        Ok(()) => Binding::Adopt,
        Err(why) => mismatch(format!("not adopted: {why}")),
    }
}

/// The amounts the object states, against the transaction's.
fn amounts(tx: &Transaction, object: StripeObject<'_>, signal: Option<&Signal>) -> Option<String> {
    let mut fields = vec![match object.kind() {
        // A coupon's invoice is the credit, discounted to a zero total.
        Some("invoice") => "subtotal",
        _ => "amount",
    }];
    if object.kind() == Some("payment_intent") {
        match signal {
            Some(Signal::Succeeded) => fields.push("amount_received"),
            Some(Signal::Authorized) => fields.push("amount_capturable"),
            _ => {}
        }
    }
    fields
        .into_iter()
        .find_map(|field| wrong_amount(tx, object, field))
}

/// Why `field` disagrees with the transaction's amount, if it is stated and does.
fn wrong_amount(tx: &Transaction, object: StripeObject<'_>, field: &str) -> Option<String> {
    let stated = object.amount(field)?;
    (stated != tx.amount.minor()).then(|| {
        format!(
            "{field} is {stated}, the transaction holds {}",
            tx.amount.minor()
        )
    })
}

/// Whether an object nothing of whose kind is recorded yet may be taken as the
/// transaction's: it carries our id, and its amount, currency and customer match.
fn adoptable(
    tx: &Transaction,
    object: StripeObject<'_>,
    customer: Option<&str>,
) -> Result<(), String> {
    if object.transaction_id() != Some(tx.id) {
        return Err("it does not carry the transaction's id".into());
    }
    if object.id().is_none() {
        return Err("it has no id".into());
    }
    let field = match object.kind() {
        Some("invoice") => "subtotal",
        _ => "amount",
    };
    if object.amount(field).is_none() {
        return Err(format!("it states no {field}"));
    }
    let currency = tx.currency();
    if !object
        .currency()
        .is_some_and(|c| c.eq_ignore_ascii_case(currency.as_str()))
    {
        return Err(format!(
            "its currency is {}, the transaction's {currency}",
            object.currency().unwrap_or("not stated")
        ));
    }
    let theirs = object.reference("customer");
    if theirs != customer {
        return Err(format!(
            "its customer is {}, the user's {}",
            theirs.unwrap_or("none"),
            customer.unwrap_or("none")
        ));
    }
    Ok(())
}

/// A charge or dispute: its charge must be the transaction's, or (before the charge
/// is recorded) its PaymentIntent must be.
fn tied_through_charge(
    tx: &Transaction,
    charge: Option<&str>,
    payment_intent: Option<&str>,
) -> Binding {
    if let Some(recorded) = tx.stripe_charge_id.as_deref() {
        return match charge == Some(recorded) {
            true => Binding::Bound,
            false => mismatch(format!(
                "charge {} is not the transaction's ({recorded})",
                charge.unwrap_or("(none)")
            )),
        };
    }
    match (tx.stripe_payment_intent_id.as_deref(), payment_intent) {
        (Some(recorded), Some(named)) if recorded == named => Binding::Bound,
        (Some(recorded), Some(named)) => mismatch(format!(
            "PaymentIntent {named} is not the transaction's ({recorded})"
        )),
        // The charge is recorded with the success; until then there is nothing to
        // compare it with.
        _ => Binding::NotYet("the transaction's charge is not recorded yet"),
    }
}

#[cfg(test)]
#[path = "binding_tests.rs"]
mod tests;
