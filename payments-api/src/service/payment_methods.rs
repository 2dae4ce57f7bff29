//! AttachPaymentMethod, ListPaymentMethods, DetachPaymentMethod.

use payments_core::store::{self, StoreError, Upserted};
use payments_proto::payments::v1 as pb;

use super::{AppState, convert, customers::ensure_customer, input, payments::owned_payment_method};
use crate::{
    auth::{Caller, authorize_user},
    error::{ApiError, ApiResult, Reason},
};

/// Attaches the card to the user's Stripe customer (created on first use) and
/// records it; the stored id is the one the other RPCs take. A card recorded for
/// another user is refused before Stripe is called, so a refusal changes nothing
/// at Stripe.
#[tracing::instrument(skip_all, fields(user_id = %req.user_id))]
pub async fn attach(
    state: &AppState,
    caller: &Caller,
    req: pb::AttachPaymentMethodRequest,
) -> ApiResult<pb::PaymentMethod> {
    let user = authorize_user(caller, &req.user_id)?;
    let payment_method = input::payment_method_id(&req.payment_method_id)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let owner = store::payment_method_owner(&mut conn, payment_method.as_str()).await?;
    drop(conn);
    if owner.is_some_and(|owner| owner != user) {
        return Err(attached_elsewhere());
    }
    let customer = ensure_customer(state, &user).await?;
    let card = state
        .stripe
        .attach_payment_method(payment_method.as_str(), &customer)
        .await
        .map_err(|failure| match failure {
            f if f.is_missing() => ApiError::invalid_as(
                Reason::PaymentMethodUnknown,
                "payment_method_id",
                format!("Stripe knows no payment method {payment_method}"),
            ),
            other => other.into(),
        })?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    match store::upsert_payment_method(&mut conn, &user, &card).await? {
        Upserted::Recorded(row) => Ok(convert::payment_method(&row)),
        // Recorded for another user after our check (a race): Stripe has attached
        // it to this user's customer meanwhile, which the refusal reports.
        Upserted::OwnedByAnotherUser => Err(attached_elsewhere()),
    }
}

fn attached_elsewhere() -> ApiError {
    ApiError::refused(
        Reason::PaymentMethodAttachedElsewhere,
        "this payment method is recorded for another customer",
    )
}

pub async fn list(
    state: &AppState,
    caller: &Caller,
    req: pb::ListPaymentMethodsRequest,
) -> ApiResult<pb::ListPaymentMethodsResponse> {
    let user = authorize_user(caller, &req.user_id)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let rows = store::list_payment_methods(&mut conn, &user).await?;
    Ok(pb::ListPaymentMethodsResponse {
        payment_methods: rows.iter().map(convert::payment_method).collect(),
    })
}

/// Detaches the card in Stripe, then marks it detached here. Another user's card
/// (or one never attached) is not found.
#[tracing::instrument(skip_all, fields(user_id = %req.user_id, payment_method_id = %req.payment_method_id))]
pub async fn detach(
    state: &AppState,
    caller: &Caller,
    req: pb::DetachPaymentMethodRequest,
) -> ApiResult<pb::PaymentMethod> {
    let user = authorize_user(caller, &req.user_id)?;
    let payment_method = input::payment_method_id(&req.payment_method_id)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    owned_payment_method(&mut conn, &user, &payment_method).await?;
    // No connection is held while Stripe answers.
    drop(conn);
    state
        .stripe
        .detach_payment_method(payment_method.as_str())
        .await?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let row = store::mark_detached(&mut conn, payment_method.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::refused(
                Reason::PaymentMethodNotFound,
                format!("payment method {payment_method} not found"),
            )
        })?;
    Ok(convert::payment_method(&row))
}
