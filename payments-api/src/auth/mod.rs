//! Who is calling, and for whom they may act.
//!
//! Every RPC carries `authorization: Bearer <JWT>`. The [`Authenticate`] layer has the
//! [`Authenticator`] verify it (`verify`: HS256 with a shared secret, RS256 with a
//! public key file, RS256 or ES256 with an identity provider's keys from `jwks`;
//! `exp`, `nbf`, `iss`, `aud`) and puts a [`Caller`] in the request's extensions. A
//! user token acts only for its own `sub`; a token whose role claim holds the service
//! role acts for any user. Another user's transaction or card is reported as not
//! found, so ids cannot be probed.

mod jwks;
mod verify;

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use payments_core::{Transaction, TransactionId, UserId};
use tonic::{Request, Status, server::NamedService};
use tower::{Layer, Service};

pub use verify::{Authenticator, KeyError};

use crate::error::{ApiError, Reason};

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An end user: may act only for itself.
    User(UserId),
    /// An internal service (the service role in its role claim): may act for any user.
    Service { subject: String },
}

/// The tower layer in front of `PaymentsService` and `PaymentsAdmin`: verifies the
/// bearer token (asynchronously: a provider's keys may need fetching) and records the
/// [`Caller`] in the request's extensions, or answers UNAUTHENTICATED without calling
/// the service.
#[derive(Clone)]
pub struct Authenticate {
    authenticator: Authenticator,
}

impl Authenticate {
    pub fn new(authenticator: Authenticator) -> Self {
        Authenticate { authenticator }
    }
}

impl<S> Layer<S> for Authenticate {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// A service whose callers are verified first.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Authenticator,
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service polled ready goes into the future; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match authenticator.verify(header).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(refused) => Ok(Status::from(refused).into_http()),
            }
        })
    }
}

/// The caller [`Authenticate`] recorded.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, ApiError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::refused(Reason::TokenMissing, "missing authorization"))
}

/// The user a request may act for: `requested`, if the caller may act for it. An
/// empty `requested` means the calling user itself.
pub fn authorize_user(caller: &Caller, requested: &str) -> Result<UserId, ApiError> {
    match caller {
        Caller::User(me) if requested.is_empty() || requested == me.as_str() => Ok(me.clone()),
        Caller::User(_) => Err(ApiError::refused(
            Reason::UserIdMismatch,
            "a user token may only act for its own user_id",
        )),
        Caller::Service { .. } if requested.is_empty() => Err(ApiError::invalid(
            "user_id",
            "required with a service token",
        )),
        Caller::Service { .. } => {
            UserId::parse(requested).map_err(|e| ApiError::invalid("user_id", e.to_string()))
        }
    }
}

/// Whether the caller may see this transaction; another user's is "not found".
pub fn authorize_transaction(caller: &Caller, tx: &Transaction) -> Result<(), ApiError> {
    match caller {
        Caller::User(me) if *me != tx.user_id => Err(transaction_not_found(tx.id)),
        _ => Ok(()),
    }
}

/// Operator RPCs accept service tokens only.
pub fn require_service(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Service { .. } => Ok(()),
        Caller::User(_) => Err(ApiError::refused(
            Reason::ServiceTokenRequired,
            "this RPC needs a service token",
        )),
    }
}

/// What a missing transaction, and one the caller may not see, both look like.
pub fn transaction_not_found(id: TransactionId) -> ApiError {
    ApiError::refused(
        Reason::TransactionNotFound,
        format!("transaction {id} not found"),
    )
}

#[cfg(test)]
mod tests;
