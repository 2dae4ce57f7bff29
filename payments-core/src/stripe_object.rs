//! Reading Stripe objects: the one place that knows where a field lives in Stripe's
//! JSON and what it means for us, whether the object came in an event's `data.object`,
//! was read back from Stripe (reconciliation), or answered one of our own requests.
//!
//! Loose about shape on purpose — payloads from API versions 2018 to today must all be
//! understood — and strict about what we keep: an empty string is never an id, a code
//! or a currency.
//!
//! - [`StripeObject`]: typed accessors over the JSON (ids, amounts, currency, metadata,
//!   the charge, the card, a payment error).
//! - [`StripeObject::signal`]: what the object's present state says (reconciliation);
//!   [`StripeObject::answer`]: what it says as the answer to our own request, which
//!   never settles money.
//! - [`StripeObject::target`]: how to find the transaction the object is about.
//! - [`StripeObject::invoice_payment_failure`]: why an invoice's payment failed, which
//!   the invoice itself no longer says.
//! - [`payment_error`]: the code and message of a failed payment, with the one default.

use serde_json::Value;

use crate::{Refund, Signal, TransactionId, state_machine::UNEXPLAINED_FAILURE};

/// The metadata key that carries our transaction id on everything we create at
/// Stripe, so that an event (or a search) leads back to the transaction.
pub const TRANSACTION_METADATA_KEY: &str = "transaction_id";

/// How to find the transaction an object is about: our id first, then Stripe's ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub transaction_id: Option<TransactionId>,
    pub payment_intent: Option<String>,
    pub invoice: Option<String>,
    pub charge: Option<String>,
}

/// A card as Stripe describes a payment method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardDetails {
    pub payment_method_id: String,
    pub customer: Option<String>,
    pub brand: String,
    pub last4: String,
    pub fingerprint: String,
}

/// The code and message of a failed payment, from a payment error's parts as Stripe
/// writes them (a PaymentIntent's `last_payment_error`, an Invoice's
/// `last_finalization_error`, a declined request's `error`): the decline code is the
/// more precise, then the error code; a failure Stripe did not explain still says so.
pub fn payment_error(
    decline_code: Option<&str>,
    code: Option<&str>,
    message: Option<&str>,
) -> (String, String) {
    let present = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    let code = present(decline_code)
        .or_else(|| present(code))
        .unwrap_or_else(|| UNEXPLAINED_FAILURE.to_owned());
    let message = present(message).unwrap_or_else(|| "The payment failed.".to_owned());
    (code, message)
}

/// A Stripe object (PaymentIntent, Invoice, Charge, Dispute, PaymentMethod) as JSON.
#[derive(Debug, Clone, Copy)]
pub struct StripeObject<'a>(&'a Value);

impl<'a> StripeObject<'a> {
    pub fn new(value: &'a Value) -> Self {
        StripeObject(value)
    }

