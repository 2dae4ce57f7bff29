//! Stripe event payloads built for tests, shaped like the real ones (trimmed).

use payments_core::TransactionId;
use serde_json::{Value, json};

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// An event envelope around `object`.
pub fn event(event_type: &str, object: Value) -> Value {
    json!({
        "id": new_id("evt"),
        "object": "event",
        "api_version": "2025-04-30.basil",
        "created": super::helpers::now(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
        "data": { "object": object },
    })
}

pub fn event_id(event: &Value) -> String {
    event["id"].as_str().unwrap_or_default().to_owned()
}

fn metadata(tx: Option<TransactionId>) -> Value {
    match tx {
        Some(id) => json!({ "transaction_id": id.to_string() }),
        None => json!({}),
    }
}

/// A PaymentIntent as its events carry it.
pub struct Pi<'a> {
    pub id: &'a str,
    pub tx: Option<TransactionId>,
    pub amount: i64,
    pub currency: &'a str,
}

impl Pi<'_> {
    pub fn object(&self, status: &str) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": 0,
            "amount_received": if status == "succeeded" { self.amount } else { 0 },
            "capture_method": "automatic",
            "currency": self.currency,
            "customer": "cus_test",
            "last_payment_error": null,
            "latest_charge": format!("ch_{}", &self.id[3..]),
            "livemode": false,
            "metadata": metadata(self.tx),
            "payment_method": "pm_card_visa",
            "status": status,
        })
    }

    pub fn succeeded(&self) -> Value {
        event("payment_intent.succeeded", self.object("succeeded"))
    }

    pub fn requires_action(&self) -> Value {
        event(
            "payment_intent.requires_action",
            self.object("requires_action"),
        )
    }

    pub fn processing(&self) -> Value {
        event("payment_intent.processing", self.object("processing"))
    }

    pub fn canceled(&self) -> Value {
        event("payment_intent.canceled", self.object("canceled"))
    }

    pub fn payment_failed(&self) -> Value {
        let mut object = self.object("requires_payment_method");
        object["last_payment_error"] = json!({
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        });
        event("payment_intent.payment_failed", object)
    }

    /// A manual-capture hold placed (card validation).
    pub fn amount_capturable_updated(&self) -> Value {
        let mut object = self.object("requires_capture");
        object["capture_method"] = json!("manual");
        object["amount_capturable"] = json!(self.amount);
        event("payment_intent.amount_capturable_updated", object)
    }

    pub fn charge_id(&self) -> String {
        format!("ch_{}", &self.id[3..])
    }

    /// `charge.refunded` listing `refunds` (id, amount), all succeeded, as API versions
    /// before 2022-11-15 send it; `amount_refunded` is their sum.
    pub fn refunded(&self, refunds: &[(&str, i64)]) -> Value {
        let amount_refunded: i64 = refunds.iter().map(|(_, amount)| amount).sum();
        let listed: Vec<Value> = refunds
            .iter()
            .map(|(id, amount)| self.refund_object(id, *amount, "succeeded"))
            .collect();
        event(
            "charge.refunded",
            json!({
                "id": self.charge_id(),
                "object": "charge",
                "amount": self.amount,
                "amount_refunded": amount_refunded,
                "currency": self.currency,
                "metadata": metadata(self.tx),
                "payment_intent": self.id,
                "refunded": amount_refunded == self.amount,
                "refunds": {"object": "list", "data": listed, "has_more": false},
                "status": "succeeded",
            }),
        )
    }

    /// A `refund.*` event (`refund.created`, `refund.failed`…) of the refund `id`.
    pub fn refund(&self, event_type: &str, id: &str, amount: i64, status: &str) -> Value {
        event(event_type, self.refund_object(id, amount, status))
    }

    fn refund_object(&self, id: &str, amount: i64, status: &str) -> Value {
        json!({
            "id": id,
            "object": "refund",
            "amount": amount,
            "charge": self.charge_id(),
            "currency": self.currency,
            "payment_intent": self.id,
            "status": status,
        })
    }

    /// A dispute event; a chargeback (`needs_response`, `under_review`, `won`, `lost`)
    /// carries its withdrawal, a `won` one its reinstatement too, an inquiry neither.
    pub fn dispute(&self, event_type: &str, dispute: &str, status: &str) -> Value {
        let withdrawal = json!({"amount": -self.amount, "reporting_category": "dispute"});
        let reinstatement =
            json!({"amount": self.amount, "reporting_category": "dispute_reversal"});
        let balance_transactions = match status {
            s if s.starts_with("warning_") => json!([]),
            "won" => json!([withdrawal, reinstatement]),
            _ => json!([withdrawal]),
        };
        event(
            event_type,
            json!({
                "id": dispute,
                "object": "dispute",
                "amount": self.amount,
                "balance_transactions": balance_transactions,
                "charge": self.charge_id(),
                "currency": self.currency,
                "metadata": {},
                "payment_intent": self.id,
                "reason": "fraudulent",
                "status": status,
            }),
        )
    }
}

/// An invoice event (coupon top-ups are paid through invoices).
pub fn invoice(event_type: &str, id: &str, tx: Option<TransactionId>, status: &str) -> Value {
    event(
        event_type,
        json!({
            "id": id,
            "object": "invoice",
            "amount_due": 0,
            "amount_paid": 0,
            "currency": "usd",
            "customer": "cus_test",
            "metadata": metadata(tx),
            "paid": status == "paid",
            "payment_intent": null,
            "status": status,
        }),
    )
}

pub fn payment_method(
    event_type: &str,
    id: &str,
    customer: Option<&str>,
    fingerprint: &str,
) -> Value {
    event(
        event_type,
        json!({
            "id": id,
            "object": "payment_method",
            "billing_details": {},
            "card": {
                "brand": "visa",
                "exp_month": 12,
                "exp_year": 2034,
                "fingerprint": fingerprint,
                "last4": "4242",
            },
            "customer": customer,
            "livemode": false,
            "metadata": {},
            "type": "card",
        }),
    )
}
