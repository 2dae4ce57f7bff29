//! How a dispute opens and moves on, with the events Stripe sends at each step:
//!
//! - opened: `charge.dispute.created`; a chargeback then `charge.dispute.funds_withdrawn`
//!   (its withdrawal is already in `balance_transactions` of the created event);
//! - evidence (`POST /v1/disputes/{id}`): `charge.dispute.updated`; submitted, the status
//!   goes to `under_review` / `warning_under_review`, and in test mode the evidence text
//!   `winning_evidence` or `losing_evidence` decides it at once, as Stripe's test mode does;
//! - accepted (`POST /v1/disputes/{id}/close`): `lost`, or `warning_closed` for an inquiry,
//!   with `charge.dispute.closed`;
//! - decided by the bank (test routes): won is `charge.dispute.closed` then
//!   `charge.dispute.funds_reinstated`; lost is `charge.dispute.closed`;
//! - an inquiry escalated into a chargeback: `charge.dispute.updated` (to `needs_response`)
//!   then `charge.dispute.funds_withdrawn`.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::cards::Aftermath;
use crate::resources::charges;
use crate::resources::customers::changed_fields;
use crate::resources::disputes::{
    BalanceTransaction, DISPUTE_FEE, Dispute, EVIDENCE_FIELDS, Status, get, get_mut,
};
use crate::store::{Store, now};

/// What the cardholder's bank opens.
#[derive(Debug, Clone)]
pub struct Opening {
    pub inquiry: bool,
    /// Defaults to the captured amount.
    pub amount: Option<i64>,
    pub reason: String,
}

impl Opening {
    /// `inquiry=true`, `amount`, `reason` (default `fraudulent`), as the test route takes them.
    pub fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            inquiry: params.bool("inquiry")?.unwrap_or(false),
            amount: params.i64("amount")?,
            reason: params.str("reason").unwrap_or("fraudulent").to_owned(),
        })
    }
}

/// The cardholder disputes a captured charge. A charge can be disputed several times.
pub fn open(store: &mut Store, charge_id: &str, opening: &Opening) -> ApiResult {
    let charge = charges::get(store, charge_id, "charge")?;
    if !charge.succeeded() || !charge.captured {
        return Err(ApiError::invalid(
            "Only a successful, captured charge can be disputed.",
        ));
    }
    let captured = charge.amount_captured;
    let amount = opening.amount.unwrap_or(captured);
    if !(1..=captured).contains(&amount) {
        return Err(ApiError::invalid_param(
            "amount",
            format!("A dispute's amount must be between 1 and the captured amount ({captured})."),
        ));
    }
    let (payment_intent, currency) = (charge.payment_intent.clone(), charge.currency.clone());
    let brand = charge.card.brand.to_owned();
    let id = store.new_id("dp");
    let seq = store.next_seq();
    let mut dispute = Dispute {
        id: id.clone(),
        seq,
        created: now(),
        amount,
        charge: charge_id.to_owned(),
        payment_intent,
        currency,
        reason: opening.reason.clone(),
        status: if opening.inquiry {
            Status::WarningNeedsResponse
        } else {
            Status::NeedsResponse
        },
        brand,
        metadata: Default::default(),
        evidence: Default::default(),
        submission_count: 0,
        balance_transactions: Vec::new(),
    };
    if !opening.inquiry {
        dispute
            .balance_transactions
            .push(withdrawal(store, &dispute));
    }
    if let Some(charge) = store.charges.get_mut(charge_id) {
        charge.disputed = true;
    }
    let json = dispute.to_json();
    store.disputes.insert(id, dispute);
    store.emit("charge.dispute.created", json.clone(), None);
    if !opening.inquiry {
        store.emit("charge.dispute.funds_withdrawn", json.clone(), None);
    }
    Ok(json)
}

/// What a dispute card does once its charge is captured.
pub fn after_capture(store: &mut Store, charge_id: &str) -> Result<(), ApiError> {
    let card = charges::get(store, charge_id, "charge")?.card;
    let openings = match card.aftermath {
        Aftermath::Disputed { inquiry, reason } => vec![(inquiry, reason)],
        Aftermath::DisputedTwice => vec![(false, "fraudulent"), (false, "fraudulent")],
        Aftermath::Nothing | Aftermath::RefundsFail => Vec::new(),
    };
    for (inquiry, reason) in openings {
        let opening = Opening {
            inquiry,
            amount: None,
            reason: reason.to_owned(),
        };
        open(store, charge_id, &opening)?;
    }
    Ok(())
}

fn withdrawal(store: &mut Store, dispute: &Dispute) -> BalanceTransaction {
    BalanceTransaction {
        id: store.new_id("txn"),
        created: now(),
        amount: -dispute.amount,
        fee: DISPUTE_FEE,
        currency: dispute.currency.clone(),
        description: format!("Chargeback withdrawal for {}", dispute.charge),
        reporting_category: "dispute",
    }
}

fn reinstatement(store: &mut Store, dispute: &Dispute) -> BalanceTransaction {
    BalanceTransaction {
        id: store.new_id("txn"),
        created: now(),
        amount: dispute.amount,
        fee: 0,
        currency: dispute.currency.clone(),
        description: format!("Chargeback reversal for {}", dispute.charge),
        reporting_category: "dispute_reversal",
    }
}

fn already_closed(dispute: &Dispute) -> ApiError {
    ApiError::invalid(format!(
        "This dispute is already closed ({}).",
        dispute.status.as_str()
    ))
}

