//! Customers: create, retrieve, update (email, name, metadata, default payment method).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::store::{Store, newest_first, now, paginate};

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub phone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub default_payment_method: Option<String>,
}

impl Customer {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "created": self.created,
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": self.description,
            "discount": null,
            "email": self.email,
            "invoice_prefix": self.id.trim_start_matches("cus_").chars().take(8).collect::<String>().to_uppercase(),
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": self.default_payment_method,
                "footer": null,
                "rendering_options": null,
            },
            "livemode": false,
            "metadata": self.metadata,
            "name": self.name,
            "next_invoice_sequence": 1,
            "phone": self.phone,
            "preferred_locales": [],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null,
        })
    }

    /// Fields shared by create and update.
    fn apply(&mut self, params: &Params) -> Result<(), ApiError> {
        for (name, field) in [
            ("email", &mut self.email),
            ("name", &mut self.name),
            ("description", &mut self.description),
            ("phone", &mut self.phone),
        ] {
            if params.has(name) {
                *field = params.str(name).map(str::to_owned);
            }
        }
        params.apply_metadata(&mut self.metadata)
    }
}

pub fn get<'a>(store: &'a Store, id: &str, param: &str) -> Result<&'a Customer, ApiError> {
    store
        .customers
        .get(id)
        .ok_or_else(|| ApiError::missing("customer", id, param))
}

pub fn create(store: &mut Store, params: &Params) -> ApiResult {
    let id = store.new_id("cus");
    let seq = store.next_seq();
    let mut customer = Customer {
        id: id.clone(),
        seq,
        created: now(),
        email: None,
        name: None,
        description: None,
        phone: None,
        metadata: BTreeMap::new(),
        default_payment_method: None,
    };
    customer.apply(params)?;
    store.customers.insert(id.clone(), customer);
    if let Some(pm) = params.str("payment_method") {
        crate::resources::payment_methods::attach(store, pm, &id)?;
    }
    let default_pm = params
        .nested("invoice_settings")
        .and_then(|s| s.str("default_payment_method").map(str::to_owned));
    if let Some(pm) = default_pm {
        set_default_payment_method(store, &id, &pm)?;
    }
    let json = get(store, &id, "id")?.to_json();
    store.emit("customer.created", json.clone(), None);
    Ok(json)
}

pub fn update(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let before = get(store, id, "id")?.to_json();
    let mut customer = get(store, id, "id")?.clone();
    customer.apply(params)?;
    store.customers.insert(id.to_owned(), customer);
    if let Some(settings) = params.nested("invoice_settings") {
        match settings.str("default_payment_method") {
            Some(pm) => set_default_payment_method(store, id, pm)?,
            None if settings.has("default_payment_method") => {
                if let Some(customer) = store.customers.get_mut(id) {
                    customer.default_payment_method = None;
                }
            }
            None => {}
        }
    }
    let after = get(store, id, "id")?.to_json();
    store.emit(
        "customer.updated",
        after.clone(),
        Some(changed_fields(&before, &after)),
    );
    Ok(after)
}

fn set_default_payment_method(store: &mut Store, customer: &str, pm: &str) -> Result<(), ApiError> {
    let param = "invoice_settings[default_payment_method]";
    let owner = store
        .payment_methods
        .get(pm)
        .ok_or_else(|| ApiError::missing("PaymentMethod", pm, param))?
        .customer
        .clone();
    if owner.as_deref() != Some(customer) {
        return Err(ApiError::invalid_param(
            param,
            format!(
                "The PaymentMethod {pm} must be attached to customer {customer} before it can be its default."
            ),
        ));
    }
    if let Some(customer) = store.customers.get_mut(customer) {
        customer.default_payment_method = Some(pm.to_owned());
    }
    Ok(())
}

/// `previous_attributes`: the old values of the top-level fields that changed.
pub fn changed_fields(before: &Value, after: &Value) -> Value {
    let mut previous = serde_json::Map::new();
    if let (Value::Object(before), Value::Object(after)) = (before, after) {
        for (key, old) in before {
            if after.get(key) != Some(old) {
                previous.insert(key.clone(), old.clone());
            }
        }
    }
    Value::Object(previous)
}

/// `GET /v1/customers`, optionally `email=…`.
pub fn list(store: &Store, params: &Params) -> ApiResult {
    let email = params.str("email");
    let items = store
        .customers
        .values()
        .filter(|c| email.is_none_or(|e| c.email.as_deref() == Some(e)))
        .map(|c| (c.seq, c.id.clone(), c.to_json()))
        .collect();
    paginate(newest_first(items), params, "/v1/customers")
}
