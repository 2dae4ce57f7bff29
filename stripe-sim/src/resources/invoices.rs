//! Invoices: the object and its totals, create, retrieve, list, delete (drafts).
//! Finalize, pay and void live in `invoice_lifecycle.rs`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::customers;
use crate::resources::invoice_items::{self, InvoiceItem};
use crate::store::{Store, newest_first, now, paginate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub customer: String,
    pub currency: String,
    pub status: InvoiceStatus,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub auto_advance: bool,
    pub collection_method: String,
    pub due_date: Option<i64>,
    pub default_payment_method: Option<String>,
    pub discounts: Vec<String>,
    pub items: Vec<String>,
    pub number: Option<String>,
    pub attempt_count: u64,
    pub amount_paid: i64,
    pub finalized_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub voided_at: Option<i64>,
}

/// Subtotal, per-discount amounts and total of an invoice.
pub struct Totals {
    pub subtotal: i64,
    pub discounts: Vec<(String, i64)>,
    pub total: i64,
}

impl Invoice {
    pub fn totals(&self, store: &Store) -> Totals {
        let items: Vec<&InvoiceItem> = self
            .items
            .iter()
            .filter_map(|id| store.invoice_items.get(id))
            .collect();
        let subtotal: i64 = items.iter().map(|item| item.amount).sum();
        let mut discountable: i64 = items
            .iter()
            .filter(|item| item.discountable)
            .map(|item| item.amount)
            .sum();
        let mut discounts = Vec::new();
        for id in &self.discounts {
            let Some(discount) = store.discounts.get(id) else {
                continue;
            };
            let off = store
                .coupons
                .get(&discount.coupon)
                .map_or(0, |coupon| coupon.discount_on(discountable, &self.currency));
            discountable -= off;
            discounts.push((id.clone(), off));
        }
        let off: i64 = discounts.iter().map(|(_, amount)| amount).sum();
        Totals {
            subtotal,
            discounts,
            total: (subtotal - off).max(0),
        }
    }

    pub fn to_json(&self, store: &Store) -> Value {
        let totals = self.totals(store);
        let lines: Vec<Value> = self
            .items
            .iter()
            .filter_map(|id| store.invoice_items.get(id))
            .map(|item| item.line_json(&self.id))
            .collect();
        let customer = store.customers.get(&self.customer);
        let amount_due = if self.status == InvoiceStatus::Void {
            0
        } else {
            totals.total
        };
        let discount_amounts: Vec<Value> = totals
            .discounts
            .iter()
            .map(|(id, amount)| json!({"amount": amount, "discount": id}))
            .collect();
        let finalized = self.status != InvoiceStatus::Draft;
        json!({
            "id": self.id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Stripe Sim",
            "amount_due": amount_due,
            "amount_overpaid": 0,
            "amount_paid": self.amount_paid,
            "amount_remaining": (amount_due - self.amount_paid).max(0),
            "amount_shipping": 0,
            "application": null,
            "attempt_count": self.attempt_count,
            "attempted": self.attempt_count > 0,
            "auto_advance": self.auto_advance,
            "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null, "status": null},
            "billing_reason": "manual",
            "collection_method": self.collection_method,
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "customer_email": customer.and_then(|c| c.email.clone()),
            "customer_name": customer.and_then(|c| c.name.clone()),
            "default_payment_method": self.default_payment_method,
            "default_tax_rates": [],
            "description": self.description,
            "discounts": self.discounts,
            "due_date": self.due_date,
            "effective_at": self.finalized_at,
            "ending_balance": if finalized { Some(0) } else { None },
            "hosted_invoice_url": null,
            "invoice_pdf": null,
            "issuer": {"type": "self"},
            "last_finalization_error": null,
            "lines": {"object": "list", "data": lines, "has_more": false, "url": format!("/v1/invoices/{}/lines", self.id)},
            "livemode": false,
            "metadata": self.metadata,
            "next_payment_attempt": null,
            "number": self.number,
            "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
            "period_end": self.created,
            "period_start": self.created,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": null,
            "starting_balance": 0,
            "statement_descriptor": null,
            "status": self.status.as_str(),
            "status_transitions": {
                "finalized_at": self.finalized_at,
                "marked_uncollectible_at": null,
                "paid_at": self.paid_at,
                "voided_at": self.voided_at,
            },
            "subtotal": totals.subtotal,
            "subtotal_excluding_tax": totals.subtotal,
            "test_clock": null,
            "total": totals.total,
            "total_discount_amounts": discount_amounts,
            "total_excluding_tax": totals.total,
            "total_taxes": [],
            "webhooks_delivered_at": self.created,
        })
    }
}

pub fn get<'a>(store: &'a Store, id: &str) -> Result<&'a Invoice, ApiError> {
    store
        .invoices
        .get(id)
        .ok_or_else(|| ApiError::missing("invoice", id, "invoice"))
}

pub fn get_mut<'a>(store: &'a mut Store, id: &str) -> Result<&'a mut Invoice, ApiError> {
    store
        .invoices
        .get_mut(id)
        .ok_or_else(|| ApiError::missing("invoice", id, "invoice"))
}

