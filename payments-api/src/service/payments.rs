//! CreatePayment: a wallet top-up by card.

use payments_core::{
    Currency, Money, PaymentMethodId, TransactionKind, UserId,
    store::{self, NewTransaction, PaymentMethodRow, StoreError},
};
use payments_proto::payments::v1 as pb;
use sqlx::PgConnection;

use super::{AppState, charge, convert, idempotency, input};
use crate::{
    auth::{Caller, authorize_user},
    error::{ApiError, ApiResult, Reason},
};

#[tracing::instrument(skip_all, fields(user_id = %req.user_id, idempotency_key = %req.idempotency_key))]
pub async fn create_payment(
    state: &AppState,
    caller: &Caller,
    req: pb::CreatePaymentRequest,
) -> ApiResult<pb::CreatePaymentResponse> {
    let user = authorize_user(caller, &req.user_id)?;
    let key = input::idempotency_key(&req.idempotency_key)?;
    let payment_method = input::payment_method_id(&req.payment_method_id)?;
    let currency = input::currency(&req.currency)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let money = check_amount(state, &mut conn, &user, req.amount, currency).await?;
    let amount = req.amount.to_string();
    let new = NewTransaction {
        user_id: user.clone(),
        kind: TransactionKind::Payment,
        amount: money,
        payment_method_id: Some(payment_method.to_string()),
        coupon_code: None,
        card_fingerprint: None,
        trial_credit: None,
        idempotency_key: key,
        request_fingerprint: idempotency::fingerprint(&[
            ("kind", "payment"),
            ("payment_method_id", payment_method.as_str()),
            ("amount", &amount),
            ("currency", currency.as_str()),
        ]),
    };
    // A retry returns (or resumes) what the key already holds, even if the card has
    // been detached since.
    let tx = match idempotency::replay(&mut conn, &new).await? {
        Some(tx) => tx,
        None => {
            owned_payment_method(&mut conn, &user, &payment_method).await?;
            idempotency::claim(&mut conn, &new).await?
        }
    };
    drop(conn);
    let tx = charge::drive(state, tx).await?;
    Ok(pb::CreatePaymentResponse {
        client_secret: convert::client_secret(&tx),
        transaction: Some(convert::transaction(&tx)),
    })
}

/// A top-up is in the wallet's currency and at least the configured minimum.
async fn check_amount(
    state: &AppState,
    conn: &mut PgConnection,
    user: &UserId,
    amount: i64,
    currency: Currency,
) -> ApiResult<Money> {
    let wallet_currency = state.wallet_currency(conn, user).await?;
    if currency != wallet_currency {
        return Err(ApiError::invalid(
            "currency",
            format!("must be the wallet's currency, {wallet_currency}"),
        ));
    }
    if amount < state.wallet.min_topup {
        return Err(ApiError::invalid(
            "amount",
            format!(
                "must be at least {} (minor units of {currency})",
                state.wallet.min_topup
            ),
        ));
    }
    if amount > state.wallet.max_amount {
        return Err(ApiError::invalid(
            "amount",
            format!(
                "must be at most {} (minor units of {currency})",
                state.wallet.max_amount
            ),
        ));
    }
    Money::new(amount, currency).map_err(|e| ApiError::invalid("amount", e.to_string()))
}

/// The user's attached (not detached) payment method; another user's looks the
/// same as one that does not exist.
pub async fn owned_payment_method(
    conn: &mut PgConnection,
    user: &UserId,
    id: &PaymentMethodId,
) -> ApiResult<PaymentMethodRow> {
    store::get_payment_method(conn, user, id.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::refused(
                Reason::PaymentMethodNotFound,
                format!(
                    "payment method {id} is not attached to this user (AttachPaymentMethod first)"
                ),
            )
        })
}
