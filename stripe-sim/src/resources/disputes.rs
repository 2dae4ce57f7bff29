//! Disputes: opened and closed through the `/test/*` endpoints (the cardholder and the bank
//! are not on the API), retrieved through `/v1/disputes/{id}`.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::charges::get;
use crate::store::{Store, now};

#[derive(Debug, Clone)]
pub struct Dispute {
    pub id: String,
    pub created: i64,
    pub amount: i64,
    pub charge: String,
    pub payment_intent: String,
    pub currency: String,
    pub reason: String,
    pub status: String,
}

impl Dispute {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "dispute",
            "amount": self.amount,
            "balance_transactions": [],
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "enhanced_eligibility_types": [],
            "evidence": {"enhanced_evidence": {}},
            "evidence_details": {
                "due_by": self.created + 7 * 24 * 3600,
                "enhanced_eligibility": {},
                "has_evidence": false,
                "past_due": false,
                "submission_count": 0,
            },
            "is_charge_refundable": false,
            "livemode": false,
            "metadata": {},
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "status": self.status,
        })
    }
}

/// Test helper: the cardholder disputes a charge.
pub fn open_dispute(store: &mut Store, charge_id: &str, params: &Params) -> ApiResult {
    let charge = get(store, charge_id, "charge")?;
    if !charge.succeeded() {
        return Err(ApiError::invalid(
            "Only a successful charge can be disputed.",
        ));
    }
    let amount = params
        .i64("amount")?
        .unwrap_or(charge.amount_captured.max(charge.amount));
    let (payment_intent, currency) = (charge.payment_intent.clone(), charge.currency.clone());
    let dispute = Dispute {
        id: store.new_id("dp"),
        created: now(),
        amount,
        charge: charge_id.to_owned(),
        payment_intent,
        currency,
        reason: params.str("reason").unwrap_or("fraudulent").to_owned(),
        status: "needs_response".to_owned(),
    };
    if let Some(charge) = store.charges.get_mut(charge_id) {
        charge.disputed = true;
    }
    let json = dispute.to_json();
    store.disputes.insert(dispute.id.clone(), dispute);
    store.emit("charge.dispute.created", json.clone(), None);
    Ok(json)
}

/// Test helper: the bank decides a dispute, `outcome=won|lost`.
pub fn close_dispute(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let outcome = params.required_str("outcome")?;
    if outcome != "won" && outcome != "lost" {
        return Err(ApiError::invalid_param(
            "outcome",
            "outcome must be `won` or `lost`.",
        ));
    }
    let dispute = store
        .disputes
        .get_mut(id)
        .ok_or_else(|| ApiError::missing("dispute", id, "id"))?;
    if dispute.status == "won" || dispute.status == "lost" {
        return Err(ApiError::unexpected_state(
            "status_transition_invalid",
            format!("Dispute {id} is already closed."),
        ));
    }
    let previous = json!({"status": dispute.status});
    dispute.status = outcome.to_owned();
    let json = dispute.to_json();
    store.emit("charge.dispute.closed", json.clone(), Some(previous));
    Ok(json)
}
