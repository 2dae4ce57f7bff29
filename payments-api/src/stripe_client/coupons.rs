//! Coupons: finding a promotion code (or coupon) that can be redeemed now, and the
//! zero-total invoice whose discount carries its credit.

use payments_core::{Currency, Money, TransactionId};
use stripe::StripeRequest;
use stripe_billing::{
    invoice::{
        CreateInvoice, CreateInvoiceDiscounts, CreateInvoicePendingInvoiceItemsBehavior,
        FinalizeInvoiceInvoice,
    },
    invoice_item::CreateInvoiceItem,
};
use stripe_product::{
    Coupon, PromotionCode, coupon::RetrieveCoupon, promotion_code::ListPromotionCode,
};
use stripe_types::Expandable;

use payments_stripe::idempotent;

use super::{Stripe, StripeFailure, stripe_currency, transaction_metadata};

/// What the invoice's discount names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discount {
    PromotionCode(String),
    Coupon(String),
}

/// A code that can be redeemed for a fixed amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemable {
    pub discount: Discount,
    /// The Stripe coupon behind the code: what a user redeems once.
    pub coupon_id: String,
    /// The credit, in the coupon's currency (which may not be the wallet's).
    pub amount_off: Money,
}

/// Why a code cannot be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponProblem {
    Unknown,
    /// Stripe says `valid: false` (deleted, or past its limits).
    NotValid,
    Expired,
    Exhausted,
    PercentOff,
    /// A restriction of the promotion code excludes this redemption: `customer`,
    /// `first_time_transaction` or `minimum_amount`.
    NotEligible(&'static str),
    /// A coupon without a positive amount in a currency we can read.
    NoAmount,
}

/// Who redeems: what a promotion code's restrictions are checked against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redeemer<'a> {
    /// The user's Stripe customer, if they have one yet.
    pub customer: Option<&'a str>,
    /// The user already has a successful payment or redemption.
    pub has_paid_before: bool,
}

/// A zero-total invoice carrying a coupon's credit.
#[derive(Debug, Clone)]
pub struct CouponInvoice<'a> {
    pub transaction_id: TransactionId,
    pub customer: &'a str,
    pub discount: &'a Discount,
    pub amount: Money,
}

impl Stripe {
    /// Finds the promotion code named `code` (an inactive one is refused as such), else,
    /// when `coupon_ids` allows it, a coupon with that id, and checks that it can be
    /// redeemed now (`now` in Unix seconds).
    pub async fn find_redeemable(
        &self,
        code: &str,
        now: i64,
        coupon_ids: bool,
        redeemer: Redeemer<'_>,
    ) -> Result<Result<Redeemable, CouponProblem>, StripeFailure> {
        let request = ListPromotionCode::new().code(code).limit(10).customize();
        let promos = self.client.send("find_redeemable", request).await?;
        // Codes are unique among active codes only: prefer the active one.
        let mut matching: Vec<PromotionCode> = promos
            .data
            .into_iter()
            .filter(|p| p.code.eq_ignore_ascii_case(code))
            .collect();
        matching.sort_by_key(|p| !p.active);
        if let Some(promo) = matching.into_iter().next() {
            return self.redeemable_promotion(promo, now, redeemer).await;
        }
        if !coupon_ids {
            return Ok(Err(CouponProblem::Unknown));
        }
        match self.coupon(code).await {
            Ok(coupon) => Ok(redeemable_coupon(
                &coupon,
                Discount::Coupon(coupon.id.to_string()),
                now,
            )),
            Err(e) if e.is_missing() => Ok(Err(CouponProblem::Unknown)),
            Err(e) => Err(e),
        }
    }

    async fn redeemable_promotion(
        &self,
        promo: PromotionCode,
        now: i64,
        redeemer: Redeemer<'_>,
    ) -> Result<Result<Redeemable, CouponProblem>, StripeFailure> {
        if !promo.active {
            return Ok(Err(CouponProblem::NotValid));
        }
        if promo.expires_at.is_some_and(|at| at <= now) {
            return Ok(Err(CouponProblem::Expired));
        }
        if promo
            .max_redemptions
            .is_some_and(|max| promo.times_redeemed >= max)
        {
            return Ok(Err(CouponProblem::Exhausted));
        }
        let for_customer = promo.customer.as_ref().map(|c| c.id().as_str().to_owned());
        if for_customer.is_some_and(|c| redeemer.customer != Some(c.as_str())) {
            return Ok(Err(CouponProblem::NotEligible("customer")));
        }
        if promo.restrictions.first_time_transaction && redeemer.has_paid_before {
            return Ok(Err(CouponProblem::NotEligible("first_time_transaction")));
        }
        let minimum = promo.restrictions.minimum_amount;
        let Some(coupon) = promo.promotion.coupon else {
            return Ok(Err(CouponProblem::NoAmount));
        };
        let coupon = match coupon {
            Expandable::Object(coupon) => *coupon,
            Expandable::Id(id) => self.coupon(id.as_ref()).await?,
        };
        let redeemable =
            redeemable_coupon(&coupon, Discount::PromotionCode(promo.id.to_string()), now);
        // The invoice's subtotal is the credit itself.
        Ok(redeemable.and_then(|r| match minimum {
            Some(min) if r.amount_off.minor() < min => {
                Err(CouponProblem::NotEligible("minimum_amount"))
            }
            _ => Ok(r),
        }))
    }

