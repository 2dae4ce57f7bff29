//! Coupons and promotion codes. A redemption (an invoice finalized with the discount) counts on
//! both; a coupon past `max_redemptions` or `redeem_by` is no longer `valid`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::store::{Store, newest_first, now, paginate};

#[derive(Debug, Clone)]
pub struct Coupon {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub amount_off: Option<i64>,
    pub percent_off: Option<f64>,
    pub currency: Option<String>,
    pub duration: String,
    pub duration_in_months: Option<i64>,
    pub max_redemptions: Option<i64>,
    pub redeem_by: Option<i64>,
    pub name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub times_redeemed: i64,
}

impl Coupon {
    pub fn valid(&self) -> bool {
        self.max_redemptions
            .is_none_or(|max| self.times_redeemed < max)
            && self.redeem_by.is_none_or(|by| now() < by)
    }

    /// The discount this coupon gives on `amount` (in `currency`), never more than `amount`.
    pub fn discount_on(&self, amount: i64, currency: &str) -> i64 {
        let off = match (self.amount_off, self.percent_off) {
            (Some(off), _) if self.currency.as_deref() == Some(currency) => off,
            (Some(_), _) => 0,
            (None, Some(percent)) => (amount as f64 * percent / 100.0).round() as i64,
            (None, None) => 0,
        };
        off.clamp(0, amount.max(0))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "coupon",
            "amount_off": self.amount_off,
            "created": self.created,
            "currency": self.currency,
            "duration": self.duration,
            "duration_in_months": self.duration_in_months,
            "livemode": false,
            "max_redemptions": self.max_redemptions,
            "metadata": self.metadata,
            "name": self.name,
            "percent_off": self.percent_off,
            "redeem_by": self.redeem_by,
            "times_redeemed": self.times_redeemed,
            "valid": self.valid(),
        })
    }
}

pub fn get_coupon<'a>(store: &'a Store, id: &str, param: &str) -> Result<&'a Coupon, ApiError> {
    store
        .coupons
        .get(id)
        .ok_or_else(|| ApiError::missing("coupon", id, param))
}

pub fn create_coupon(store: &mut Store, params: &Params) -> ApiResult {
    let amount_off = params.i64("amount_off")?;
    let percent_off = params.f64("percent_off")?;
    let currency = params.str("currency").map(str::to_ascii_lowercase);
    match (amount_off, percent_off) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::invalid_param(
                "amount_off",
                "Exactly one of amount_off or percent_off is required.",
            ));
        }
        (Some(off), None) if off < 1 => {
            return Err(ApiError::invalid_param(
                "amount_off",
                "amount_off must be positive.",
            ));
        }
        (Some(_), None) if currency.is_none() => return Err(ApiError::missing_param("currency")),
        (None, Some(pct)) if !(pct > 0.0 && pct <= 100.0) => {
            return Err(ApiError::invalid_param(
                "percent_off",
                "percent_off must be greater than 0 and at most 100.",
            ));
        }
        _ => {}
    }
    let duration = params.str("duration").unwrap_or("once").to_owned();
    if !["once", "repeating", "forever"].contains(&duration.as_str()) {
        return Err(ApiError::invalid_param(
            "duration",
            format!("Invalid duration: {duration}"),
        ));
    }
    let duration_in_months = params.i64("duration_in_months")?;
    if duration == "repeating" && duration_in_months.is_none() {
        return Err(ApiError::missing_param("duration_in_months"));
    }
    let id = match params.str("id") {
        Some(id) if store.coupons.contains_key(id) => {
            return Err(ApiError::invalid_request(
                "resource_already_exists",
                "Coupon already exists.",
            ));
        }
        Some(id) => id.to_owned(),
        None => store.random_string(8, false),
    };
    let mut metadata = BTreeMap::new();
    params.apply_metadata(&mut metadata)?;
    let seq = store.next_seq();
    let coupon = Coupon {
        id: id.clone(),
        seq,
        created: now(),
        amount_off,
        percent_off,
        currency: if amount_off.is_some() { currency } else { None },
        duration,
        duration_in_months,
        max_redemptions: params.i64("max_redemptions")?,
        redeem_by: params.i64("redeem_by")?,
        name: params.str("name").map(str::to_owned),
        metadata,
        times_redeemed: 0,
    };
    let json = coupon.to_json();
    store.coupons.insert(id, coupon);
    store.emit("coupon.created", json.clone(), None);
    Ok(json)
}

