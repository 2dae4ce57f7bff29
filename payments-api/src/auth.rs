//! Who is calling, and for whom they may act.
//!
//! Every RPC carries `authorization: Bearer <JWT>`. The [`Authenticator`] interceptor
//! verifies it (HS256 or RS256, `exp` and `sub` required, one algorithm only) and
//! puts a [`Caller`] in the request's extensions. A user token acts only for its own
//! `sub`; a token with `"role": "service"` acts for any user. Another user's
//! transaction or card is reported as not found, so ids cannot be probed.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use payments_core::{Transaction, TransactionId, UserId};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tonic::{Request, Status, service::Interceptor};

use crate::{
    config::JwtKey,
    error::{ApiError, Reason},
};

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An end user: may act only for itself.
    User(UserId),
    /// An internal service (`"role": "service"`): may act for any user.
    Service { subject: String },
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
}

/// Verifies bearer tokens; the gRPC interceptor in front of every RPC.
#[derive(Clone)]
pub struct Authenticator {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl Authenticator {
    pub fn new(key: &JwtKey) -> Result<Self, jsonwebtoken::errors::Error> {
        let (key, algorithm) = match key {
            JwtKey::Hs256(secret) => (
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                Algorithm::HS256,
            ),
            JwtKey::Rs256Pem(pem) => (DecodingKey::from_rsa_pem(pem)?, Algorithm::RS256),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Ok(Authenticator {
            key: Arc::new(key),
            validation: Arc::new(validation),
        })
    }

    /// Verifies the `authorization` header's value.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let header = authorization.ok_or_else(|| {
            ApiError::refused(
                Reason::TokenMissing,
                "missing authorization: Bearer <token>",
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::refused(
                    Reason::TokenMissing,
                    "authorization must be \"Bearer <token>\"",
                )
            })?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| rejection(e.kind()))?
            .claims;
        if claims.role.as_deref() == Some("service") {
            return Ok(Caller::Service {
                subject: claims.sub,
            });
        }
        UserId::parse(&claims.sub).map(Caller::User).map_err(|_| {
            ApiError::refused(
                Reason::TokenInvalid,
                "the token's sub is not a valid user id",
            )
        })
    }
}

fn rejection(kind: &ErrorKind) -> ApiError {
    let why = match kind {
        ErrorKind::ExpiredSignature => {
            return ApiError::refused(Reason::TokenExpired, "the token has expired");
        }
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::InvalidAlgorithm => "the token is signed with an algorithm not accepted here",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, sub)",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        _ => "the token is not a valid JWT",
    };
    ApiError::refused(Reason::TokenInvalid, why)
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let caller = self.verify(header)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The caller the interceptor recorded.
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
#[path = "auth_tests.rs"]
mod tests;
