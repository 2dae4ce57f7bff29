//! Stripe events as received: the envelope every API version shares, and what an
//! event means for us (a [`Signal`] for a transaction, or a payment-method change).
//!
//! Parsing is deliberately loose about the object's shape — real payloads from API
//! versions 2018 to today must all be accepted and stored — and strict only about the
//! envelope (`id`, `type`, `created`) and the few fields a rule needs. The object's
//! fields are read by [`crate::stripe_object`], as for an object read back from Stripe.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub use crate::stripe_object::{CardDetails, Target};
use crate::{Signal, StripeEventId, stripe_object::StripeObject};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("not a Stripe event: {0}")]
    NotAnEvent(&'static str),
    #[error("event {event_type} lacks {field}")]
    MissingField {
        event_type: String,
        field: &'static str,
    },
}

/// Which of Stripe's two separate accounts a key, an event or an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeMode {
    Test,
    Live,
}

impl StripeMode {
    /// The mode of a secret or restricted key (`sk_live_…`, `rk_test_…`); None for
    /// anything else.
    pub fn of_key(key: &str) -> Option<StripeMode> {
        let live = ["sk_live_", "rk_live_"].iter().any(|p| key.starts_with(p));
        let test = ["sk_test_", "rk_test_"].iter().any(|p| key.starts_with(p));
        match (live, test) {
            (true, _) => Some(StripeMode::Live),
            (_, true) => Some(StripeMode::Test),
            _ => None,
        }
    }

    /// Reads the Stripe secret or restricted key `name` (required); a key of no known
    /// mode is a problem, since its prefix decides which mode's events are applied.
    pub fn read_key(env: &mut payments_service_kit::Reader<'_>, name: &str) -> SecretString {
        let key = env.secret(name);
        let given = !key.expose_secret().is_empty();
        if given && StripeMode::of_key(key.expose_secret()).is_none() {
            env.problem(format!(
                "{name} must start with sk_test_, sk_live_, rk_test_ or rk_live_ (its mode decides which events are applied)"
            ));
        }
        key
    }

    /// The mode an object's or event's `livemode` field states.
    pub fn of_livemode(livemode: bool) -> StripeMode {
        match livemode {
            true => StripeMode::Live,
            false => StripeMode::Test,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StripeMode::Test => "test",
            StripeMode::Live => "live",
        }
    }
}

/// A verified event's envelope, with the raw JSON kept for the inbox.
#[derive(Debug, Clone)]
pub struct StripeEvent {
    pub id: StripeEventId,
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub livemode: bool,
    pub api_version: Option<String>,
    pub payload: Value,
}

/// The event types [`StripeEvent::meaning`] acts on: what a webhook endpoint subscribes
/// to and what the catch-up pass keeps of `GET /v1/events` (it lists them unfiltered:
/// Stripe takes at most 20 types in one filter).
pub const ACTED_ON_TYPES: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.amount_capturable_updated",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.canceled",
    "payment_intent.payment_failed",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.voided",
    "invoice.payment_failed",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.dispute.closed",
    "payment_method.attached",
    "payment_method.detached",
];

/// What an event asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    Transaction {
        target: Target,
        signal: Signal,
        /// The object's currency (PaymentIntent, Invoice, Charge, Dispute), to refuse
        /// crediting at face value in another currency.
        currency: Option<String>,
        /// The card the PaymentIntent used, when the object says.
        payment_method: Option<String>,
        /// The charge behind a successful PaymentIntent, for later refunds and disputes.
        charge: Option<String>,
    },
    PaymentMethodAttached(CardDetails),
    PaymentMethodDetached {
        payment_method_id: String,
    },
    /// Stored and acknowledged; nothing to apply.
    Nothing,
}

impl StripeEvent {
    pub fn parse(raw: &[u8]) -> Result<Self, EventError> {
        let payload: Value =
            serde_json::from_slice(raw).map_err(|e| EventError::NotJson(e.to_string()))?;
        Self::from_value(payload)
    }

