//! Invoice payments: since API version 2025-03-31.basil an invoice no longer names its
//! PaymentIntent; its `payments` (an includable field, present only with `expand[]=payments`)
//! and `GET /v1/invoice_payments?invoice=…` do. Finalizing an invoice with an amount due creates
//! its default payment and PaymentIntent, as Stripe does; a failed attempt leaves the reason in
//! that PaymentIntent's `last_payment_error`, which is how a reader of `invoice.payment_failed`
//! finds the real failure:
//! `GET /v1/invoices/{id}?expand[]=payments.data.payment.payment_intent`.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::invoices::get as get_invoice;
use crate::resources::payment_intents;
use crate::store::{Store, newest_first, now, paginate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Paid,
    Canceled,
}

#[derive(Debug, Clone)]
pub struct InvoicePayment {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub invoice: String,
    pub amount_requested: i64,
    pub amount_paid: Option<i64>,
    pub currency: String,
    pub payment_intent: String,
    pub status: Status,
    pub paid_at: Option<i64>,
    pub canceled_at: Option<i64>,
}

impl InvoicePayment {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "invoice_payment",
            "amount_paid": self.amount_paid,
            "amount_requested": self.amount_requested,
            "created": self.created,
            "currency": self.currency,
            "invoice": self.invoice,
            "is_default": true,
            "livemode": false,
            "payment": {"type": "payment_intent", "payment_intent": self.payment_intent},
            "status": match self.status {
                Status::Open => "open",
                Status::Paid => "paid",
                Status::Canceled => "canceled",
            },
            "status_transitions": {"canceled_at": self.canceled_at, "paid_at": self.paid_at},
        })
    }
}

/// The open payment of an invoice, made with its PaymentIntent when there is none: at
/// finalization, or for a new attempt after the last PaymentIntent was canceled.
pub fn open_payment(store: &mut Store, invoice_id: &str) -> Result<String, ApiError> {
    if let Some(open) = store
        .invoice_payments
        .values()
        .find(|p| p.invoice == invoice_id && p.status == Status::Open)
    {
        return Ok(open.payment_intent.clone());
    }
    let invoice = get_invoice(store, invoice_id)?;
    let amount = invoice.to_json(store)["amount_remaining"]
        .as_i64()
        .unwrap_or(0);
    // Stripe does not copy the invoice's metadata onto the PaymentIntent it makes for it.
    let create = Params(json!({
        "amount": amount.to_string(),
        "currency": invoice.currency,
        "customer": invoice.customer,
        "description": format!("Payment for Invoice {}", invoice.number.clone().unwrap_or_default()),
    }));
    let currency = invoice.currency.clone();
    let intent = payment_intents::create(store, &create)?;
    let intent = intent["id"].as_str().unwrap_or_default().to_owned();
    let payment = InvoicePayment {
        id: store.new_id("inpay"),
        seq: store.next_seq(),
        created: now(),
        invoice: invoice_id.to_owned(),
        amount_requested: amount,
        amount_paid: None,
        currency,
        payment_intent: intent.clone(),
        status: Status::Open,
        paid_at: None,
        canceled_at: None,
    };
    store.invoice_payments.insert(payment.id.clone(), payment);
    Ok(intent)
}

/// The invoice's open payment was paid (`amount`) or canceled (`None`).
pub fn settle(store: &mut Store, invoice_id: &str, paid: Option<i64>) {
    let at = now();
    for payment in store.invoice_payments.values_mut() {
        if payment.invoice != invoice_id || payment.status != Status::Open {
            continue;
        }
        match paid {
            Some(amount) => {
                payment.status = Status::Paid;
                payment.amount_paid = Some(amount);
                payment.paid_at = Some(at);
            }
            None => {
                payment.status = Status::Canceled;
                payment.canceled_at = Some(at);
            }
        }
    }
}

fn of_invoice(store: &Store, invoice_id: &str) -> Vec<(u64, String, Value)> {
    store
        .invoice_payments
        .values()
        .filter(|p| p.invoice == invoice_id)
        .map(|p| (p.seq, p.id.clone(), p.to_json()))
        .collect()
}

/// An invoice's `payments`, when `expand[]` asks for them.
pub fn included(store: &Store, invoice_id: &str) -> Value {
    let data: Vec<Value> = newest_first(of_invoice(store, invoice_id))
        .into_iter()
        .map(|(_, payment)| payment)
        .collect();
    json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "url": format!("/v1/invoices/{invoice_id}/payments"),
    })
}

pub fn retrieve(store: &Store, id: &str) -> ApiResult {
    store
        .invoice_payments
        .get(id)
        .map(InvoicePayment::to_json)
        .ok_or_else(|| ApiError::missing("invoice_payment", id, "invoice_payment"))
}

/// `GET /v1/invoice_payments`: `invoice`, `payment[payment_intent]`, `status`.
pub fn list(store: &Store, params: &Params) -> ApiResult {
    let invoice = params.str("invoice");
    let payment = params.nested("payment");
    let intent = payment.as_ref().and_then(|p| p.str("payment_intent"));
    let status = params.str("status");
    let items = store
        .invoice_payments
        .values()
        .filter(|p| invoice.is_none_or(|i| p.invoice == i))
        .filter(|p| intent.is_none_or(|pi| p.payment_intent == pi))
        .map(|p| (p.seq, p.id.clone(), p.to_json()))
        .filter(|(_, _, json)| status.is_none_or(|s| json["status"] == s))
        .collect();
    paginate(newest_first(items), params, "/v1/invoice_payments")
}
