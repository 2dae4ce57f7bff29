//! A PaymentIntent after confirmation: captured (all of it or part, the rest released),
//! or canceled (an authorization's hold released as a refund), with the events Stripe
//! sends for each.

use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::{charges, payment_intents};
use crate::store::{Store, now};

pub fn capture(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let intent = payment_intents::get(store, id, "intent")?;
    if intent.status != payment_intents::Status::RequiresCapture {
        return Err(ApiError::unexpected_state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
                intent.status.as_str()
            ),
        ));
    }
    let capturable = intent.amount_capturable;
    let amount = params.i64("amount_to_capture")?.unwrap_or(capturable);
    if amount < 1 || amount > capturable {
        let mut error = ApiError::invalid_param(
            "amount_to_capture",
            format!(
                "The amount to capture ({amount}) must be between 1 and the capturable amount ({capturable})."
            ),
        );
        error.code = Some("amount_too_large");
        return Err(error);
    }
    let charge_id = intent.latest_charge.clone().unwrap_or_default();
    let charge = charges::get(store, &charge_id, "charge")?;
    let previous_charge =
        json!({"amount_captured": charge.amount_captured, "captured": charge.captured});
    if let Some(charge) = store.charges.get_mut(&charge_id) {
        charge.captured = true;
        charge.amount_captured = amount;
        // The uncaptured rest is released, which Stripe reports as refunded.
        charge.amount_refunded = charge.amount - amount;
    }
    let charge_json = charges::get(store, &charge_id, "charge")?.to_json(store);
    store.emit("charge.captured", charge_json, Some(previous_charge));
    let intent = payment_intents::get_mut(store, id)?;
    intent.status = payment_intents::Status::Succeeded;
    intent.amount_received = amount;
    intent.amount_capturable = 0;
    let json = intent.to_json();
    let previous = json!({"status": "requires_capture", "amount_capturable": capturable, "amount_received": 0});
    store.emit("payment_intent.succeeded", json.clone(), Some(previous));
    super::dispute_lifecycle::after_capture(store, &charge_id)?;
    Ok(json)
}

pub fn cancel(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let reason = params.str("cancellation_reason");
    if let Some(reason) = reason
        && ![
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ]
        .contains(&reason)
    {
        return Err(ApiError::invalid_param(
            "cancellation_reason",
            format!("Invalid cancellation_reason: {reason}"),
        ));
    }
    let intent = payment_intents::get(store, id, "intent")?;
    let status = intent.status;
    if matches!(
        status,
        payment_intents::Status::Succeeded | payment_intents::Status::Canceled
    ) {
        return Err(ApiError::unexpected_state(
            "payment_intent_unexpected_state",
            format!(
                "You cannot cancel this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.",
                status.as_str()
            ),
        ));
    }
    if status == payment_intents::Status::RequiresCapture
        && let Some(charge) = intent.latest_charge.clone()
    {
        let amount = charges::get(store, &charge, "charge")?.amount;
        charges::record_refund(store, &charge, amount, None)?;
    }
    let intent = payment_intents::get_mut(store, id)?;
    intent.status = payment_intents::Status::Canceled;
    intent.canceled_at = Some(now());
    intent.cancellation_reason = reason.map(str::to_owned);
    intent.amount_capturable = 0;
    intent.next_action = None;
    let json = intent.to_json();
    store.emit(
        "payment_intent.canceled",
        json.clone(),
        Some(json!({"status": status.as_str()})),
    );
    Ok(json)
}
