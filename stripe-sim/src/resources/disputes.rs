//! Disputes: the object (with the balance transactions that show the money it moved), retrieve
//! and list. How a dispute opens and moves on lives in `dispute_lifecycle.rs`.
//!
//! Two kinds share the object, as on Stripe: an **inquiry** (`warning_needs_response`,
//! `warning_under_review`, `warning_closed`) withdraws nothing; a **chargeback**
//! (`needs_response`, `under_review`, `won`, `lost`) withdraws the disputed amount plus a
//! dispute fee when it opens, and gives the amount back if it is won.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::store::{Store, newest_first, paginate};

/// Stripe's dispute fee in the test account's schedule (minor units of the dispute's currency).
pub const DISPUTE_FEE: i64 = 1500;

/// The evidence fields Stripe knows; the file ones take a file id.
pub const EVIDENCE_FIELDS: &[&str] = &[
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    WarningNeedsResponse,
    WarningUnderReview,
    WarningClosed,
    NeedsResponse,
    UnderReview,
    Won,
    Lost,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::WarningNeedsResponse => "warning_needs_response",
            Status::WarningUnderReview => "warning_under_review",
            Status::WarningClosed => "warning_closed",
            Status::NeedsResponse => "needs_response",
            Status::UnderReview => "under_review",
            Status::Won => "won",
            Status::Lost => "lost",
        }
    }

    /// An inquiry's statuses: no money has moved.
    pub fn is_inquiry(self) -> bool {
        matches!(
            self,
            Status::WarningNeedsResponse | Status::WarningUnderReview | Status::WarningClosed
        )
    }

    pub fn is_closed(self) -> bool {
        matches!(self, Status::WarningClosed | Status::Won | Status::Lost)
    }
}

/// One movement of the account's balance caused by a dispute.
#[derive(Debug, Clone)]
pub struct BalanceTransaction {
    pub id: String,
    pub created: i64,
    /// Negative for the withdrawal, positive for the reinstatement.
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    pub description: String,
    pub reporting_category: &'static str,
}

impl BalanceTransaction {
    pub fn to_json(&self, source: &str) -> Value {
        let fee_details: Vec<Value> = if self.fee == 0 {
            Vec::new()
        } else {
            vec![json!({
                "amount": self.fee, "application": null, "currency": self.currency,
                "description": "Dispute fee", "type": "stripe_fee",
            })]
        };
        json!({
            "id": self.id,
            "object": "balance_transaction",
            "amount": self.amount,
            "available_on": self.created,
            "balance_type": "payments",
            "created": self.created,
            "currency": self.currency,
            "description": self.description,
            "exchange_rate": null,
            "fee": self.fee,
            "fee_details": fee_details,
            "net": self.amount - self.fee,
            "reporting_category": self.reporting_category,
            "source": source,
            "status": "available",
            "type": "adjustment",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Dispute {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub amount: i64,
    pub charge: String,
    pub payment_intent: String,
    pub currency: String,
    pub reason: String,
    pub status: Status,
    /// The card brand, for `payment_method_details`.
    pub brand: String,
    pub metadata: BTreeMap<String, String>,
    /// Evidence fields set so far.
    pub evidence: BTreeMap<String, String>,
    pub submission_count: u64,
    pub balance_transactions: Vec<BalanceTransaction>,
}

impl Dispute {
    /// The network's reason code, as Visa reports it.
    fn network_reason_code(&self) -> Option<&'static str> {
        match (self.reason.as_str(), self.status.is_inquiry()) {
            ("fraudulent", true) => Some("10"),
            ("fraudulent", false) => Some("10.4"),
            ("product_not_received", _) => Some("13.1"),
            ("duplicate", _) => Some("12.6"),
            ("subscription_canceled", _) => Some("13.2"),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut evidence: Map<String, Value> = EVIDENCE_FIELDS
            .iter()
            .map(|field| {
                let value = self.evidence.get(*field).map_or(Value::Null, |v| json!(v));
                ((*field).to_owned(), value)
            })
            .collect();
        evidence.insert("enhanced_evidence".to_owned(), json!({}));
        let transactions: Vec<Value> = self
            .balance_transactions
            .iter()
            .map(|t| t.to_json(&self.id))
            .collect();
        let case_type = if self.status.is_inquiry() {
            "inquiry"
        } else {
            "chargeback"
        };
        json!({
            "id": self.id,
            "object": "dispute",
            "amount": self.amount,
            "balance_transactions": transactions,
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "enhanced_eligibility_types": [],
            "evidence": evidence,
            "evidence_details": {
                "due_by": self.created + 7 * 24 * 3600,
                "enhanced_eligibility": {},
                "has_evidence": !self.evidence.is_empty(),
                "past_due": false,
                "submission_count": self.submission_count,
            },
            // An inquiry's charge can still be refunded (which ends it); a chargeback's cannot.
            "is_charge_refundable": self.status.is_inquiry(),
            "livemode": false,
            "metadata": self.metadata,
            "network_reason_code": self.network_reason_code(),
            "payment_intent": self.payment_intent,
            "payment_method_details": {
                "card": {
                    "brand": self.brand,
                    "case_type": case_type,
                    "network": self.brand,
                    "network_reason_code": self.network_reason_code(),
                },
                "type": "card",
            },
            "reason": self.reason,
            "status": self.status.as_str(),
        })
    }
}

pub fn get<'a>(store: &'a Store, id: &str) -> Result<&'a Dispute, ApiError> {
    store
        .disputes
        .get(id)
        .ok_or_else(|| ApiError::missing("dispute", id, "dispute"))
}

pub fn get_mut<'a>(store: &'a mut Store, id: &str) -> Result<&'a mut Dispute, ApiError> {
    store
        .disputes
        .get_mut(id)
        .ok_or_else(|| ApiError::missing("dispute", id, "dispute"))
}

pub fn retrieve(store: &Store, id: &str) -> ApiResult {
    Ok(get(store, id)?.to_json())
}

/// `GET /v1/disputes`, newest first, optionally `charge=…`, `payment_intent=…`,
/// `created[gt|gte|lt|lte]`.
pub fn list(store: &Store, params: &Params) -> ApiResult {
    let charge = params.str("charge");
    let payment_intent = params.str("payment_intent");
    let created = crate::resources::events::created_filter(params)?;
    let items = store
        .disputes
        .values()
        .filter(|d| charge.is_none_or(|c| d.charge == c))
        .filter(|d| payment_intent.is_none_or(|pi| d.payment_intent == pi))
        .filter(|d| created(d.created))
        .map(|d| (d.seq, d.id.clone(), d.to_json()))
        .collect();
    paginate(newest_first(items), params, "/v1/disputes")
}