#[derive(Debug, Clone)]
pub struct PromotionCode {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub code: String,
    pub coupon: String,
    pub active: bool,
    pub customer: Option<String>,
    pub expires_at: Option<i64>,
    pub max_redemptions: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub times_redeemed: i64,
    pub first_time_transaction: bool,
    pub minimum_amount: Option<i64>,
    pub minimum_amount_currency: Option<String>,
}

impl PromotionCode {
    pub fn to_json(&self, store: &Store) -> Value {
        json!({
            "id": self.id,
            "object": "promotion_code",
            "active": self.active,
            "code": self.code,
            // Older API versions: the whole coupon. Newer ones: `promotion.coupon`.
            "coupon": store.coupons.get(&self.coupon).map(Coupon::to_json),
            "created": self.created,
            "customer": self.customer,
            "expires_at": self.expires_at,
            "livemode": false,
            "max_redemptions": self.max_redemptions,
            "metadata": self.metadata,
            "promotion": {"type": "coupon", "coupon": self.coupon},
            "restrictions": {
                "currency_options": {},
                "first_time_transaction": self.first_time_transaction,
                "minimum_amount": self.minimum_amount,
                "minimum_amount_currency": self.minimum_amount_currency,
            },
            "times_redeemed": self.times_redeemed,
        })
    }

    /// Why this code cannot be applied to an invoice of `customer` now, if it cannot: Stripe's
    /// refusal, an `invalid_request_error` naming `param`.
    pub fn check_redeemable(
        &self,
        store: &Store,
        customer: &str,
        param: &str,
    ) -> Result<(), ApiError> {
        let because = if !self.active {
            "it is inactive"
        } else if self.expires_at.is_some_and(|at| now() >= at) {
            "it has expired"
        } else if self
            .max_redemptions
            .is_some_and(|max| self.times_redeemed >= max)
        {
            "it has been used the maximum number of times"
        } else if !store.coupons.get(&self.coupon).is_some_and(Coupon::valid) {
            let mut error = refusal(param, "its coupon is no longer valid");
            error.code = Some("coupon_expired");
            return Err(error);
        } else if self.customer.as_deref().is_some_and(|c| c != customer) {
            "it is restricted to another customer"
        } else if self.first_time_transaction && has_prior_transactions(store, customer) {
            "the associated customer has prior transactions"
        } else {
            return Ok(());
        };
        Err(refusal(param, because))
    }

    /// `restrictions.minimum_amount`: the purchase (before discounts), in
    /// `minimum_amount_currency`, must reach it.
    pub fn check_minimum(&self, amount: i64, currency: &str, param: &str) -> Result<(), ApiError> {
        let Some(minimum) = self.minimum_amount else {
            return Ok(());
        };
        let same_currency = self
            .minimum_amount_currency
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case(currency));
        if same_currency && amount >= minimum {
            return Ok(());
        }
        Err(refusal(
            param,
            "the associated purchase does not meet the minimum amount requirement",
        ))
    }
}

/// Stripe's wording for a promotion code it will not apply.
fn refusal(param: &str, because: &str) -> ApiError {
    ApiError::invalid_param(
        param,
        format!("This promotion code cannot be redeemed because {because}."),
    )
}

/// Whether `customer` has any successful payment or paid invoice (`first_time_transaction`).
fn has_prior_transactions(store: &Store, customer: &str) -> bool {
    let paid_charge = store
        .charges
        .values()
        .any(|c| c.customer.as_deref() == Some(customer) && c.succeeded());
    let paid_invoice = store.invoices.values().any(|i| {
        i.customer == customer && i.status == crate::resources::invoices::InvoiceStatus::Paid
    });
    paid_charge || paid_invoice
}

