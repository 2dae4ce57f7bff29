//! The `PaymentsService` RPCs. This module only dispatches: each RPC is a function
//! of the shared [`AppState`], the verified [`Caller`] and the request message,
//! living with the others of its concern.
//!
//! - [`payments`], [`validation`] (ValidatePaymentMethod, StartTrial) and [`coupons`]
//!   create transactions; [`charge`] drives a card transaction's PaymentIntent.
//! - [`payment_methods`], [`queries`] and [`watch`] read and manage the rest.
//! - [`idempotency`], [`input`], [`convert`], [`customers`] and [`sql`] support them.

mod charge;
mod convert;
pub use convert::{timestamp, transaction};
pub use input::transaction_id;
mod coupons;
mod customers;
pub use customers::FirstCalls;
mod idempotency;
mod input;
mod payment_methods;
mod payments;
mod queries;
mod validation;
mod watch;

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use payments_core::store::{self, Wallet};
use payments_core::{Currency, StripeMode, UserId};
use payments_proto::payments::v1::{self as pb, payments_service_server::PaymentsService};
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};

use crate::{
    auth::{Caller, caller},
    config::WalletConfig,
    error::ApiResult,
    stripe_client::Stripe,
    watch::{WatchHub, WatchLimits},
};

/// What every handler shares.
pub struct AppState {
    pub pool: PgPool,
    pub stripe: Stripe,
    /// The mode of our Stripe key: the only mode whose events are applied.
    pub stripe_mode: StripeMode,
    pub wallet: WalletConfig,
    pub hub: WatchHub,
    /// The caps on open WatchTransaction streams.
    pub watch_limits: WatchLimits,
    /// Users whose Stripe customer is being created on this instance.
    pub first_calls: FirstCalls,
}

impl AppState {
    /// The currency the user's money is kept in: the wallet's, or the configured
    /// one for a wallet still to be created.
    async fn wallet_currency(&self, conn: &mut PgConnection, user: &UserId) -> ApiResult<Currency> {
        let wallet: Option<Wallet> = store::get_wallet(conn, user).await?;
        Ok(wallet.map_or(self.wallet.currency, |w| w.currency))
    }
}

/// The gRPC service: a handle on the shared state.
#[derive(Clone)]
pub struct PaymentsApi {
    state: Arc<AppState>,
}

impl PaymentsApi {
    pub fn new(state: Arc<AppState>) -> Self {
        PaymentsApi { state }
    }
}

/// Splits a request into the verified caller and the message.
fn parts<T>(request: Request<T>) -> Result<(Caller, T), Status> {
    let caller = caller(&request)?;
    Ok((caller, request.into_inner()))
}

fn respond<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::TransactionUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {
    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::CreatePaymentResponse>, Status> {
        let (caller, req) = parts(request)?;
        respond(payments::create_payment(&self.state, &caller, req).await)
    }

    async fn apply_coupon(
        &self,
        request: Request<pb::ApplyCouponRequest>,
    ) -> Result<Response<pb::ApplyCouponResponse>, Status> {
        let (caller, req) = parts(request)?;
        respond(coupons::apply_coupon(&self.state, &caller, req).await)
    }

    async fn validate_payment_method(
        &self,
        request: Request<pb::ValidatePaymentMethodRequest>,
    ) -> Result<Response<pb::ValidatePaymentMethodResponse>, Status> {
        let (caller, req) = parts(request)?;
        respond(validation::validate_payment_method(&self.state, &caller, req).await)
    }

    async fn start_trial(
        &self,
        request: Request<pb::StartTrialRequest>,
    ) -> Result<Response<pb::StartTrialResponse>, Status> {
        let (caller, req) = parts(request)?;
        respond(validation::start_trial(&self.state, &caller, req).await)
    }

    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let (caller, req) = parts(request)?;
        respond(queries::get_transaction(&self.state, &caller, req).await)
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let (caller, req) = parts(request)?;
        respond(queries::list_transactions(&self.state, &caller, req).await)
    }

    type WatchTransactionStream = UpdateStream;

    async fn watch_transaction(
        &self,
        request: Request<pb::WatchTransactionRequest>,
    ) -> Result<Response<Self::WatchTransactionStream>, Status> {
        let (caller, req) = parts(request)?;
        respond(watch::watch_transaction(&self.state, &caller, req).await)
    }

    async fn get_wallet(
        &self,
        request: Request<pb::GetWalletRequest>,
    ) -> Result<Response<pb::Wallet>, Status> {
        let (caller, req) = parts(request)?;
        respond(queries::get_wallet(&self.state, &caller, req).await)
    }

    async fn attach_payment_method(
        &self,
        request: Request<pb::AttachPaymentMethodRequest>,
    ) -> Result<Response<pb::PaymentMethod>, Status> {
        let (caller, req) = parts(request)?;
        respond(payment_methods::attach(&self.state, &caller, req).await)
    }

    async fn list_payment_methods(
        &self,
        request: Request<pb::ListPaymentMethodsRequest>,
    ) -> Result<Response<pb::ListPaymentMethodsResponse>, Status> {
        let (caller, req) = parts(request)?;
        respond(payment_methods::list(&self.state, &caller, req).await)
    }

    async fn detach_payment_method(
        &self,
        request: Request<pb::DetachPaymentMethodRequest>,
    ) -> Result<Response<pb::PaymentMethod>, Status> {
        let (caller, req) = parts(request)?;
        respond(payment_methods::detach(&self.state, &caller, req).await)
    }
}