    /// A non-empty string field.
    fn text(&self, key: &str) -> Option<&'a str> {
        self.0
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// What kind of object it is (`payment_intent`, `invoice`, `charge`, `dispute`…).
    pub fn kind(&self) -> Option<&'a str> {
        self.text("object")
    }

    pub fn id(&self) -> Option<&'a str> {
        self.text("id")
    }

    pub fn status(&self) -> Option<&'a str> {
        self.text("status")
    }

    /// The object's currency as Stripe writes it (lower case), if it names one.
    pub fn currency(&self) -> Option<&'a str> {
        self.text("currency")
    }

    /// An amount field in minor units (`amount`, `amount_refunded`…).
    pub fn amount(&self, key: &str) -> Option<i64> {
        self.0.get(key).and_then(Value::as_i64)
    }

    pub fn client_secret(&self) -> Option<&'a str> {
        self.text("client_secret")
    }

    /// Our transaction id from `metadata[transaction_id]`, if it parses.
    pub fn transaction_id(&self) -> Option<TransactionId> {
        self.0
            .get("metadata")
            .and_then(|m| m.get(TRANSACTION_METADATA_KEY))
            .and_then(Value::as_str)
            .and_then(|s| TransactionId::parse(s).ok())
    }

    /// A reference to another object: its id, or an expanded object with an `id`.
    pub fn reference(&self, key: &str) -> Option<&'a str> {
        match self.0.get(key)? {
            Value::String(id) if !id.is_empty() => Some(id),
            expanded @ Value::Object(_) => StripeObject(expanded).id(),
            _ => None,
        }
    }

    /// The charge behind a PaymentIntent, for later refunds and disputes. Older API
    /// versions list charges instead of naming the latest.
    pub fn charge(&self) -> Option<&'a str> {
        self.reference("latest_charge").or_else(|| {
            self.0
                .pointer("/charges/data/0")
                .and_then(|c| StripeObject(c).id())
        })
    }

    /// The payment method a PaymentIntent used.
    pub fn payment_method(&self) -> Option<&'a str> {
        self.reference("payment_method")
    }

    /// The failure signal of a payment error held in `key` (`last_payment_error`,
    /// `last_finalization_error`); a missing error still fails, with the default.
    pub fn failure(&self, key: &str) -> Signal {
        let error = StripeObject(self.0.get(key).unwrap_or(&Value::Null));
        let (code, message) = payment_error(
            error.text("decline_code"),
            error.text("code"),
            error.text("message"),
        );
        Signal::Failed { code, message }
    }

    /// The failure of an Invoice's payment, from its PaymentIntent's
    /// `last_payment_error`: since API version 2025-03-31.basil an invoice names its
    /// PaymentIntent only in its `payments` (read with
    /// `expand[]=payments.data.payment.payment_intent`), before that in `payment_intent`
    /// (read with `expand[]=payment_intent`). The newest payment that holds an error
    /// says; None when none does (or nothing was expanded).
    pub fn invoice_payment_failure(&self) -> Option<Signal> {
        let payments = self
            .0
            .pointer("/payments/data")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|p| p.pointer("/payment/payment_intent"));
        payments
            .chain(self.0.get("payment_intent"))
            .map(StripeObject)
            .find(|intent| {
                intent
                    .0
                    .get("last_payment_error")
                    .is_some_and(Value::is_object)
            })
            .map(|intent| intent.failure("last_payment_error"))
    }

    /// The signal a PaymentIntent or Invoice in its present state gives, if any (None
    /// while it waits on the customer or has not been finalized).
    pub fn signal(&self) -> Option<Signal> {
        let status = self.status()?;
        match self.kind()? {
            "payment_intent" => match status {
                "succeeded" => Some(Signal::Succeeded),
                "requires_capture" => Some(Signal::Authorized),
                "processing" => Some(Signal::Processing),
                "requires_action" => Some(Signal::RequiresAction),
                "canceled" => Some(Signal::Canceled),
                // Back to the customer after a decline: the last error says why.
                "requires_payment_method" => self
                    .0
                    .get("last_payment_error")
                    .filter(|e| e.is_object())
                    .map(|_| self.failure("last_payment_error")),
                _ => None,
            },
            "invoice" => match status {
                "paid" => Some(Signal::Succeeded),
                "void" => Some(Signal::Canceled),
                "uncollectible" => Some(Signal::Failed {
                    code: "uncollectible".into(),
                    message: "The invoice was marked uncollectible.".into(),
                }),
                _ => None,
            },
            _ => None,
        }
    }

    /// What the object says as Stripe's synchronous answer to our own request. Only
    /// webhooks and reconciliation settle money, so even a synchronous success (or a
    /// validation's hold) only says "processing".
    pub fn answer(&self) -> Option<Signal> {
        self.signal().map(|signal| match signal {
            Signal::Succeeded | Signal::Authorized => Signal::Processing,
            other => other,
        })
    }

    /// Where to look for our transaction.
    pub fn target(&self) -> Target {
        let own_id = || self.id().map(str::to_owned);
        let kind = self.kind().unwrap_or_default();
        let referenced = |key| self.reference(key).map(str::to_owned);
        Target {
            transaction_id: self.transaction_id(),
            payment_intent: match kind {
                "payment_intent" => own_id(),
                _ => referenced("payment_intent"),
            },
            invoice: match kind {
                "invoice" => own_id(),
                _ => referenced("invoice"),
            },
            charge: match kind {
                "charge" => own_id(),
                "dispute" | "refund" => referenced("charge"),
                _ => None,
            },
        }
    }

    /// A Refund: its id, amount and whether it failed (`failed`, or `canceled`: the
    /// money went back to the account). The error names the missing field.
    pub fn refund(&self) -> Result<Refund, &'static str> {
        Ok(Refund {
            id: self.id().ok_or("id")?.to_owned(),
            amount: self.amount("amount").ok_or("amount")?,
            failed: matches!(self.status(), Some("failed" | "canceled")),
        })
    }

    /// The refunds a Charge lists (`refunds.data`; a plain array in the oldest API
    /// versions). Empty from API version 2022-11-15 on, where the list is no longer
    /// included: the `refund.*` events name each refund instead. Entries without an id
    /// or an amount are skipped.
    pub fn refunds(&self) -> Vec<Refund> {
        let list = match self.0.get("refunds") {
            Some(Value::Array(items)) => items.as_slice(),
            Some(list) => list
                .get("data")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice),
            None => &[],
        };
        list.iter()
            .filter_map(|r| StripeObject(r).refund().ok())
            .collect()
    }

    /// Whether a Dispute's `balance_transactions` hold a withdrawal (a negative amount)
    /// and a reinstatement (a positive one).
    pub fn dispute_funds(&self) -> (bool, bool) {
        let amounts: Vec<i64> = self
            .0
            .get("balance_transactions")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|t| StripeObject(t).amount("amount"))
            .collect();
        (
            amounts.iter().any(|a| *a < 0),
            amounts.iter().any(|a| *a > 0),
        )
    }

    /// The card of a PaymentMethod; None without an id.
    pub fn card(&self) -> Option<CardDetails> {
        let card = StripeObject(self.0.get("card").unwrap_or(&Value::Null));
        let text = |key| card.text(key).unwrap_or_default().to_owned();
        Some(CardDetails {
            payment_method_id: self.id()?.to_owned(),
            customer: self.reference("customer").map(str::to_owned),
            brand: text("brand"),
            last4: text("last4"),
            fingerprint: text("fingerprint"),
        })
    }
}

#[cfg(test)]
#[path = "stripe_object_tests.rs"]
mod tests;
