//! PaymentIntents: the object, create, update, retrieve, list and search. Confirmation
//! (cards, 3DS, declines) lives in `confirmation.rs`; capture and cancel in
//! `payment_intent_lifecycle.rs`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::confirmation::{self, ConfirmArgs};
use crate::resources::{customers, payment_methods};
use crate::store::{Store, newest_first, now, paginate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    RequiresCapture,
    Canceled,
    Succeeded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::RequiresPaymentMethod => "requires_payment_method",
            Status::RequiresConfirmation => "requires_confirmation",
            Status::RequiresAction => "requires_action",
            Status::RequiresCapture => "requires_capture",
            Status::Canceled => "canceled",
            Status::Succeeded => "succeeded",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentIntent {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub amount: i64,
    pub amount_capturable: i64,
    pub amount_received: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub description: Option<String>,
    pub receipt_email: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub payment_method: Option<String>,
    pub payment_method_types: Vec<String>,
    /// `automatic`, `automatic_async` or `manual`.
    pub capture_method: String,
    pub setup_future_usage: Option<String>,
    pub status: Status,
    pub client_secret: String,
    pub latest_charge: Option<String>,
    pub last_payment_error: Option<Value>,
    pub next_action: Option<Value>,
    pub canceled_at: Option<i64>,
    pub cancellation_reason: Option<String>,
}

impl PaymentIntent {
    pub fn manual_capture(&self) -> bool {
        self.capture_method == "manual"
    }

    /// The charge that holds the money, once the intent has succeeded.
    pub fn succeeded_charge(&self) -> Option<String> {
        if self.status == Status::Succeeded {
            self.latest_charge.clone()
        } else {
            None
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_received": self.amount_received,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": null,
            "canceled_at": self.canceled_at,
            "cancellation_reason": self.cancellation_reason,
            "capture_method": self.capture_method,
            "client_secret": self.client_secret,
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "next_action": self.next_action,
            "on_behalf_of": null,
            "payment_method": self.payment_method,
            "payment_method_types": self.payment_method_types,
            "processing": null,
            "receipt_email": self.receipt_email,
            "review": null,
            "setup_future_usage": self.setup_future_usage,
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": self.status.as_str(),
            "transfer_data": null,
            "transfer_group": null,
        })
    }
}

pub fn get<'a>(store: &'a Store, id: &str, param: &str) -> Result<&'a PaymentIntent, ApiError> {
    store
        .payment_intents
        .get(id)
        .ok_or_else(|| ApiError::missing("payment_intent", id, param))
}

pub fn get_mut<'a>(store: &'a mut Store, id: &str) -> Result<&'a mut PaymentIntent, ApiError> {
    store
        .payment_intents
        .get_mut(id)
        .ok_or_else(|| ApiError::missing("payment_intent", id, "intent"))
}

pub fn json(store: &Store, id: &str) -> ApiResult {
    Ok(get(store, id, "intent")?.to_json())
}

fn capture_method(params: &Params) -> Result<Option<String>, ApiError> {
    match params.str("capture_method") {
        None => Ok(None),
        Some(m @ ("automatic" | "automatic_async" | "manual")) => Ok(Some(m.to_owned())),
        Some(other) => Err(ApiError::invalid_param(
            "capture_method",
            format!("Invalid capture_method: {other}"),
        )),
    }
}

fn currency(params: &Params) -> Result<String, ApiError> {
    let currency = params.required_str("currency")?.to_ascii_lowercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiError::invalid_param(
            "currency",
            format!("Invalid currency: {currency}."),
        ));
    }
    Ok(currency)
}

/// Stripe's ceiling on a charge: eight digits of the smallest currency unit.
pub const MAX_AMOUNT: i64 = 99_999_999;

fn positive_amount(params: &Params) -> Result<i64, ApiError> {
    let amount = params.required_i64("amount")?;
    if amount < 1 {
        let mut error = ApiError::invalid_param("amount", "Amount must be at least 1.");
        error.code = Some("amount_too_small");
        return Err(error);
    }
    if amount > MAX_AMOUNT {
        let most = match params
            .str("currency")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("usd") | None => "$999,999.99".to_owned(),
            Some(other) => format!("{MAX_AMOUNT} {other} in its smallest unit"),
        };
        let mut error =
            ApiError::invalid_param("amount", format!("Amount must be no more than {most}"));
        error.code = Some("amount_too_large");
        return Err(error);
    }
    Ok(amount)
}

