//! Invoice items (pending, or attached to a draft invoice) and the discounts applied to invoices.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::coupons::Coupon;
use crate::resources::customers;
use crate::resources::invoices::InvoiceStatus;
use crate::store::{Store, now};

#[derive(Debug, Clone)]
pub struct InvoiceItem {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub customer: String,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub discountable: bool,
    pub invoice: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl InvoiceItem {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "invoiceitem",
            "amount": self.amount,
            "currency": self.currency,
            "customer": self.customer,
            "date": self.created,
            "description": self.description,
            "discountable": self.discountable,
            "discounts": [],
            "invoice": self.invoice,
            "livemode": false,
            "metadata": self.metadata,
            "period": {"end": self.created, "start": self.created},
            "proration": false,
            "quantity": 1,
            "quantity_decimal": "1",
            "test_clock": null,
        })
    }

    /// The invoice line this item becomes.
    pub fn line_json(&self, invoice: &str) -> Value {
        json!({
            "id": format!("il_{}", self.id.trim_start_matches("ii_")),
            "object": "line_item",
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
            "discount_amounts": [],
            "discountable": self.discountable,
            "discounts": [],
            "invoice": invoice,
            "livemode": false,
            "metadata": self.metadata,
            "period": {"end": self.created, "start": self.created},
            "quantity": 1,
            "subtotal": self.amount,
            "taxes": [],
        })
    }
}

pub fn create(store: &mut Store, params: &Params) -> ApiResult {
    let customer = params.required_str("customer")?.to_owned();
    customers::get(store, &customer, "customer")?;
    let invoice = params.str("invoice").map(str::to_owned);
    let invoice_currency = match &invoice {
        Some(id) => {
            let invoice = store
                .invoices
                .get(id)
                .ok_or_else(|| ApiError::missing("invoice", id, "invoice"))?;
            if invoice.status != InvoiceStatus::Draft {
                return Err(ApiError::invalid_request(
                    "invoice_not_editable",
                    format!(
                        "You can only add invoice items to draft invoices; {id} is {}.",
                        invoice.status.as_str()
                    ),
                ));
            }
            if invoice.customer != customer {
                return Err(ApiError::invalid_param(
                    "invoice",
                    format!("Invoice {id} belongs to another customer."),
                ));
            }
            Some(invoice.currency.clone())
        }
        None => None,
    };
    let amount = match params.i64("amount")? {
        Some(amount) => amount,
        None => {
            let unit = params
                .i64("unit_amount")?
                .ok_or_else(|| ApiError::missing_param("amount"))?;
            unit * params.i64("quantity")?.unwrap_or(1)
        }
    };
    let currency = match (params.str("currency"), invoice_currency) {
        (Some(currency), _) => currency.to_ascii_lowercase(),
        (None, Some(currency)) => currency,
        (None, None) => return Err(ApiError::missing_param("currency")),
    };
    let mut metadata = BTreeMap::new();
    params.apply_metadata(&mut metadata)?;
    let id = store.new_id("ii");
    let seq = store.next_seq();
    let item = InvoiceItem {
        id: id.clone(),
        seq,
        created: now(),
        customer,
        amount,
        currency,
        description: params.str("description").map(str::to_owned),
        discountable: params.bool("discountable")?.unwrap_or(true),
        invoice: invoice.clone(),
        metadata,
    };
    let json = item.to_json();
    store.invoice_items.insert(id.clone(), item);
    if let Some(invoice) = invoice.and_then(|id| store.invoices.get_mut(&id)) {
        invoice.items.push(id);
    }
    store.emit("invoiceitem.created", json.clone(), None);
    Ok(json)
}

pub fn retrieve(store: &Store, id: &str) -> ApiResult {
    store
        .invoice_items
        .get(id)
        .map(InvoiceItem::to_json)
        .ok_or_else(|| ApiError::missing("invoiceitem", id, "id"))
}