pub fn json(store: &Store, id: &str) -> ApiResult {
    Ok(get(store, id)?.to_json(store))
}

pub fn create(store: &mut Store, params: &Params) -> ApiResult {
    let customer = params.required_str("customer")?.to_owned();
    customers::get(store, &customer, "customer")?;
    let collection_method = params
        .str("collection_method")
        .unwrap_or("charge_automatically")
        .to_owned();
    if !["charge_automatically", "send_invoice"].contains(&collection_method.as_str()) {
        return Err(ApiError::invalid_param(
            "collection_method",
            format!("Invalid collection_method: {collection_method}"),
        ));
    }
    let include_pending = match params.str("pending_invoice_items_behavior") {
        None | Some("exclude") => false,
        Some("include") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "pending_invoice_items_behavior",
                format!("Invalid pending_invoice_items_behavior: {other}"),
            ));
        }
    };
    let created = now();
    let due_date = match (params.i64("due_date")?, params.i64("days_until_due")?) {
        (Some(due), _) => Some(due),
        (None, Some(days)) => Some(created + days * 86_400),
        (None, None) => None,
    };
    let default_payment_method = params.str("default_payment_method").map(str::to_owned);
    if let Some(pm) = &default_payment_method {
        crate::resources::payment_methods::get(store, pm, "default_payment_method")?;
    }
    let mut metadata = BTreeMap::new();
    params.apply_metadata(&mut metadata)?;
    let id = store.new_id("in");
    let discounts = invoice_items::apply_discounts(store, &id, &customer, params)?;
    let currency = params.str("currency").unwrap_or("usd").to_ascii_lowercase();
    let items: Vec<String> = if include_pending {
        let mut pending: Vec<&InvoiceItem> = store
            .invoice_items
            .values()
            .filter(|item| {
                item.customer == customer && item.invoice.is_none() && item.currency == currency
            })
            .collect();
        pending.sort_by_key(|item| item.seq);
        pending.into_iter().map(|item| item.id.clone()).collect()
    } else {
        Vec::new()
    };
    for item in &items {
        if let Some(item) = store.invoice_items.get_mut(item) {
            item.invoice = Some(id.clone());
        }
    }
    let seq = store.next_seq();
    let invoice = Invoice {
        id: id.clone(),
        seq,
        created,
        customer,
        currency,
        status: InvoiceStatus::Draft,
        description: params.str("description").map(str::to_owned),
        metadata,
        auto_advance: params.bool("auto_advance")?.unwrap_or(false),
        collection_method,
        due_date,
        default_payment_method,
        discounts,
        items,
        number: None,
        attempt_count: 0,
        amount_paid: 0,
        finalized_at: None,
        paid_at: None,
        voided_at: None,
    };
    store.invoices.insert(id.clone(), invoice);
    let json = json(store, &id)?;
    store.emit("invoice.created", json.clone(), None);
    Ok(json)
}

pub fn update(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let before = json(store, id)?;
    let invoice = get_mut(store, id)?;
    params.apply_metadata(&mut invoice.metadata)?;
    if params.has("description") {
        invoice.description = params.str("description").map(str::to_owned);
    }
    if let Some(auto_advance) = params.bool("auto_advance")? {
        invoice.auto_advance = auto_advance;
    }
    let after = json(store, id)?;
    store.emit(
        "invoice.updated",
        after.clone(),
        Some(customers::changed_fields(&before, &after)),
    );
    Ok(after)
}

pub fn delete(store: &mut Store, id: &str) -> ApiResult {
    let invoice = get(store, id)?;
    if invoice.status != InvoiceStatus::Draft {
        return Err(ApiError::invalid_request(
            "invoice_not_editable",
            "Only draft invoices can be deleted.",
        ));
    }
    let json = invoice.to_json(store);
    let items = invoice.items.clone();
    for item in items {
        store.invoice_items.remove(&item);
    }
    store.invoices.remove(id);
    store.emit("invoice.deleted", json, None);
    Ok(json!({"id": id, "object": "invoice", "deleted": true}))
}

/// `GET /v1/invoices/search` by metadata, newest first.
pub fn search(store: &Store, params: &Params) -> ApiResult {
    let clauses = super::search::parse(params.required_str("query")?)?;
    let items = store
        .invoices
        .values()
        .filter(|i| super::search::matches(&i.metadata, &clauses))
        .map(|i| (i.seq, i.id.clone(), i.to_json(store)))
        .collect();
    Ok(super::search::result("/v1/invoices/search", items))
}

pub fn list(store: &Store, params: &Params) -> ApiResult {
    let customer = params.str("customer");
    let status = params.str("status");
    let items = store
        .invoices
        .values()
        .filter(|i| customer.is_none_or(|c| i.customer == c))
        .filter(|i| status.is_none_or(|s| i.status.as_str() == s))
        .map(|i| (i.seq, i.id.clone(), i.to_json(store)))
        .collect();
    paginate(newest_first(items), params, "/v1/invoices")
}