    async fn coupon(&self, id: &str) -> Result<Coupon, StripeFailure> {
        self.client
            .send("coupon", RetrieveCoupon::new(id).customize())
            .await
    }

    /// Creates the draft invoice with the discount, then its one item, and returns the
    /// invoice id. Nothing is swept in from other pending items: the item names the
    /// invoice. Each step has its own idempotency key derived from the transaction.
    pub async fn create_coupon_invoice(
        &self,
        req: &CouponInvoice<'_>,
    ) -> Result<String, StripeFailure> {
        let currency = stripe_currency(req.amount);
        let discount = match req.discount {
            Discount::PromotionCode(id) => CreateInvoiceDiscounts {
                promotion_code: Some(id.clone()),
                ..CreateInvoiceDiscounts::new()
            },
            Discount::Coupon(id) => CreateInvoiceDiscounts {
                coupon: Some(id.clone()),
                ..CreateInvoiceDiscounts::new()
            },
        };
        let metadata = transaction_metadata(req.transaction_id);
        let request = CreateInvoice::new()
            .customer(req.customer)
            .currency(currency.clone())
            .auto_advance(false)
            .pending_invoice_items_behavior(CreateInvoicePendingInvoiceItemsBehavior::Exclude)
            .discounts(vec![discount])
            .metadata(metadata.clone())
            .customize()
            .request_strategy(idempotent(&format!("in-create-{}", req.transaction_id))?);
        let invoice = self.client.send("create_coupon_invoice", request).await?;
        let invoice_id = invoice
            .id
            .map(|id| id.to_string())
            .ok_or_else(|| StripeFailure::Unexpected("invoice without an id".into()))?;
        let request = CreateInvoiceItem::new()
            .customer(req.customer)
            .invoice(invoice_id.as_str())
            .amount(req.amount.minor())
            .currency(currency)
            .metadata(metadata)
            .customize()
            .request_strategy(idempotent(&format!("ii-create-{}", req.transaction_id))?);
        self.client.send("create_coupon_invoice", request).await?;
        Ok(invoice_id)
    }

    /// Finalizes the invoice; a zero-total invoice is paid on finalization.
    pub async fn finalize_invoice(
        &self,
        invoice_id: &str,
        transaction_id: TransactionId,
    ) -> Result<(), StripeFailure> {
        let request = FinalizeInvoiceInvoice::new(invoice_id)
            .auto_advance(false)
            .customize()
            .request_strategy(idempotent(&format!("in-finalize-{transaction_id}"))?);
        self.client.send("finalize_invoice", request).await?;
        Ok(())
    }
}

fn redeemable_coupon(
    coupon: &Coupon,
    discount: Discount,
    now: i64,
) -> Result<Redeemable, CouponProblem> {
    if coupon.redeem_by.is_some_and(|at| at <= now) {
        return Err(CouponProblem::Expired);
    }
    if coupon
        .max_redemptions
        .is_some_and(|max| coupon.times_redeemed >= max)
    {
        return Err(CouponProblem::Exhausted);
    }
    if !coupon.valid {
        return Err(CouponProblem::NotValid);
    }
    if coupon.percent_off.is_some() {
        return Err(CouponProblem::PercentOff);
    }
    let currency = coupon
        .currency
        .as_ref()
        .map(|c| Currency::parse(&c.to_string()));
    match (coupon.amount_off, currency) {
        (Some(amount_off), Some(Ok(currency))) => Money::new(amount_off, currency)
            .map(|amount_off| Redeemable {
                discount,
                coupon_id: coupon.id.to_string(),
                amount_off,
            })
            .map_err(|_| CouponProblem::NoAmount),
        _ => Err(CouponProblem::NoAmount),
    }
}
