-- A coupon redeems once per user per Stripe coupon, whichever promotion code (or, where
-- accepted, the raw coupon id) named it: ApplyCoupon records the coupon behind the code.
-- Rows written before this have no coupon recorded; `transactions_coupon_once` (per
-- code string) still holds for every row, so their guarantee is kept.
ALTER TABLE transactions ADD COLUMN stripe_coupon_id text;

CREATE UNIQUE INDEX transactions_coupon_once_per_coupon ON transactions (user_id, stripe_coupon_id)
    WHERE kind = 'coupon' AND stripe_coupon_id IS NOT NULL AND status NOT IN ('failed', 'canceled');
