//! Stripe events as received: the envelope every API version shares, and what an
//! event means for us (a [`Signal`] for a transaction, or a payment-method change).
//!
//! Parsing is deliberately loose about the object's shape — real payloads from API
//! versions 2018 to today must all be accepted and stored — and strict only about the
//! envelope (`id`, `type`, `created`) and the few fields a rule needs.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Signal, StripeEventId, TransactionId};

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

/// How to find the transaction an event is about: our id first, then Stripe's ids.
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

/// The event types [`StripeEvent::meaning`] acts on: what a webhook endpoint subscribes
/// to and what the catch-up pass asks `GET /v1/events` for (at most 20: Stripe's limit).
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
    "charge.dispute.created",
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

    pub fn meaning(&self) -> Result<Meaning, EventError> {
        let o = self.object();
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
            "payment_intent.payment_failed" => failure(o.get("last_payment_error")),
            "invoice.payment_failed" => failure(o.get("last_finalization_error")),
            "charge.refunded" => Signal::Refunded {
                amount_refunded: o
                    .get("amount_refunded")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| missing("amount_refunded"))?,
            },
            "charge.dispute.created" | "charge.dispute.closed" => {
                let dispute_id = str_field(o, "id").ok_or_else(|| missing("id"))?;
                let amount = o
                    .get("amount")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| missing("amount"))?;
                if self.event_type == "charge.dispute.created" {
                    Signal::DisputeOpened { dispute_id, amount }
                } else {
                    match o.get("status").and_then(Value::as_str) {
                        Some("won") => Signal::DisputeClosed {
                            dispute_id,
                            amount,
                            won: true,
                        },
                        Some("lost") => Signal::DisputeClosed {
                            dispute_id,
                            amount,
                            won: false,
                        },
                        // warning_closed (an inquiry): no money moved.
                        _ => return Ok(Meaning::Nothing),
                    }
                }
            }
            "payment_method.attached" => {
                return Ok(Meaning::PaymentMethodAttached(
                    card(o).ok_or_else(|| missing("id"))?,
                ));
            }
            "payment_method.detached" => {
                let payment_method_id = str_field(o, "id").ok_or_else(|| missing("id"))?;
                return Ok(Meaning::PaymentMethodDetached { payment_method_id });
            }
            _ => return Ok(Meaning::Nothing),
        };
        Ok(Meaning::Transaction {
            target: self.target(),
            signal,
            currency: str_field(o, "currency"),
            payment_method: id_or_expanded(o.get("payment_method")),
            // Older API versions give the charge only in `charges.data`.
            charge: id_or_expanded(o.get("latest_charge"))
                .or_else(|| str_field(o.pointer("/charges/data/0")?, "id")),
        })
    }

    /// Where to look for our transaction.
    pub fn target(&self) -> Target {
        let o = self.object();
        let own_id = str_field(o, "id");
        let kind = o.get("object").and_then(Value::as_str).unwrap_or_default();
        let transaction_id = o
            .pointer("/metadata/transaction_id")
            .and_then(Value::as_str)
            .and_then(|s| TransactionId::parse(s).ok());
        let payment_intent = match kind {
            "payment_intent" => own_id.clone(),
            _ => id_or_expanded(o.get("payment_intent")),
        };
        let invoice = match kind {
            "invoice" => own_id.clone(),
            _ => id_or_expanded(o.get("invoice")),
        };
        let charge = match kind {
            "charge" => own_id,
            "dispute" => id_or_expanded(o.get("charge")),
            _ => None,
        };
        Target {
            transaction_id,
            payment_intent,
            invoice,
            charge,
        }
    }
}

fn str_field(o: &Value, key: &str) -> Option<String> {
    o.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A reference that is either an id or an expanded object with an `id`.
fn id_or_expanded(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(_) => v.and_then(|o| str_field(o, "id")),
        _ => None,
    }
}

fn failure(error: Option<&Value>) -> Signal {
    let error = error.unwrap_or(&Value::Null);
    let code = str_field(error, "decline_code")
        .or_else(|| str_field(error, "code"))
        .unwrap_or_else(|| "payment_failed".to_owned());
    let message = str_field(error, "message").unwrap_or_else(|| "The payment failed.".to_owned());
    Signal::Failed { code, message }
}

fn card(o: &Value) -> Option<CardDetails> {
    let card = o.get("card").unwrap_or(&Value::Null);
    Some(CardDetails {
        payment_method_id: str_field(o, "id")?,
        customer: id_or_expanded(o.get("customer")),
        brand: str_field(card, "brand").unwrap_or_default(),
        last4: str_field(card, "last4").unwrap_or_default(),
        fingerprint: str_field(card, "fingerprint").unwrap_or_default(),
    })
}

#[cfg(test)]
#[path = "stripe_event_tests.rs"]
mod tests;
