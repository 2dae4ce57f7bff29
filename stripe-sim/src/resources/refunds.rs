//! Refunds: create, retrieve, list, and the asynchronous failure Stripe reports after a refund
//! was first `succeeded` (the `pm_card_refundFail` card, or the test route for any refund).
//!
//! Created: `charge.refunded` (the charge's `amount_refunded` grows) then `refund.created`.
//! Failed later: `charge.refund.updated`, `refund.updated` and `refund.failed` (the refund,
//! `status: failed` with a `failure_reason`), then `charge.updated`: the failed amount no
//! longer counts in the charge's `amount_refunded`, so it can be refunded again.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::cards::Aftermath;
use crate::resources::charges::{self, get as get_charge};
use crate::resources::customers::changed_fields;
use crate::store::{Store, newest_first, now, paginate};

/// The `failure_reason` values Stripe documents.
pub const FAILURE_REASONS: &[&str] = &[
    "charge_for_pending_refund_disputed",
    "declined",
    "expired_or_canceled_card",
    "insufficient_funds",
    "lost_or_stolen_card",
    "merchant_request",
    "unknown",
];

#[derive(Debug, Clone)]
pub struct Refund {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub amount: i64,
    pub charge: String,
    pub payment_intent: String,
    pub currency: String,
    pub reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Set once the refund has failed.
    pub failure: Option<RefundFailure>,
}

#[derive(Debug, Clone)]
pub struct RefundFailure {
    pub reason: String,
    /// The balance transaction that gave the money back to the account.
    pub balance_transaction: String,
}

impl Refund {
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "balance_transaction": null,
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "destination_details": {
                "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
                "type": "card",
            },
            "failure_balance_transaction": self.failure.as_ref().map(|f| f.balance_transaction.clone()),
            "failure_reason": self.failure.as_ref().map(|f| f.reason.clone()),
            "metadata": self.metadata,
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": if self.failed() { "failed" } else { "succeeded" },
            "transfer_reversal": null,
        })
    }
}

pub fn get<'a>(store: &'a Store, id: &str) -> Result<&'a Refund, ApiError> {
    store
        .refunds
        .get(id)
        .ok_or_else(|| ApiError::missing("refund", id, "refund"))
}

pub fn retrieve(store: &Store, id: &str) -> ApiResult {
    Ok(get(store, id)?.to_json())
}

/// The charge a refund request names: `charge`, or the successful charge of `payment_intent`.
fn charge_to_refund(store: &Store, params: &Params) -> Result<String, ApiError> {
    match (params.str("charge"), params.str("payment_intent")) {
        (Some(charge), _) => Ok(charge.to_owned()),
        (None, Some(pi)) => {
            let intent = crate::resources::payment_intents::get(store, pi, "payment_intent")?;
            intent.succeeded_charge().ok_or_else(|| {
                ApiError::invalid_request(
                    "charge_not_refundable",
                    format!(
                        "This PaymentIntent ({pi}) does not have a successful charge to refund."
                    ),
                )
            })
        }
        (None, None) => Err(ApiError::missing_param("payment_intent")),
    }
}

/// Refused while a chargeback holds the charge: its money is already with the cardholder.
fn refuse_if_charged_back(store: &Store, charge_id: &str) -> Result<(), ApiError> {
    let charged_back = store
        .disputes
        .values()
        .any(|d| d.charge == charge_id && !d.status.is_inquiry() && d.status.as_str() != "won");
    if charged_back {
        return Err(ApiError::invalid_request(
            "charge_disputed",
            format!("Charge {charge_id} has been charged back; it cannot be refunded."),
        ));
    }
    Ok(())
}

