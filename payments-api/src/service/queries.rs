//! GetTransaction, ListTransactions and GetWallet.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::DateTime;
use payments_core::store::{self, ListCursor, StoreError, TrialState, Wallet};
use payments_proto::payments::v1 as pb;
use uuid::Uuid;

use super::{AppState, convert, input};
use crate::{
    auth::{Caller, authorize_transaction, authorize_user, transaction_not_found},
    error::{ApiError, ApiResult},
};

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

pub async fn get_transaction(
    state: &AppState,
    caller: &Caller,
    req: pb::GetTransactionRequest,
) -> ApiResult<pb::Transaction> {
    let id = input::transaction_id(&req.transaction_id)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let tx = store::get_transaction(&mut conn, id)
        .await?
        .ok_or_else(|| transaction_not_found(id))?;
    authorize_transaction(caller, &tx)?;
    Ok(convert::transaction(&tx))
}

/// Newest first. The page token is opaque to callers: base64 of the last row's
/// creation time (microseconds) and id.
pub async fn list_transactions(
    state: &AppState,
    caller: &Caller,
    req: pb::ListTransactionsRequest,
) -> ApiResult<pb::ListTransactionsResponse> {
    let user = authorize_user(caller, &req.user_id)?;
    let page_size = match i64::from(req.page_size) {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => return Err(ApiError::invalid("page_size", "must not be negative")),
        n => n.min(MAX_PAGE_SIZE),
    };
    let after = match req.page_token.as_str() {
        "" => None,
        token => Some(decode_page_token(token)?),
    };
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let mut rows = store::list_transactions(&mut conn, &user, page_size + 1, after).await?;
    let more = rows.len() as i64 > page_size;
    rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let next_page_token = match rows.last() {
        Some(last) if more => encode_page_token(&ListCursor {
            created_at: last.created_at,
            id: last.id.as_uuid(),
        }),
        _ => String::new(),
    };
    Ok(pb::ListTransactionsResponse {
        transactions: rows.iter().map(convert::transaction).collect(),
        next_page_token,
    })
}

pub fn encode_page_token(cursor: &ListCursor) -> String {
    let raw = format!("{}:{}", cursor.created_at.timestamp_micros(), cursor.id);
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_page_token(token: &str) -> ApiResult<ListCursor> {
    let bad = || ApiError::invalid("page_token", "not a token from a previous page");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = raw.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(ListCursor {
        created_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

/// The user's wallet. A user without one gets an empty wallet in the configured
/// currency (what the first top-up would create) rather than NOT_FOUND.
pub async fn get_wallet(
    state: &AppState,
    caller: &Caller,
    req: pb::GetWalletRequest,
) -> ApiResult<pb::Wallet> {
    let user = authorize_user(caller, &req.user_id)?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let wallet = store::get_wallet(&mut conn, &user)
        .await?
        .unwrap_or_else(|| Wallet {
            user_id: user.clone(),
            balance: 0,
            currency: state.wallet.currency,
            trial_state: TrialState::None,
            trial_credit: 0,
            trial_started_at: None,
            trial_ended_at: None,
        });
    let methods = store::list_payment_methods(&mut conn, &user).await?;
    Ok(convert::wallet(&wallet, &methods))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_names_the_field() {
        let cursor = ListCursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time"),
            id: Uuid::new_v4(),
        };
        let token = encode_page_token(&cursor);
        assert_eq!(decode_page_token(&token).expect("decodes"), cursor);
        for garbage in [
            "",
            "!!",
            "bm90LWEtdG9rZW4",
            &URL_SAFE_NO_PAD.encode("1:nope"),
        ] {
            assert!(matches!(
                decode_page_token(garbage),
                Err(ApiError::Refused(refusal)) if refusal.field == Some("page_token")
            ));
        }
    }
}