pub fn create(store: &mut Store, params: &Params) -> ApiResult {
    let amount = positive_amount(params)?;
    let currency = currency(params)?;
    if let Some(customer) = params.str("customer") {
        customers::get(store, customer, "customer")?;
    }
    let payment_method = match params.str("payment_method") {
        Some(pm) => Some(payment_methods::resolve(store, pm, "payment_method")?),
        None => None,
    };
    let mut metadata = BTreeMap::new();
    params.apply_metadata(&mut metadata)?;
    let mut types = params.str_list("payment_method_types");
    if types.is_empty() {
        types.push("card".to_owned());
    }
    let id = store.new_id("pi");
    let secret = store.random_string(25, false);
    let seq = store.next_seq();
    let intent = PaymentIntent {
        client_secret: format!("{id}_secret_{secret}"),
        id: id.clone(),
        seq,
        created: now(),
        amount,
        amount_capturable: 0,
        amount_received: 0,
        currency,
        customer: params.str("customer").map(str::to_owned),
        description: params.str("description").map(str::to_owned),
        receipt_email: params.str("receipt_email").map(str::to_owned),
        metadata,
        status: if payment_method.is_some() {
            Status::RequiresConfirmation
        } else {
            Status::RequiresPaymentMethod
        },
        payment_method,
        payment_method_types: types,
        capture_method: capture_method(params)?.unwrap_or_else(|| "automatic_async".to_owned()),
        setup_future_usage: params.str("setup_future_usage").map(str::to_owned),
        latest_charge: None,
        last_payment_error: None,
        next_action: None,
        canceled_at: None,
        cancellation_reason: None,
    };
    let json = intent.to_json();
    store.payment_intents.insert(id.clone(), intent);
    store.emit("payment_intent.created", json.clone(), None);
    if params.bool("confirm")?.unwrap_or(false) {
        let args = ConfirmArgs::from_params(params)?;
        return confirmation::confirm(
            store,
            &id,
            ConfirmArgs {
                payment_method: None,
                ..args
            },
        );
    }
    Ok(json)
}

pub fn update(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let intent = get(store, id, "intent")?;
    let editable = matches!(
        intent.status,
        Status::RequiresPaymentMethod | Status::RequiresConfirmation | Status::RequiresAction
    );
    let money_fields = [
        "amount",
        "currency",
        "customer",
        "payment_method",
        "capture_method",
    ];
    if !editable && money_fields.iter().any(|f| params.has(f)) {
        return Err(ApiError::unexpected_state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent's {} cannot be changed because it has a status of {}.",
                money_fields.join(", "),
                intent.status.as_str()
            ),
        ));
    }
    let amount = if params.has("amount") {
        Some(positive_amount(params)?)
    } else {
        None
    };
    let currency = if params.has("currency") {
        Some(currency(params)?)
    } else {
        None
    };
    if let Some(customer) = params.str("customer") {
        customers::get(store, customer, "customer")?;
    }
    let payment_method = match params.str("payment_method") {
        Some(pm) => Some(payment_methods::resolve(store, pm, "payment_method")?),
        None => None,
    };
    let capture = capture_method(params)?;
    let intent = get_mut(store, id)?;
    params.apply_metadata(&mut intent.metadata)?;
    if params.has("description") {
        intent.description = params.str("description").map(str::to_owned);
    }
    if params.has("receipt_email") {
        intent.receipt_email = params.str("receipt_email").map(str::to_owned);
    }
    intent.amount = amount.unwrap_or(intent.amount);
    intent.currency = currency.unwrap_or_else(|| intent.currency.clone());
    intent.capture_method = capture.unwrap_or_else(|| intent.capture_method.clone());
    if let Some(customer) = params.str("customer") {
        intent.customer = Some(customer.to_owned());
    }
    if let Some(pm) = payment_method {
        intent.payment_method = Some(pm);
        intent.status = Status::RequiresConfirmation;
    }
    Ok(intent.to_json())
}

pub fn list(store: &Store, params: &Params) -> ApiResult {
    let customer = params.str("customer");
    let items = store
        .payment_intents
        .values()
        .filter(|pi| customer.is_none() || pi.customer.as_deref() == customer)
        .map(|pi| (pi.seq, pi.id.clone(), pi.to_json()))
        .collect();
    paginate(newest_first(items), params, "/v1/payment_intents")
}

/// `GET /v1/payment_intents/search` by metadata, newest first.
pub fn search(store: &Store, params: &Params) -> ApiResult {
    let clauses = super::search::parse(params.required_str("query")?)?;
    let items = store
        .payment_intents
        .values()
        .filter(|pi| super::search::matches(&pi.metadata, &clauses))
        .map(|pi| (pi.seq, pi.id.clone(), pi.to_json()))
        .collect();
    Ok(super::search::result("/v1/payment_intents/search", items))
}