/// `POST /v1/refunds` with `payment_intent` or `charge`, optional `amount` (default: the rest).
pub fn create(store: &mut Store, params: &Params) -> ApiResult {
    let charge_id = charge_to_refund(store, params)?;
    let charge = get_charge(store, &charge_id, "charge")?;
    if !charge.succeeded() || !charge.captured {
        return Err(ApiError::invalid_request(
            "charge_not_refundable",
            format!("Charge {charge_id} has not been captured; cancel its PaymentIntent instead."),
        ));
    }
    let remaining = charge.amount - charge.amount_refunded;
    if remaining <= 0 {
        return Err(ApiError::invalid_request(
            "charge_already_refunded",
            format!("Charge {charge_id} has already been refunded."),
        ));
    }
    refuse_if_charged_back(store, &charge_id)?;
    let amount = params.i64("amount")?.unwrap_or(remaining);
    if amount <= 0 || amount > remaining {
        let mut error = ApiError::invalid_param(
            "amount",
            format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"
            ),
        );
        error.code = Some("amount_too_large");
        return Err(error);
    }
    if let Some(reason) = params.str("reason")
        && !["duplicate", "fraudulent", "requested_by_customer"].contains(&reason)
    {
        return Err(ApiError::invalid_param(
            "reason",
            format!("Invalid reason: {reason}"),
        ));
    }
    let mut metadata = BTreeMap::new();
    params.apply_metadata(&mut metadata)?;
    let fails = charge.card.aftermath == Aftermath::RefundsFail;
    let (payment_intent, currency) = (charge.payment_intent.clone(), charge.currency.clone());
    let refund = Refund {
        id: store.new_id("re"),
        seq: store.next_seq(),
        created: now(),
        amount,
        charge: charge_id.clone(),
        payment_intent,
        currency,
        reason: params.str("reason").map(str::to_owned),
        metadata,
        failure: None,
    };
    let json = refund.to_json();
    let id = refund.id.clone();
    store.refunds.insert(id.clone(), refund);
    charges::record_refund(store, &charge_id, amount, Some(id.clone()))?;
    store.emit("refund.created", json.clone(), None);
    if fails {
        fail(store, &id, "expired_or_canceled_card")?;
    }
    // The answer is the refund as created: `succeeded`, as Stripe answers before it fails.
    Ok(json)
}

/// The refund fails after the fact: its money goes back to the account, and the charge's
/// `amount_refunded` drops by its amount.
pub fn fail(store: &mut Store, id: &str, reason: &str) -> ApiResult {
    if !FAILURE_REASONS.contains(&reason) {
        return Err(ApiError::invalid_param(
            "failure_reason",
            format!(
                "failure_reason must be one of {}.",
                FAILURE_REASONS.join(", ")
            ),
        ));
    }
    let refund = get(store, id)?;
    if refund.failed() {
        return Err(ApiError::invalid(format!(
            "Refund {id} has already failed."
        )));
    }
    let (charge_id, amount) = (refund.charge.clone(), refund.amount);
    let before = refund.to_json();
    let balance_transaction = store.new_id("txn");
    let refund = store
        .refunds
        .get_mut(id)
        .ok_or_else(|| ApiError::missing("refund", id, "refund"))?;
    refund.failure = Some(RefundFailure {
        reason: reason.to_owned(),
        balance_transaction,
    });
    let after = refund.to_json();
    let previous = changed_fields(&before, &after);
    for event in ["charge.refund.updated", "refund.updated", "refund.failed"] {
        store.emit(event, after.clone(), Some(previous.clone()));
    }
    let charge_before = get_charge(store, &charge_id, "charge")?.to_json(store);
    if let Some(charge) = store.charges.get_mut(&charge_id) {
        charge.amount_refunded -= amount;
    }
    let charge_after = get_charge(store, &charge_id, "charge")?.to_json(store);
    let previous = json!({
        "amount_refunded": charge_before["amount_refunded"],
        "refunded": charge_before["refunded"],
    });
    store.emit("charge.updated", charge_after, Some(previous));
    Ok(after)
}

/// `GET /v1/refunds`, optionally `charge=…` or `payment_intent=…`.
pub fn list(store: &Store, params: &Params) -> ApiResult {
    let charge = params.str("charge");
    let payment_intent = params.str("payment_intent");
    let items = store
        .refunds
        .values()
        .filter(|r| charge.is_none_or(|c| r.charge == c))
        .filter(|r| payment_intent.is_none_or(|pi| r.payment_intent == pi))
        .map(|r| (r.seq, r.id.clone(), r.to_json()))
        .collect();
    paginate(newest_first(items), params, "/v1/refunds")
}
