//! WatchTransaction: the current state, then every committed change, until the
//! transaction settles or reaches the awaited status.

use futures::StreamExt;
use payments_proto::payments::v1 as pb;
use tonic::Status;

use super::{AppState, UpdateStream, convert, input};
use crate::{
    auth::{Caller, authorize_transaction, transaction_not_found},
    error::{ApiError, ApiResult},
};

pub async fn watch_transaction(
    state: &AppState,
    caller: &Caller,
    req: pb::WatchTransactionRequest,
) -> ApiResult<UpdateStream> {
    let id = input::transaction_id(&req.transaction_id)?;
    let await_status = match req.await_status {
        None | Some(0) => None,
        Some(value) => Some(convert::status_from_wire(value).ok_or_else(|| {
            ApiError::invalid(
                "await_status",
                format!("{value} is not a TransactionStatus"),
            )
        })?),
    };
    let watch = state
        .hub
        .watch(id, await_status)
        .await?
        .ok_or_else(|| transaction_not_found(id))?;
    authorize_transaction(caller, watch.snapshot())?;
    let updates = watch.into_stream().map(|next| match next {
        Ok(tx) => Ok(pb::TransactionUpdate {
            transaction: Some(convert::transaction(&tx)),
        }),
        Err(e) => Err(Status::from(ApiError::from(e))),
    });
    Ok(Box::pin(updates))
}