pub fn get_promotion_code<'a>(
    store: &'a Store,
    id: &str,
    param: &str,
) -> Result<&'a PromotionCode, ApiError> {
    store
        .promotion_codes
        .get(id)
        .ok_or_else(|| ApiError::missing("promotion code", id, param))
}

pub fn create_promotion_code(store: &mut Store, params: &Params) -> ApiResult {
    let promotion = params.nested("promotion");
    if let Some(kind) = promotion
        .as_ref()
        .and_then(|p| p.str("type").map(str::to_owned))
        && kind != "coupon"
    {
        return Err(ApiError::invalid_param(
            "promotion[type]",
            format!("Unsupported promotion type: {kind}"),
        ));
    }
    let coupon = promotion
        .as_ref()
        .and_then(|p| p.str("coupon").map(str::to_owned))
        .or_else(|| params.str("coupon").map(str::to_owned))
        .ok_or_else(|| ApiError::missing_param("promotion[coupon]"))?;
    get_coupon(store, &coupon, "promotion[coupon]")?;
    let code = match params.str("code") {
        Some(code) => code.to_owned(),
        None => store.random_string(8, true),
    };
    let taken = store
        .promotion_codes
        .values()
        .any(|p| p.active && p.code.eq_ignore_ascii_case(&code));
    if taken {
        return Err(ApiError::invalid_param(
            "code",
            format!("An active promotion code with `code: {code}` already exists."),
        ));
    }
    let restrictions = params.nested("restrictions").unwrap_or_default();
    let mut metadata = BTreeMap::new();
    params.apply_metadata(&mut metadata)?;
    let id = store.new_id("promo");
    let seq = store.next_seq();
    let promo = PromotionCode {
        id: id.clone(),
        seq,
        created: now(),
        code,
        coupon,
        active: params.bool("active")?.unwrap_or(true),
        customer: params.str("customer").map(str::to_owned),
        expires_at: params.i64("expires_at")?,
        max_redemptions: params.i64("max_redemptions")?,
        metadata,
        times_redeemed: 0,
        first_time_transaction: restrictions
            .bool("first_time_transaction")?
            .unwrap_or(false),
        minimum_amount: restrictions.i64("minimum_amount")?,
        minimum_amount_currency: restrictions
            .str("minimum_amount_currency")
            .map(str::to_owned),
    };
    let json = promo.to_json(store);
    store.promotion_codes.insert(id, promo);
    store.emit("promotion_code.created", json.clone(), None);
    Ok(json)
}

pub fn update_promotion_code(store: &mut Store, id: &str, params: &Params) -> ApiResult {
    let active = params.bool("active")?;
    let promo = store
        .promotion_codes
        .get_mut(id)
        .ok_or_else(|| ApiError::missing("promotion code", id, "id"))?;
    let previous = json!({"active": promo.active, "metadata": promo.metadata});
    promo.active = active.unwrap_or(promo.active);
    params.apply_metadata(&mut promo.metadata)?;
    let json = get_promotion_code(store, id, "id")?.to_json(store);
    store.emit("promotion_code.updated", json.clone(), Some(previous));
    Ok(json)
}

pub fn list_promotion_codes(store: &Store, params: &Params) -> ApiResult {
    let code = params.str("code");
    let active = params.bool("active")?;
    let coupon = params.str("coupon");
    let customer = params.str("customer");
    let items = store
        .promotion_codes
        .values()
        .filter(|p| code.is_none_or(|c| p.code.eq_ignore_ascii_case(c)))
        .filter(|p| active.is_none_or(|a| p.active == a))
        .filter(|p| coupon.is_none_or(|c| p.coupon == c))
        .filter(|p| customer.is_none_or(|c| p.customer.as_deref() == Some(c)))
        .map(|p| (p.seq, p.id.clone(), p.to_json(store)))
        .collect();
    paginate(newest_first(items), params, "/v1/promotion_codes")
}

pub fn list_coupons(store: &Store, params: &Params) -> ApiResult {
    let items = store
        .coupons
        .values()
        .map(|c| (c.seq, c.id.clone(), c.to_json()))
        .collect();
    paginate(newest_first(items), params, "/v1/coupons")
}
