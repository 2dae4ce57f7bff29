//! Charges, made by PaymentIntents. Refunds live in `refunds.rs`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::cards::TestCard;
use crate::resources::refunds::Refund;
use crate::store::{Store, now, paginate};

/// A failed charge's reason.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    pub decline_code: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Charge {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub amount: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub captured: bool,
    pub currency: String,
    pub customer: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub payment_intent: String,
    pub payment_method: String,
    pub card: TestCard,
    pub exp_year: i64,
    pub failure: Option<Failure>,
    pub refunds: Vec<String>,
    pub disputed: bool,
}

impl Charge {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    pub fn to_json(&self, store: &Store) -> Value {
        let refunds: Vec<Value> = self
            .refunds
            .iter()
            .filter_map(|id| store.refunds.get(id))
            .map(Refund::to_json)
            .collect();
        let outcome = match &self.failure {
            None => json!({
                "network_status": "approved_by_network", "reason": null, "risk_level": "normal",
                "risk_score": 20, "seller_message": "Payment complete.", "type": "authorized",
            }),
            Some(failure) => json!({
                "network_status": "declined_by_network", "reason": failure.decline_code, "risk_level": "normal",
                "risk_score": 20, "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }),
        };
        json!({
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "balance_transaction": null,
            "billing_details": {"address": null, "email": null, "name": null, "phone": null},
            "captured": self.captured,
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "disputed": self.disputed,
            "failure_code": self.failure.as_ref().map(|f| f.code.clone()),
            "failure_message": self.failure.as_ref().map(|f| f.message.clone()),
            "livemode": false,
            "metadata": self.metadata,
            "outcome": outcome,
            "paid": self.succeeded(),
            "payment_intent": self.payment_intent,
            "payment_method": self.payment_method,
            "payment_method_details": self.card.charge_details(self.exp_year),
            "receipt_url": null,
            "refunded": self.amount > 0 && self.amount_refunded >= self.amount,
            "refunds": {"object": "list", "data": refunds, "has_more": false, "url": format!("/v1/charges/{}/refunds", self.id)},
            "status": if self.succeeded() { "succeeded" } else { "failed" },
        })
    }
}

/// The charge a PaymentIntent attempt produces.
pub struct NewCharge {
    pub amount: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub payment_intent: String,
    pub payment_method: String,
    pub captured: bool,
    pub failure: Option<Failure>,
}

pub fn create(store: &mut Store, new: NewCharge) -> Result<String, ApiError> {
    let pm = crate::resources::payment_methods::get(store, &new.payment_method, "payment_method")?;
    let (card, exp_year) = (pm.card, pm.exp_year);
    let id = store.new_id("ch");
    let seq = store.next_seq();
    let succeeded = new.failure.is_none();
    let charge = Charge {
        id: id.clone(),
        seq,
        created: now(),
        amount: new.amount,
        amount_captured: if new.captured && succeeded {
            new.amount
        } else {
            0
        },
        amount_refunded: 0,
        captured: new.captured && succeeded,
        currency: new.currency,
        customer: new.customer,
        description: new.description,
        metadata: new.metadata,
        payment_intent: new.payment_intent,
        payment_method: new.payment_method,
        card,
        exp_year,
        failure: new.failure,
        refunds: Vec::new(),
        disputed: false,
    };
    let json = charge.to_json(store);
    store.charges.insert(id.clone(), charge);
    store.emit(
        if succeeded {
            "charge.succeeded"
        } else {
            "charge.failed"
        },
        json,
        None,
    );
    Ok(id)
}

pub fn get<'a>(store: &'a Store, id: &str, param: &str) -> Result<&'a Charge, ApiError> {
    store
        .charges
        .get(id)
        .ok_or_else(|| ApiError::missing("charge", id, param))
}

pub fn retrieve(store: &Store, id: &str) -> ApiResult {
    Ok(get(store, id, "id")?.to_json(store))
}

/// Adds `amount` to a charge's `amount_refunded` and emits `charge.refunded`.
pub fn record_refund(
    store: &mut Store,
    charge_id: &str,
    amount: i64,
    refund_id: Option<String>,
) -> Result<(), ApiError> {
    let before = get(store, charge_id, "charge")?.to_json(store);
    if let Some(charge) = store.charges.get_mut(charge_id) {
        charge.amount_refunded += amount;
        charge.refunds.extend(refund_id);
    }
    let after = get(store, charge_id, "charge")?.to_json(store);
    let previous =
        json!({"amount_refunded": before["amount_refunded"], "refunded": before["refunded"]});
    store.emit("charge.refunded", after, Some(previous));
    Ok(())
}

/// `GET /v1/charges`, optionally `payment_intent=…` or `customer=…`.
pub fn list(store: &Store, params: &Params) -> ApiResult {
    let payment_intent = params.str("payment_intent");
    let customer = params.str("customer");
    let items = store
        .charges
        .values()
        .filter(|c| payment_intent.is_none_or(|pi| c.payment_intent == pi))
        .filter(|c| customer.is_none_or(|cus| c.customer.as_deref() == Some(cus)))
        .map(|c| (c.seq, c.id.clone(), c.to_json(store)))
        .collect();
    paginate(crate::store::newest_first(items), params, "/v1/charges")
}
