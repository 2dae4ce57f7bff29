//! ApplyCoupon: a promotion code (or coupon id) redeemed as wallet credit through a
//! zero-total invoice. The transaction row exists before the invoice is finalized;
//! the credit arrives with the invoice's `paid` event through the ingestor.

use payments_core::{
    Currency, Signal, Transaction, TransactionKind, TransactionStatus,
    store::{self, NewTransaction, StoreError, StripeRefs},
};
use payments_proto::payments::v1 as pb;
use tonic::Code;

use super::{AppState, charge, convert, customers::ensure_customer, idempotency, input};
use crate::{
    auth::{Caller, authorize_user},
    error::{ApiError, ApiResult, Reason, Refusal, code as code_of},
    stripe_client::{CouponInvoice, CouponProblem, Redeemable, Redeemer},
};

/// The index that lets a user redeem a code once (unless the redemption failed); its
/// sibling `transactions_coupon_once_per_coupon` does the same per Stripe coupon.
const COUPON_ONCE: &str = "transactions_coupon_once";

#[tracing::instrument(skip_all, fields(user_id = %req.user_id, idempotency_key = %req.idempotency_key))]
pub async fn apply_coupon(
    state: &AppState,
    caller: &Caller,
    req: pb::ApplyCouponRequest,
) -> ApiResult<pb::ApplyCouponResponse> {
    let user = authorize_user(caller, &req.user_id)?;
    let code = input::coupon_code(&req.code)?;
    let key = input::idempotency_key(&req.idempotency_key)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let currency = state.wallet_currency(&mut conn, &user).await?;
    let fingerprint =
        idempotency::fingerprint(&[("kind", "coupon"), ("code", &code.to_lowercase())]);
    let request = idempotency::Request {
        user_id: &user,
        idempotency_key: &key,
        fingerprint: &fingerprint,
    };
    let (tx, redeemable) = match idempotency::replay(&mut conn, request).await? {
        Some(tx) => {
            drop(conn);
            (tx, None)
        }
        None => {
            // Checked before asking Stripe; the unique index still decides races.
            if store::coupon_redeemed(&mut conn, &user, &code).await? {
                return Err(StoreError::Conflict(COUPON_ONCE.into()).into());
            }
            let customer = store::stripe_customer(&mut conn, &user).await?;
            let has_paid_before = store::has_paid_before(&mut conn, &user).await?;
            // No connection is held while Stripe looks the code up.
            drop(conn);
            let redeemer = Redeemer {
                customer: customer.as_deref(),
                has_paid_before,
            };
            let redeemable = redeemable(state, &code, currency, redeemer).await?;
            let new = NewTransaction {
                user_id: user.clone(),
                kind: TransactionKind::Coupon,
                amount: redeemable.amount_off,
                payment_method_id: None,
                coupon_code: Some(code.clone()),
                card_fingerprint: None,
                trial_credit: None,
                idempotency_key: key.clone(),
                request_fingerprint: fingerprint.clone(),
            };
            // The coupon behind the code is recorded with the row: the index on it
            // refuses a second live redemption of the coupon under any code.
            let mut db = store::begin(&state.pool, "apply_coupon").await?;
            let tx = idempotency::claim(&mut db, &new).await?;
            store::set_coupon_id(&mut db, tx.id, &redeemable.coupon_id).await?;
            db.commit().await?;
            (tx, Some(redeemable))
        }
    };
    let tx = drive(state, tx, redeemable).await?;
    Ok(pb::ApplyCouponResponse {
        transaction: Some(convert::transaction(&tx)),
    })
}

/// Looks the code up at Stripe and checks it can be credited to this wallet.
async fn redeemable(
    state: &AppState,
    code: &str,
    currency: Currency,
    redeemer: Redeemer<'_>,
) -> ApiResult<Redeemable> {
    let now = chrono::Utc::now().timestamp();
    let redeemable = state
        .stripe
        .find_redeemable(code, now, state.wallet.accept_coupon_ids, redeemer)
        .await?
        .map_err(|problem| refusal(problem, code))?;
    if redeemable.amount_off.currency() != currency {
        return Err(Refusal::new(
            Reason::CouponCurrencyMismatch,
            format!(
                "{code} is worth {}, but the wallet is in {currency}",
                redeemable.amount_off
            ),
        )
        .with(
            "coupon_currency",
            redeemable.amount_off.currency().to_string(),
        )
        .with("wallet_currency", currency.to_string())
        .into());
    }
    Ok(redeemable)
}

