//! Card PaymentMethods. A `pm_card_*` test token used anywhere creates a new `pm_…` object that
//! keeps the token's card behaviour (3DS, declines), as Stripe does.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::cards::TestCard;
use crate::resources::customers;
use crate::store::{Store, current_year, newest_first, now, paginate};

#[derive(Debug, Clone)]
pub struct PaymentMethod {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub card: TestCard,
    pub exp_year: i64,
    pub customer: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Detached from its customer: Stripe never lets it be used or attached again.
    pub detached: bool,
}

impl PaymentMethod {
    /// Refuses a detached payment method, as Stripe does when it is confirmed with again.
    pub fn check_usable(&self) -> Result<(), ApiError> {
        if self.detached {
            return Err(ApiError::invalid(
                "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, shared with a connected account without Customer attachment, or was detached from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first.",
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
                "email": null,
                "name": null,
                "phone": null,
                "tax_id": null,
            },
            "card": self.card.payment_method_card(self.exp_year),
            "created": self.created,
            "customer": self.customer,
            "livemode": false,
            "metadata": self.metadata,
            "type": "card",
        })
    }
}

pub fn get<'a>(store: &'a Store, id: &str, param: &str) -> Result<&'a PaymentMethod, ApiError> {
    store
        .payment_methods
        .get(id)
        .ok_or_else(|| ApiError::missing("PaymentMethod", id, param))
}

/// A `pm_…` id for `id_or_token`: tokens mint a new PaymentMethod, ids must exist.
pub fn resolve(store: &mut Store, id_or_token: &str, param: &str) -> Result<String, ApiError> {
    if TestCard::is_token(id_or_token) {
        let card = TestCard::from_token(id_or_token)
            .ok_or_else(|| ApiError::missing("PaymentMethod", id_or_token, param))?;
        let id = store.new_id("pm");
        let seq = store.next_seq();
        let pm = PaymentMethod {
            id: id.clone(),
            seq,
            created: now(),
            card,
            exp_year: current_year() + 3,
            customer: None,
            metadata: BTreeMap::new(),
            detached: false,
        };
        store.payment_methods.insert(id.clone(), pm);
        Ok(id)
    } else {
        get(store, id_or_token, param).map(|pm| pm.id.clone())
    }
}

/// `POST /v1/payment_methods` with `type=card&card[token]=…` or a test token in `payment_method`.
pub fn create(store: &mut Store, params: &Params) -> ApiResult {
    let token = params
        .nested("card")
        .and_then(|card| card.str("token").map(str::to_owned))
        .or_else(|| params.str("payment_method").map(str::to_owned))
        .ok_or_else(|| ApiError::missing_param("card[token]"))?;
    let token = if token.starts_with("tok_") {
        token.replacen("tok_", "pm_card_", 1)
    } else {
        token
    };
    let id = resolve(store, &token, "card[token]")?;
    if let Some(pm) = store.payment_methods.get_mut(&id) {
        params.apply_metadata(&mut pm.metadata)?;
    }
    Ok(get(store, &id, "id")?.to_json())
}

pub fn attach(store: &mut Store, id_or_token: &str, customer: &str) -> ApiResult {
    customers::get(store, customer, "customer")?;
    let id = resolve(store, id_or_token, "payment_method")?;
    let pm = get(store, &id, "payment_method")?;
    if pm.detached {
        return Err(ApiError::invalid(
            "This PaymentMethod was previously used without being attached to a Customer or was detached from a Customer, and may not be used again.",
        ));
    }
    match pm.customer.as_deref() {
        Some(owner) if owner == customer => return Ok(pm.to_json()),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "payment_method_unexpected_state",
                "The payment method you provided has already been attached to a customer.",
            ));
        }
        None => {}
    }
    if let Some(pm) = store.payment_methods.get_mut(&id) {
        pm.customer = Some(customer.to_owned());
    }
    let json = get(store, &id, "payment_method")?.to_json();
    store.emit(
        "payment_method.attached",
        json.clone(),
        Some(json!({"customer": null})),
    );
    Ok(json)
}

pub fn detach(store: &mut Store, id: &str) -> ApiResult {
    let owner = get(store, id, "payment_method")?.customer.clone();
    let Some(owner) = owner else {
        return Err(ApiError::invalid_request(
            "payment_method_unexpected_state",
            "The payment method you provided is not attached to a customer so detachment is impossible.",
        ));
    };
    if let Some(pm) = store.payment_methods.get_mut(id) {
        pm.customer = None;
        pm.detached = true;
    }
    if let Some(customer) = store.customers.get_mut(&owner)
        && customer.default_payment_method.as_deref() == Some(id)
    {
        customer.default_payment_method = None;
    }
    let json = get(store, id, "payment_method")?.to_json();
    store.emit(
        "payment_method.detached",
        json.clone(),
        Some(json!({"customer": owner})),
    );
    Ok(json)
}

/// `GET /v1/payment_methods?customer=…&type=card` and `GET /v1/customers/{id}/payment_methods`.
pub fn list(store: &Store, customer: Option<&str>, params: &Params, url: &str) -> ApiResult {
    if let Some(customer) = customer {
        customers::get(store, customer, "customer")?;
    }
    if let Some(kind) = params.str("type")
        && kind != "card"
    {
        return paginate(Vec::new(), params, url);
    }
    let items = store
        .payment_methods
        .values()
        .filter(|pm| match customer {
            Some(customer) => pm.customer.as_deref() == Some(customer),
            None => pm.customer.is_some(),
        })
        .map(|pm| (pm.seq, pm.id.clone(), pm.to_json()))
        .collect();
    paginate(newest_first(items), params, url)
}