    pub fn from_value(payload: Value) -> Result<Self, EventError> {
        if !payload.is_object() {
            return Err(EventError::NotAnEvent("not a JSON object"));
        }
        if let Some(kind) = payload.get("object").and_then(Value::as_str)
            && kind != "event"
        {
            return Err(EventError::NotAnEvent("object is not \"event\""));
        }
        let id = payload
            .get("id")
            .and_then(Value::as_str)
            .ok_or(EventError::NotAnEvent("no id"))?;
        let id = StripeEventId::parse(id).map_err(|_| EventError::NotAnEvent("id is not evt_…"))?;
        let event_type = payload
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(EventError::NotAnEvent("no type"))?
            .to_owned();
        let created = payload
            .get("created")
            .and_then(Value::as_i64)
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(EventError::NotAnEvent("no created timestamp"))?;
        if payload
            .pointer("/data/object")
            .is_none_or(|o| !o.is_object())
        {
            return Err(EventError::NotAnEvent("no data.object"));
        }
        let livemode = payload
            .get("livemode")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let api_version = payload
            .get("api_version")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(StripeEvent {
            id,
            event_type,
            created,
            livemode,
            api_version,
            payload,
        })
    }

    /// `data.object`, present by construction.
    pub fn object(&self) -> &Value {
        self.payload.pointer("/data/object").unwrap_or(&Value::Null)
    }

    /// What the event asks of us. The type decides which rule applies; every field
    /// of the object is read by [`StripeObject`].
    pub fn meaning(&self) -> Result<Meaning, EventError> {
        let o = StripeObject::new(self.object());
        let missing = |field| EventError::MissingField {
            event_type: self.event_type.clone(),
            field,
        };
        let signal = match self.event_type.as_str() {
            "payment_intent.succeeded" | "invoice.paid" | "invoice.payment_succeeded" => {
                Signal::Succeeded
            }
            "payment_intent.amount_capturable_updated" => Signal::Authorized,
            "payment_intent.processing" => Signal::Processing,
            "payment_intent.requires_action" => Signal::RequiresAction,
            "payment_intent.canceled" | "invoice.voided" => Signal::Canceled,
            "payment_intent.payment_failed" => o.failure("last_payment_error"),
            "invoice.payment_failed" => o.failure("last_finalization_error"),
            "charge.refunded" => Signal::Refunded {
                refunds: o.refunds(),
                amount_refunded: Some(
                    o.amount("amount_refunded")
                        .ok_or_else(|| missing("amount_refunded"))?,
                ),
            },
            "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
                Signal::Refunded {
                    refunds: vec![o.refund().map_err(missing)?],
                    amount_refunded: None,
                }
            }
            "charge.dispute.created"
            | "charge.dispute.funds_withdrawn"
            | "charge.dispute.funds_reinstated"
            | "charge.dispute.closed" => match self.dispute(o).map_err(missing)? {
                Some(signal) => signal,
                // An inquiry, or a dispute whose funds have not moved: no money.
                None => return Ok(Meaning::Nothing),
            },
            "payment_method.attached" => {
                return Ok(Meaning::PaymentMethodAttached(
                    o.card().ok_or_else(|| missing("id"))?,
                ));
            }
            "payment_method.detached" => {
                let payment_method_id = o.id().ok_or_else(|| missing("id"))?.to_owned();
                return Ok(Meaning::PaymentMethodDetached { payment_method_id });
            }
            _ => return Ok(Meaning::Nothing),
        };
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Ok(Meaning::Transaction {
            target: o.target(),
            signal,
            currency: owned(o.currency()),
            payment_method: owned(o.payment_method()),
            charge: owned(o.charge()),
        })
    }

    /// A dispute's money, read from the event's type and the dispute's state; None
    /// when no funds moved (an inquiry, a chargeback whose withdrawal is still to
    /// come). The error names the missing field.
    fn dispute(&self, o: StripeObject<'_>) -> Result<Option<Signal>, &'static str> {
        let dispute_id = o.id().ok_or("id")?.to_owned();
        let amount = o.amount("amount").ok_or("amount")?;
        let (withdrawal, reversal) = o.dispute_funds();
        let status = o.status();
        let reinstated = self.event_type == "charge.dispute.funds_reinstated"
            || reversal
            || status == Some("won");
        let withdrawn = reinstated
            || self.event_type == "charge.dispute.funds_withdrawn"
            || withdrawal
            || status == Some("lost");
        Ok((withdrawn || reinstated).then_some(Signal::Dispute {
            dispute_id,
            amount,
            withdrawn,
            reinstated,
        }))
    }

    /// Where to look for our transaction.
    pub fn target(&self) -> Target {
        StripeObject::new(self.object()).target()
    }

    /// The account the event comes from.
    pub fn mode(&self) -> StripeMode {
        StripeMode::of_livemode(self.livemode)
    }
}

#[cfg(test)]
#[path = "stripe_event_tests.rs"]
mod tests;
