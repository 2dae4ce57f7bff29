//! An invoice's life after its draft: finalize (a $0 invoice is paid there and then, as Stripe
//! does), pay with a card through a PaymentIntent, or void.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::confirmation::{self, ConfirmArgs};
use crate::resources::invoices::{InvoiceStatus, get, get_mut, json};
use crate::resources::payment_intents::{self, Status};
use crate::resources::{invoice_items, invoice_payments, payment_intent_lifecycle};
use crate::store::{Store, now};

fn require_status(
    store: &Store,
    id: &str,
    allowed: InvoiceStatus,
    action: &str,
) -> Result<(), ApiError> {
    let status = get(store, id)?.status;
    if status == allowed {
        return Ok(());
    }
    let code = if status == InvoiceStatus::Paid && action == "pay" {
        "invoice_not_editable"
    } else {
        "status_transition_invalid"
    };
    Err(ApiError::invalid_request(
        code,
        format!(
            "You can only {action} an invoice with a status of {}; {id} is {}.",
            allowed.as_str(),
            status.as_str()
        ),
    ))
}

pub fn finalize(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    require_status(store, id, InvoiceStatus::Draft, "finalize")?;
    invoice_items::redeem(store, id)?;
    let auto_advance = params.bool("auto_advance")?;
    let customer = get(store, id)?.customer.clone();
    let prefix: String = customer
        .trim_start_matches("cus_")
        .chars()
        .take(8)
        .collect::<String>()
        .to_uppercase();
    let sequence = store
        .invoices
        .values()
        .filter(|i| i.customer == customer && i.number.is_some())
        .count()
        + 1;
    let invoice = get_mut(store, id)?;
    invoice.status = InvoiceStatus::Open;
    invoice.finalized_at = Some(now());
    invoice.number = Some(format!("{prefix}-{sequence:04}"));
    if let Some(auto_advance) = auto_advance {
        invoice.auto_advance = auto_advance;
    }
    let due = json(store, id)?["amount_due"].as_i64().unwrap_or(0);
    if due > 0 {
        // The default payment and its PaymentIntent, made at finalization as on Stripe.
        invoice_payments::open_payment(store, id)?;
    }
    let finalized = json(store, id)?;
    store.emit(
        "invoice.finalized",
        finalized.clone(),
        Some(json!({"status": "draft"})),
    );
    if due == 0 {
        return mark_paid(store, id, 0);
    }
    Ok(finalized)
}

fn mark_paid(store: &mut Store, id: &str, amount: i64) -> ApiResult {
    invoice_payments::settle(store, id, Some(amount));
    let invoice = get_mut(store, id)?;
    invoice.status = InvoiceStatus::Paid;
    invoice.paid_at = Some(now());
    invoice.amount_paid = amount;
    let paid = json(store, id)?;
    let previous = json!({"status": "open", "amount_paid": 0, "amount_remaining": amount});
    store.emit("invoice.paid", paid.clone(), Some(previous.clone()));
    store.emit("invoice.payment_succeeded", paid.clone(), Some(previous));
    Ok(paid)
}

/// `POST /v1/invoices/{id}/pay`: `payment_method`, else the invoice's or the customer's default;
/// `paid_out_of_band=true` marks it paid without charging.
pub fn pay(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    require_status(store, id, InvoiceStatus::Open, "pay")?;
    let invoice_json = json(store, id)?;
    let amount = invoice_json["amount_remaining"].as_i64().unwrap_or(0);
    if params.bool("paid_out_of_band")?.unwrap_or(false) || amount == 0 {
        cancel_payments(store, id)?;
        return mark_paid(store, id, amount);
    }
    let invoice = get(store, id)?.clone();
    let payment_method = params
        .str("payment_method")
        .map(str::to_owned)
        .or(invoice.default_payment_method.clone())
        .or_else(|| store.customers.get(&invoice.customer).and_then(|c| c.default_payment_method.clone()))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Cannot charge a customer that has no active payment method: set `payment_method` or the customer's `invoice_settings[default_payment_method]` ({}).",
                invoice.customer
            ))
        })?;
    let mut intent = invoice_payments::open_payment(store, id)?;
    if payment_intents::get(store, &intent, "payment_intent")?.status == Status::Canceled {
        // Its PaymentIntent was canceled from outside: a new attempt needs a new one.
        invoice_payments::settle(store, id, None);
        intent = invoice_payments::open_payment(store, id)?;
    }
    get_mut(store, id)?.attempt_count += 1;
    let args = ConfirmArgs {
        payment_method: Some(payment_method),
        // Invoices are paid off-session unless told otherwise, as on Stripe.
        off_session: params.bool("off_session")?.unwrap_or(true),
        error_on_requires_action: false,
        return_url: None,
    };
    match confirmation::confirm(store, &intent, args) {
        Ok(pi) if pi["status"] == "succeeded" => mark_paid(store, id, amount),
        Ok(_) => {
            let json = json(store, id)?;
            store.emit("invoice.payment_action_required", json.clone(), None);
            Err(ApiError::card(
                "invoice_payment_intent_requires_action",
                None,
                "This payment requires additional user action before it can be completed successfully.",
            )
            .with_extra("payment_intent", payment_intents::json(store, &intent)?))
        }
        Err(error) if error.status.as_u16() == 402 => {
            let json = json(store, id)?;
            store.emit(
                "invoice.payment_failed",
                json,
                Some(json!({"attempt_count": invoice.attempt_count})),
            );
            Err(error)
        }
        Err(error) => Err(error),
    }
}

/// Cancels the PaymentIntents of the invoice's open payments (those that can be) and the
/// payments themselves.
fn cancel_payments(store: &mut Store, id: &str) -> Result<(), ApiError> {
    let intents: Vec<String> = store
        .invoice_payments
        .values()
        .filter(|p| p.invoice == id && p.status == invoice_payments::Status::Open)
        .map(|p| p.payment_intent.clone())
        .collect();
    for pi in intents {
        let cancelable = payment_intents::get(store, &pi, "payment_intent").is_ok_and(|p| {
            matches!(
                p.status,
                Status::RequiresPaymentMethod
                    | Status::RequiresConfirmation
                    | Status::RequiresAction
            )
        });
        if cancelable {
            payment_intent_lifecycle::cancel(
                store,
                &pi,
                &Params(Value::Object(Default::default())),
            )?;
        }
    }
    invoice_payments::settle(store, id, None);
    Ok(())
}

/// `POST /v1/invoices/{id}/void`: an open invoice only (a draft is deleted instead, as on
/// Stripe); its payment is canceled.
pub fn void(store: &mut Store, id: &str) -> ApiResult {
    require_status(store, id, InvoiceStatus::Open, "void")?;
    cancel_payments(store, id)?;
    let invoice = get_mut(store, id)?;
    invoice.status = InvoiceStatus::Void;
    invoice.voided_at = Some(now());
    let voided = json(store, id)?;
    store.emit(
        "invoice.voided",
        voided.clone(),
        Some(json!({"status": "open"})),
    );
    Ok(voided)
}
