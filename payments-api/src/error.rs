//! The one error type of the RPC layer and its mapping to `tonic::Status`, in one place.
//!
//! Whatever the caller did wrong is named precisely; whatever went wrong inside is
//! logged with its whole `source()` chain and reaches the caller as an opaque message.

use std::error::Error as StdError;

use payments_core::store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::stripe_client::StripeFailure;

type Source = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// INVALID_ARGUMENT, with a `google.rpc.BadRequest` naming the field.
    #[error("{field}: {description}")]
    InvalidArgument {
        field: &'static str,
        description: String,
    },
    /// UNAUTHENTICATED: no bearer token, or one that does not verify.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// PERMISSION_DENIED: a user token asking to act for another user, or a user
    /// token on an operator RPC.
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// NOT_FOUND: also what another user's transaction or card looks like, so ids
    /// cannot be probed.
    #[error("{0}")]
    NotFound(String),
    /// FAILED_PRECONDITION: the request is well formed but the state does not allow
    /// it (a reused idempotency key, an expired coupon, a card that had its trial).
    #[error("{0}")]
    FailedPrecondition(String),
    /// ALREADY_EXISTS: the thing can only happen once (a coupon per user).
    #[error("{0}")]
    AlreadyExists(String),
    /// UNAVAILABLE: Stripe or the database could not be reached; retrying with the
    /// same idempotency key is safe.
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        source: Source,
    },
    /// INTERNAL: a bug or an unexpected answer; the caller sees an opaque message.
    #[error("{context}")]
    Internal {
        context: &'static str,
        #[source]
        source: Source,
    },
}

impl ApiError {
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            field,
            description: description.into(),
        }
    }

    pub fn internal(context: &'static str, source: impl Into<Source>) -> Self {
        ApiError::Internal {
            context,
            source: source.into(),
        }
    }
}

/// Database errors; constraint names become domain errors here and nowhere else.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable {
                what: "the database",
                source: e.into(),
            },
            StoreError::Conflict(constraint) => conflict(&constraint),
            other => ApiError::internal("database error", other),
        }
    }
}

fn conflict(constraint: &str) -> ApiError {
    match constraint {
        "transactions_coupon_once" => ApiError::AlreadyExists(
            "this code was already redeemed by this user (an earlier redemption did not fail)"
                .into(),
        ),
        other => ApiError::internal("unexpected unique violation", format!("constraint {other}")),
    }
}

/// Stripe failures that reach the caller as errors (declines are answered as a
/// FAILED transaction before getting here).
impl From<StripeFailure> for ApiError {
    fn from(e: StripeFailure) -> Self {
        match e {
            StripeFailure::Unavailable(_) => ApiError::Unavailable {
                what: "Stripe",
                source: e.into(),
            },
            StripeFailure::Declined { ref message, .. }
            | StripeFailure::Rejected { ref message, .. } => {
                ApiError::FailedPrecondition(format!("Stripe refused the request: {message}"))
            }
            StripeFailure::Unexpected(_) => ApiError::internal("unexpected answer from Stripe", e),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::InvalidArgument { field, description } => Status::with_error_details(
                Code::InvalidArgument,
                format!("invalid {field}: {description}"),
                ErrorDetails::with_bad_request_violation(field, description),
            ),
            ApiError::Unauthenticated(why) => Status::unauthenticated(why),
            ApiError::PermissionDenied(why) => Status::permission_denied(why),
            ApiError::NotFound(what) => Status::not_found(what),
            ApiError::FailedPrecondition(why) => Status::failed_precondition(why),
            ApiError::AlreadyExists(why) => Status::already_exists(why),
            ApiError::Unavailable { what, ref source } => {
                tracing::warn!(error = %chain(source.as_ref()), "{what} unavailable");
                Status::unavailable(format!("{what} is unavailable; retry later"))
            }
            ApiError::Internal {
                context,
                ref source,
            } => {
                tracing::error!(error = %chain(source.as_ref()), "{context}");
                Status::internal("internal error")
            }
        }
    }
}

/// `error: cause: cause`, the whole `source()` chain on one line.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

pub type ApiResult<T> = Result<T, ApiError>;
