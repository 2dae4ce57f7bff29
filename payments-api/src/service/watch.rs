//! WatchTransaction: the current state, then every committed change, until the
//! transaction settles, reaches the awaited status, or the stream's lifetime ends.

use futures::StreamExt;
use payments_proto::payments::v1 as pb;
use tonic::Status;

use super::{AppState, UpdateStream, convert, input};
use crate::{
    auth::{Caller, authorize_transaction, transaction_not_found},
    error::{ApiError, ApiResult},
};

/// A user's stream is counted against its cap before anything is read, so a user at
/// the cap costs the database nothing; a service (acting for many users) counts only
/// against the instance's cap. The snapshot is read and its owner checked before the
/// hub subscribes, so a watch of a transaction the caller may not see ends after that
/// one read, holding no slot.
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
    let user = match caller {
        Caller::User(me) => Some(me.as_str()),
        Caller::Service { .. } => None,
    };
    let permit = state.watch_limits.acquire(user)?;
    let snapshot = state
        .hub
        .read(id)
        .await?
        .ok_or_else(|| transaction_not_found(id))?;
    authorize_transaction(caller, &snapshot)?;
    let watch = state.hub.watch_from(snapshot, await_status);
    let updates = watch.into_stream().map(move |next| {
        // The permit lives as long as the stream: dropping the stream frees its place.
        let _counted = &permit;
        match next {
            Ok(tx) => Ok(pb::TransactionUpdate {
                transaction: Some(convert::transaction(&tx)),
            }),
            Err(end) => Err(Status::from(ApiError::from(end))),
        }
    });
    Ok(Box::pin(updates))
}