/// A coupon (possibly through a promotion code) applied to an invoice.
#[derive(Debug, Clone)]
pub struct Discount {
    pub id: String,
    pub start: i64,
    pub coupon: String,
    pub promotion_code: Option<String>,
    pub customer: String,
    pub invoice: String,
    /// A snapshot of the coupon when it was applied.
    pub coupon_json: Value,
}

impl Discount {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "discount",
            "checkout_session": null,
            "coupon": self.coupon_json,
            "customer": self.customer,
            "end": null,
            "invoice": self.invoice,
            "invoice_item": null,
            "promotion_code": self.promotion_code,
            "source": {"coupon": self.coupon, "type": "coupon"},
            "start": self.start,
            "subscription": null,
            "subscription_item": null,
        })
    }
}

/// Validates `discounts[i][coupon|promotion_code]` and creates the Discount objects.
pub fn apply_discounts(
    store: &mut Store,
    invoice: &str,
    customer: &str,
    params: &Params,
) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    for (index, entry) in params.list("discounts").into_iter().enumerate() {
        let entry = Params(entry);
        let (coupon, promotion_code) = match (entry.str("coupon"), entry.str("promotion_code")) {
            (Some(coupon), _) => (coupon.to_owned(), None),
            (None, Some(promo)) => {
                let param = format!("discounts[{index}][promotion_code]");
                let code = crate::resources::coupons::get_promotion_code(store, promo, &param)?;
                code.check_redeemable(store, customer, &param)?;
                (code.coupon.clone(), Some(promo.to_owned()))
            }
            (None, None) => {
                return Err(ApiError::missing_param(&format!(
                    "discounts[{index}][coupon]"
                )));
            }
        };
        let param = format!("discounts[{index}][coupon]");
        let coupon_ref = crate::resources::coupons::get_coupon(store, &coupon, &param)?;
        if !coupon_ref.valid() {
            return Err(ApiError::invalid_request(
                "coupon_expired",
                format!("Coupon {coupon} is no longer valid."),
            ));
        }
        let coupon_json = coupon_ref.to_json();
        let discount = Discount {
            id: store.new_id("di"),
            start: now(),
            coupon,
            promotion_code,
            customer: customer.to_owned(),
            invoice: invoice.to_owned(),
            coupon_json,
        };
        ids.push(discount.id.clone());
        store.discounts.insert(discount.id.clone(), discount);
    }
    Ok(ids)
}

/// At finalization: checks every rule again against the invoice as it now is (a race for the
/// last redemption, an expiry since it was applied, the minimum amount, which only the final
/// invoice knows), then counts one redemption on each coupon and promotion code.
pub fn redeem(store: &mut Store, invoice: &str) -> Result<(), ApiError> {
    let invoice = crate::resources::invoices::get(store, invoice)?;
    let (customer, currency) = (invoice.customer.clone(), invoice.currency.clone());
    let subtotal = invoice.totals(store).subtotal;
    let discounts = invoice.discounts.clone();
    for id in &discounts {
        let Some(discount) = store.discounts.get(id).cloned() else {
            continue;
        };
        if let Some(promo) = &discount.promotion_code {
            let code = crate::resources::coupons::get_promotion_code(store, promo, "discounts")?;
            code.check_redeemable(store, &customer, "discounts")?;
            code.check_minimum(subtotal, &currency, "discounts")?;
        } else if !store
            .coupons
            .get(&discount.coupon)
            .is_some_and(Coupon::valid)
        {
            return Err(ApiError::invalid_request(
                "coupon_expired",
                format!("Coupon {} is no longer valid.", discount.coupon),
            ));
        }
    }
    for id in &discounts {
        let Some(discount) = store.discounts.get(id).cloned() else {
            continue;
        };
        if let Some(coupon) = store.coupons.get_mut(&discount.coupon) {
            coupon.times_redeemed += 1;
        }
        if let Some(promo) = discount
            .promotion_code
            .and_then(|p| store.promotion_codes.get_mut(&p))
        {
            promo.times_redeemed += 1;
        }
    }
    Ok(())
}