/// The error for a code that cannot be redeemed.
fn refusal(problem: CouponProblem, code: &str) -> ApiError {
    match problem {
        CouponProblem::Unknown => ApiError::invalid_as(
            Reason::CouponNotFound,
            "code",
            format!("{code} is not a promotion code (nor, where accepted, a coupon id)"),
        ),
        CouponProblem::PercentOff => ApiError::invalid_as(
            Reason::CouponNotFixedAmount,
            "code",
            format!("{code} is a percent-off coupon; only fixed amounts become wallet credit"),
        ),
        CouponProblem::NoAmount => ApiError::invalid_as(
            Reason::CouponNotFixedAmount,
            "code",
            format!("{code} names no fixed amount and currency"),
        ),
        CouponProblem::NotValid => {
            ApiError::refused(Reason::CouponInactive, format!("{code} is no longer valid"))
        }
        CouponProblem::Expired => {
            ApiError::refused(Reason::CouponExpired, format!("{code} has expired"))
        }
        CouponProblem::NotEligible(restriction) => Refusal::new(
            Reason::CouponNotEligible,
            format!("{code} cannot be redeemed here: its {restriction} restriction excludes it"),
        )
        .with("restriction", restriction)
        .into(),
        CouponProblem::Exhausted => ApiError::refused(
            Reason::CouponExhausted,
            format!("{code} has reached its maximum number of redemptions"),
        ),
    }
}

/// Creates (or, on a retry, finishes) the invoice of a transaction still CREATED.
/// Every step has its own Stripe idempotency key, and the invoice id is recorded
/// even when a later step fails, so a retry or reconciliation can finish the job.
/// As with card payments (`charge::drive`), no connection or row lock is held while
/// Stripe answers: concurrent retries send the same keys and record the same answer.
async fn drive(
    state: &AppState,
    tx: Transaction,
    redeemable: Option<Redeemable>,
) -> ApiResult<Transaction> {
    if tx.status != TransactionStatus::Created {
        return Ok(tx);
    }
    let customer = ensure_customer(state, &tx.user_id).await?;
    let invoice = match tx.stripe_invoice_id.clone() {
        Some(id) => Ok(id),
        None => create_invoice(state, &tx, &customer, redeemable).await,
    };
    let signal = match invoice {
        Ok(invoice_id) => {
            let refs = StripeRefs {
                invoice_id: Some(&invoice_id),
                ..StripeRefs::default()
            };
            let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
            store::set_stripe_refs(&mut conn, tx.id, &refs).await?;
            drop(conn);
            match state.stripe.finalize_invoice(&invoice_id, tx.id).await {
                Ok(()) => Signal::Processing,
                Err(failure) => charge::refused(failure)?.1,
            }
        }
        Err(Failed::Signal(signal)) => signal,
        Err(Failed::Error(e)) => return Err(e),
    };
    let mut db = store::begin(&state.pool, "apply_coupon").await?;
    let updated = charge::record(&mut db, &tx, Some(&signal)).await?;
    db.commit().await?;
    Ok(updated)
}

/// Why no invoice was created: an answer that fails the transaction, or an error.
enum Failed {
    Signal(Signal),
    Error(ApiError),
}

async fn create_invoice(
    state: &AppState,
    tx: &Transaction,
    customer: &str,
    redeemable: Option<Redeemable>,
) -> Result<String, Failed> {
    let code = tx.coupon_code.clone().unwrap_or_default();
    // A retry finds the code again: the first attempt's answer was not kept.
    let redeemable = match redeemable {
        Some(r) => r,
        None => match redeemable_again(state, &code, tx.currency(), customer).await {
            Ok(r) => r,
            Err(e) => return Err(e),
        },
    };
    let request = CouponInvoice {
        transaction_id: tx.id,
        customer,
        discount: &redeemable.discount,
        amount: tx.amount,
    };
    match state.stripe.create_coupon_invoice(&request).await {
        Ok(id) => Ok(id),
        Err(failure) => match charge::refused(failure) {
            Ok((_, signal)) => Err(Failed::Signal(signal)),
            Err(e) => Err(Failed::Error(e)),
        },
    }
}

/// On a retry, a code that can no longer be redeemed fails the transaction.
async fn redeemable_again(
    state: &AppState,
    code: &str,
    currency: Currency,
    customer: &str,
) -> Result<Redeemable, Failed> {
    // The first attempt checked the user's history; the code's own rules are checked again.
    let redeemer = Redeemer {
        customer: Some(customer),
        has_paid_before: false,
    };
    match redeemable(state, code, currency, redeemer).await {
        Ok(r) => Ok(r),
        // A refusal of the code itself (not a limit or an outage) fails the transaction.
        Err(ApiError::Refused(refusal))
            if matches!(
                code_of(refusal.reason),
                Code::InvalidArgument | Code::FailedPrecondition
            ) =>
        {
            Err(Failed::Signal(Signal::Failed {
                code: "coupon_invalid".into(),
                message: refusal.message,
            }))
        }
        Err(e) => Err(Failed::Error(e)),
    }
}
