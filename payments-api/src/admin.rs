//! `PaymentsAdmin`, the operator service: service tokens only.

use std::sync::Arc;

use payments_core::{
    RetryPolicy, StripeEvent,
    inbox::{self, Report, Rules},
    reconcile::{self, ReconcileError, Reconciled, Scope},
    store::{self, StoreError, StoredEvent},
};
use payments_proto::payments::v1::{self as pb, payments_admin_server::PaymentsAdmin};
use tonic::{Request, Response, Status};

use crate::{
    auth::{caller, require_service, transaction_not_found},
    error::{ApiError, ApiResult, Reason},
    service::AppState,
};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

#[derive(Clone)]
pub struct AdminApi {
    state: Arc<AppState>,
}

impl AdminApi {
    pub fn new(state: Arc<AppState>) -> Self {
        AdminApi { state }
    }
}

/// The message of an operator request, once its caller is known to be a service.
fn operator<T>(request: Request<T>) -> Result<T, Status> {
    require_service(&caller(&request)?)?;
    Ok(request.into_inner())
}

fn event_message(e: &StoredEvent) -> pb::StripeEvent {
    pb::StripeEvent {
        id: e.id.to_string(),
        r#type: e.event_type.clone(),
        state: e.state.to_string(),
        attempts: e.attempts,
        last_error: e.last_error.clone().unwrap_or_default(),
        received_at: Some(crate::service::timestamp(e.received_at)),
        transaction_id: e
            .transaction_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

impl AdminApi {
    async fn list_dead(
        &self,
        req: pb::ListDeadEventsRequest,
    ) -> ApiResult<pb::ListDeadEventsResponse> {
        let limit = match i64::from(req.page_size) {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(ApiError::invalid("page_size", "must not be negative")),
            n => n.min(MAX_PAGE),
        };
        let mut conn = self.state.pool.acquire().await.map_err(StoreError::from)?;
        let events = store::list_dead_events(&mut conn, limit).await?;
        Ok(pb::ListDeadEventsResponse {
            events: events.iter().map(event_message).collect(),
        })
    }

    /// Applies a stored event again, now, with a fresh retry budget: what a dead
    /// event needs once its cause is fixed (the row it waited for exists, a flagged
    /// rule was resolved by hand). Applying is idempotent, so replaying an event that
    /// was applied changes nothing. If it still cannot be applied, it goes back in
    /// the ingestor's retry queue.
    async fn replay(&self, req: pb::ReplayEventRequest) -> ApiResult<pb::ReplayEventResponse> {
        if req.event_id.is_empty() {
            return Err(ApiError::invalid("event_id", "required"));
        }
        let mut db = store::begin(&self.state.pool, "replay_event").await?;
        let not_found = || {
            ApiError::refused(
                Reason::EventNotFound,
                format!("event {} not found", req.event_id),
            )
        };
        let stored = store::lock_event(&mut db, &req.event_id)
            .await?
            .ok_or_else(not_found)?;
        let event = StripeEvent::from_value(stored.payload).map_err(|e| {
            ApiError::refused(
                Reason::EventUnreadable,
                format!("the stored payload is not an event: {e}"),
            )
        })?;
        store::requeue_event(&mut db, &req.event_id).await?;
        let rules = Rules {
            retry: RetryPolicy::DEFAULT,
            mode: self.state.stripe_mode,
        };
        let report: Report = inbox::process(&mut db, &event, 0, &rules).await?;
        let stored = store::lock_event(&mut db, &req.event_id)
            .await?
            .ok_or_else(not_found)?;
        db.commit().await?;
        tracing::info!(
            event_id = %event.id, event_type = %event.event_type, state = report.state.as_str(),
            "event replayed by an operator"
        );
        Ok(pb::ReplayEventResponse {
            event: Some(event_message(&stored)),
        })
    }

    /// Reads the transaction's PaymentIntent or Invoice back from Stripe and applies
    /// the state it is in, through the same sequence as the ingestor's sweeper
    /// (`payments_core::reconcile`), whatever the transaction's age or status.
    async fn reconcile(&self, req: pb::ReconcileTransactionRequest) -> ApiResult<pb::Transaction> {
        let id = crate::service::transaction_id(&req.transaction_id)?;
        let reader = self.state.stripe.client();
        let done = reconcile::reconcile(&self.state.pool, id, reader, Scope::Any)
            .await
            .map_err(|e| match e {
                ReconcileError::NotFound(id) => transaction_not_found(id),
                ReconcileError::Stripe(failure) => failure.into(),
                ReconcileError::Store(e) => e.into(),
            })?;
        match &done.outcome {
            Reconciled::NotAtStripe => {
                return Err(ApiError::refused(
                    Reason::StripeObjectMissing,
                    "Stripe holds no object for this transaction: the request never reached it",
                ));
            }
            Reconciled::Applied { from, to } => tracing::info!(
                transaction_id = %id, from = from.as_str(), to = to.as_str(),
                "reconciled from Stripe by an operator"
            ),
            other => {
                tracing::info!(transaction_id = %id, outcome = other.label(), "reconciled by an operator")
            }
        }
        Ok(crate::service::transaction(&done.transaction))
    }

    async fn check_ledger(&self) -> ApiResult<pb::CheckLedgerResponse> {
        let mut conn = self.state.pool.acquire().await.map_err(StoreError::from)?;
        let report = store::check_ledger(&mut conn).await?;
        Ok(pb::CheckLedgerResponse {
            wallets_checked: report.wallets_checked,
            mismatches: report
                .mismatches
                .into_iter()
                .map(|m| pb::LedgerMismatch {
                    user_id: m.user_id,
                    balance: m.balance,
                    ledger_sum: m.ledger_sum,
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl PaymentsAdmin for AdminApi {
    async fn list_dead_events(
        &self,
        request: Request<pb::ListDeadEventsRequest>,
    ) -> Result<Response<pb::ListDeadEventsResponse>, Status> {
        let req = operator(request)?;
        Ok(Response::new(self.list_dead(req).await?))
    }

    async fn replay_event(
        &self,
        request: Request<pb::ReplayEventRequest>,
    ) -> Result<Response<pb::ReplayEventResponse>, Status> {
        let req = operator(request)?;
        Ok(Response::new(self.replay(req).await?))
    }

    async fn reconcile_transaction(
        &self,
        request: Request<pb::ReconcileTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let req = operator(request)?;
        Ok(Response::new(self.reconcile(req).await?))
    }

    async fn check_ledger(
        &self,
        request: Request<pb::CheckLedgerRequest>,
    ) -> Result<Response<pb::CheckLedgerResponse>, Status> {
        operator(request)?;
        Ok(Response::new(AdminApi::check_ledger(self).await?))
    }
}
