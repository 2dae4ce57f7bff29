//! ValidatePaymentMethod and StartTrial: a small manual-capture hold that proves a
//! card (released once it succeeds); StartTrial's success also grants the trial.
//! Neither request carries an idempotency key, so one is derived from the user, the
//! card and the purpose (see [`idempotency::derived_key`]).

use payments_core::{
    Money, Transaction, TransactionKind, UserId,
    store::{self, NewTransaction, PaymentMethodRow, StoreError, TrialState},
};
use payments_proto::payments::v1 as pb;

use super::{AppState, charge, convert, idempotency, input, payments::owned_payment_method};
use crate::{
    auth::{Caller, authorize_user},
    error::{ApiError, ApiResult, Reason, Refusal},
};

#[tracing::instrument(skip_all, fields(user_id = %req.user_id, payment_method_id = %req.payment_method_id))]
pub async fn validate_payment_method(
    state: &AppState,
    caller: &Caller,
    req: pb::ValidatePaymentMethodRequest,
) -> ApiResult<pb::ValidatePaymentMethodResponse> {
    let user = authorize_user(caller, &req.user_id)?;
    let payment_method = input::payment_method_id(&req.payment_method_id)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let card = owned_payment_method(&mut conn, &user, &payment_method).await?;
    // Already proven: answer with the validation that proved it, charging nothing.
    if card.validated()
        && let Some(tx) = store::validating_transaction(&mut conn, &user, &card.id).await?
    {
        return Ok(validation_response(&tx));
    }
    let currency = state.wallet_currency(&mut conn, &user).await?;
    let key = idempotency::derived_key(&mut conn, &user, "validate", &card.id).await?;
    let new = validation(state, &user, &card, currency, key, None)?;
    let tx = idempotency::claim(&mut conn, &new).await?;
    drop(conn);
    let tx = charge::drive(state, tx).await?;
    Ok(validation_response(&tx))
}

fn validation_response(tx: &Transaction) -> pb::ValidatePaymentMethodResponse {
    pb::ValidatePaymentMethodResponse {
        client_secret: convert::client_secret(tx),
        transaction: Some(convert::transaction(tx)),
    }
}

/// A card validation of `card`; with `trial_credit`, its success grants the trial.
fn validation(
    state: &AppState,
    user: &UserId,
    card: &PaymentMethodRow,
    currency: payments_core::Currency,
    key: String,
    trial_credit: Option<i64>,
) -> ApiResult<NewTransaction> {
    let amount = state.wallet.validation_amount.to_string();
    let trial = trial_credit.map(|c| c.to_string()).unwrap_or_default();
    // The configuration only holds positive amounts.
    let money = |minor| {
        Money::new(minor, currency).map_err(|e| ApiError::internal("a configured amount", e))
    };
    Ok(NewTransaction {
        user_id: user.clone(),
        kind: TransactionKind::CardValidation,
        amount: money(state.wallet.validation_amount)?,
        payment_method_id: Some(card.id.clone()),
        coupon_code: None,
        card_fingerprint: Some(card.fingerprint.clone()).filter(|f| !f.is_empty()),
        trial_credit: trial_credit.map(money).transpose()?,
        idempotency_key: key,
        request_fingerprint: idempotency::fingerprint(&[
            ("kind", "card_validation"),
            ("payment_method_id", &card.id),
            ("amount", &amount),
            ("currency", currency.as_str()),
            ("trial_credit", &trial),
        ]),
    })
}

#[tracing::instrument(skip_all, fields(user_id = %req.user_id, payment_method_id = %req.payment_method_id))]
pub async fn start_trial(
    state: &AppState,
    caller: &Caller,
    req: pb::StartTrialRequest,
) -> ApiResult<pb::StartTrialResponse> {
    let user = authorize_user(caller, &req.user_id)?;
    let payment_method = input::payment_method_id(&req.payment_method_id)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let card = owned_payment_method(&mut conn, &user, &payment_method).await?;
    let wallet = store::ensure_wallet(&mut conn, &user, state.wallet.currency).await?;
    match wallet.trial_state {
        TrialState::None => {}
        TrialState::Active => {
            return Err(trial_used(
                "wallet",
                "the trial has already started for this wallet",
            ));
        }
        TrialState::Ended => {
            return Err(trial_used(
                "wallet",
                "the trial of this wallet has already ended; there is one trial per user",
            ));
        }
    }
    if card.fingerprint.is_empty() {
        return Err(ApiError::refused(
            Reason::CardFingerprintMissing,
            "Stripe gave no fingerprint for this card, so it cannot start a trial",
        ));
    }
    if store::card_had_trial(&mut conn, &card.fingerprint).await? {
        return Err(trial_used(
            "card",
            "this card has already been used to start a trial",
        ));
    }
    let key = idempotency::derived_key(&mut conn, &user, "trial", &card.id).await?;
    let new = validation(
        state,
        &user,
        &card,
        wallet.currency,
        key,
        Some(state.wallet.trial_credit),
    )?;
    let tx = idempotency::claim(&mut conn, &new).await?;
    drop(conn);
    let tx = charge::drive(state, tx).await?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let wallet = store::ensure_wallet(&mut conn, &user, state.wallet.currency).await?;
    let methods = store::list_payment_methods(&mut conn, &user).await?;
    Ok(pb::StartTrialResponse {
        client_secret: convert::client_secret(&tx),
        transaction: Some(convert::transaction(&tx)),
        wallet: Some(convert::wallet(&wallet, &methods)),
    })
}

/// TRIAL_ALREADY_USED, saying whether the wallet or the card had it.
fn trial_used(used_by: &'static str, message: &str) -> ApiError {
    Refusal::new(Reason::TrialAlreadyUsed, message)
        .with("used_by", used_by)
        .into()
}