/// `POST /v1/disputes/{id}`: `metadata`, `evidence[…]`, `submit` (default `true`).
pub fn update(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let evidence = params.nested("evidence");
    let submit = params.bool("submit")?.unwrap_or(true) && evidence.is_some();
    let fields = evidence_fields(evidence.as_ref())?;
    let dispute = get(store, id)?;
    if evidence.is_some() {
        if dispute.status.is_closed() {
            return Err(already_closed(dispute));
        }
        if matches!(
            dispute.status,
            Status::UnderReview | Status::WarningUnderReview
        ) {
            return Err(ApiError::invalid(
                "This dispute's evidence has already been submitted and can no longer be changed.",
            ));
        }
    }
    let before = dispute.to_json();
    let dispute = get_mut(store, id)?;
    params.apply_metadata(&mut dispute.metadata)?;
    for (field, value) in fields {
        if value.is_empty() {
            dispute.evidence.remove(&field);
        } else {
            dispute.evidence.insert(field, value);
        }
    }
    if submit {
        dispute.submission_count += 1;
        dispute.status = if dispute.status.is_inquiry() {
            Status::WarningUnderReview
        } else {
            Status::UnderReview
        };
    }
    let verdict = dispute.evidence.get("uncategorized_text").cloned();
    let inquiry = dispute.status.is_inquiry();
    let after = dispute.to_json();
    store.emit(
        "charge.dispute.updated",
        after.clone(),
        Some(changed_fields(&before, &after)),
    );
    match verdict.as_deref() {
        Some("winning_evidence") if submit => decide(store, id, true),
        Some("losing_evidence") if submit && inquiry => escalate(store, id),
        Some("losing_evidence") if submit => decide(store, id, false),
        _ => Ok(after),
    }
}

/// The `evidence[…]` text fields given (an empty value clears one); unknown ones are refused.
fn evidence_fields(evidence: Option<&Params>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(Value::Object(given)) = evidence.map(|e| &e.0) else {
        return Ok(Vec::new());
    };
    let mut fields = Vec::new();
    for (field, value) in given {
        if field == "enhanced_evidence" {
            continue;
        }
        if !EVIDENCE_FIELDS.contains(&field.as_str()) {
            let param = format!("evidence[{field}]");
            let mut error =
                ApiError::invalid_param(&param, format!("Received unknown parameter: {param}"));
            error.code = Some("parameter_unknown");
            return Err(error);
        }
        fields.push((field.clone(), value.as_str().unwrap_or_default().to_owned()));
    }
    Ok(fields)
}

/// `POST /v1/disputes/{id}/close`: the merchant accepts it. A chargeback is `lost`, an
/// inquiry `warning_closed`.
pub fn close(store: &mut Store, id: &str) -> ApiResult {
    let dispute = get(store, id)?;
    let closed = match dispute.status {
        Status::NeedsResponse | Status::UnderReview => Status::Lost,
        Status::WarningNeedsResponse | Status::WarningUnderReview => Status::WarningClosed,
        Status::WarningClosed | Status::Won | Status::Lost => return Err(already_closed(dispute)),
    };
    set_status(store, id, closed, "charge.dispute.closed")
}

/// The bank decides (test routes): a chargeback is won (its amount reinstated) or lost; an
/// inquiry can only be "won" (`warning_closed`): it is lost by escalating it.
pub fn decide(store: &mut Store, id: &str, won: bool) -> ApiResult {
    let dispute = get(store, id)?;
    if dispute.status.is_closed() {
        return Err(already_closed(dispute));
    }
    if dispute.status.is_inquiry() {
        if !won {
            return Err(ApiError::invalid_param(
                "outcome",
                "An inquiry is not lost: it escalates into a chargeback (POST /test/disputes/{id}/escalate), which can then be lost.",
            ));
        }
        return set_status(store, id, Status::WarningClosed, "charge.dispute.closed");
    }
    if !won {
        return set_status(store, id, Status::Lost, "charge.dispute.closed");
    }
    let snapshot = dispute.clone();
    let transaction = reinstatement(store, &snapshot);
    let closed = transition(
        store,
        id,
        Status::Won,
        Some(transaction),
        "charge.dispute.closed",
    )?;
    store.emit("charge.dispute.funds_reinstated", closed.clone(), None);
    Ok(closed)
}

/// An inquiry becomes a chargeback (test route): `needs_response`, funds withdrawn.
pub fn escalate(store: &mut Store, id: &str) -> ApiResult {
    let dispute = get(store, id)?;
    if !matches!(
        dispute.status,
        Status::WarningNeedsResponse | Status::WarningUnderReview
    ) {
        return Err(ApiError::invalid(format!(
            "Only an open inquiry can escalate into a chargeback; this dispute is {}.",
            dispute.status.as_str()
        )));
    }
    let snapshot = dispute.clone();
    let transaction = withdrawal(store, &snapshot);
    let escalated = transition(
        store,
        id,
        Status::NeedsResponse,
        Some(transaction),
        "charge.dispute.updated",
    )?;
    store.emit("charge.dispute.funds_withdrawn", escalated.clone(), None);
    Ok(escalated)
}

/// Moves a dispute to `status` and emits `event_type` with what changed.
fn set_status(store: &mut Store, id: &str, status: Status, event_type: &str) -> ApiResult {
    transition(store, id, status, None, event_type)
}

/// `set_status` that also records a movement of money.
fn transition(
    store: &mut Store,
    id: &str,
    status: Status,
    money: Option<BalanceTransaction>,
    event_type: &str,
) -> ApiResult {
    let dispute = get_mut(store, id)?;
    let before = dispute.to_json();
    dispute.status = status;
    dispute.balance_transactions.extend(money);
    let after = dispute.to_json();
    store.emit(
        event_type,
        after.clone(),
        Some(changed_fields(&before, &after)),
    );
    Ok(after)
}
