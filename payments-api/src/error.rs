//! The one error type of the RPC layer and its mapping to `tonic::Status`, in one place.
//!
//! Whatever the caller did wrong is named precisely: every error status carries a
//! `google.rpc.ErrorInfo` (domain `payments.v1`) whose `reason` is an [`Reason`] a
//! program can act on, the reason alone decides the status code ([`code`]), and
//! UNAVAILABLE / RESOURCE_EXHAUSTED carry a `google.rpc.RetryInfo`. Whatever went
//! wrong inside is logged with its whole `source()` chain and reaches the caller as an
//! opaque message.

use std::{collections::HashMap, error::Error as StdError, fmt, time::Duration};

use payments_core::store::StoreError;
use payments_service_kit::error_chain;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    stripe_client::StripeFailure,
    watch::{LimitHit, WatchEnd},
};
pub use payments_proto::errors::{DOMAIN, ErrorReason as Reason};

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// How long a client should wait before retrying UNAVAILABLE or RESOURCE_EXHAUSTED
/// when nothing more precise is known.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be done as asked: bad input, no permission, a state that
    /// does not allow it, a limit. Its reason decides the status code ([`code`]).
    #[error("{0}")]
    Refused(Refusal),
    /// UNAVAILABLE (`STRIPE_UNAVAILABLE`, `DATABASE_UNAVAILABLE`): a dependency could
    /// not be reached; retrying with the same idempotency key is safe.
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: Dependency,
        #[source]
        source: Source,
    },
    /// INTERNAL (`INTERNAL_ERROR`): a bug or an unexpected answer; the caller sees an
    /// opaque message.
    #[error("{context}")]
    Internal {
        context: &'static str,
        #[source]
        source: Source,
    },
}

/// What could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Stripe,
    Database,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dependency::Stripe => "Stripe",
            Dependency::Database => "the database",
        })
    }
}

/// A refusal: its reason, a message for people, and what a program may need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    /// The request field at fault (INVALID_ARGUMENT): a `google.rpc.BadRequest`
    /// violation and the `field` metadata.
    pub field: Option<&'static str>,
    /// `ErrorInfo.metadata`; the keys of each reason are listed in the proto.
    pub metadata: Vec<(&'static str, String)>,
    /// RetryInfo's delay for UNAVAILABLE and RESOURCE_EXHAUSTED (else [`DEFAULT_RETRY_DELAY`]).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "invalid {field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
            field: None,
            metadata: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds an `ErrorInfo.metadata` entry.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Refusal {
        self.metadata.push((key, value.into()));
        self
    }

    pub fn retry_after(mut self, delay: Duration) -> Refusal {
        self.retry_after = Some(delay);
        self
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::Refused(refusal)
    }
}

impl ApiError {
    /// INVALID_ARGUMENT (`INVALID_FIELD`) naming the field.
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Self::invalid_as(Reason::InvalidField, field, description)
    }

    /// INVALID_ARGUMENT naming the field, with a reason more precise than `INVALID_FIELD`.
    pub fn invalid_as(reason: Reason, field: &'static str, description: impl Into<String>) -> Self {
        let mut refusal = Refusal::new(reason, description).with("field", field);
        refusal.field = Some(field);
        ApiError::Refused(refusal)
    }

    pub fn refused(reason: Reason, message: impl Into<String>) -> Self {
        ApiError::Refused(Refusal::new(reason, message))
    }

    pub fn internal(context: &'static str, source: impl Into<Source>) -> Self {
        ApiError::Internal {
            context,
            source: source.into(),
        }
    }

    /// The reason the caller will see.
    pub fn reason(&self) -> Reason {
        match self {
            ApiError::Refused(refusal) => refusal.reason,
            ApiError::Unavailable {
                dependency: Dependency::Stripe,
                ..
            } => Reason::StripeUnavailable,
            ApiError::Unavailable {
                dependency: Dependency::Database,
                ..
            } => Reason::DatabaseUnavailable,
            ApiError::Internal { .. } => Reason::InternalError,
        }
    }
}

/// The status code of each reason: a reason always comes with the same code.
pub fn code(reason: Reason) -> Code {
    use Reason as R;
    match reason {
        R::InvalidField | R::CouponNotFound | R::CouponNotFixedAmount | R::PaymentMethodUnknown => {
            Code::InvalidArgument
        }
        R::TokenMissing | R::TokenInvalid | R::TokenExpired => Code::Unauthenticated,
        R::UserIdMismatch | R::ServiceTokenRequired => Code::PermissionDenied,
        R::TransactionNotFound | R::PaymentMethodNotFound | R::EventNotFound => Code::NotFound,
        R::CouponAlreadyRedeemed => Code::AlreadyExists,
        R::IdempotencyKeyReused
        | R::CouponExpired
        | R::CouponExhausted
        | R::CouponInactive
        | R::CouponNotEligible
        | R::CouponCurrencyMismatch
        | R::TrialAlreadyUsed
        | R::CardFingerprintMissing
        | R::PaymentMethodAttachedElsewhere
        | R::CardDeclined
        | R::StripeRefused
        | R::StripeObjectMissing
        | R::EventUnreadable => Code::FailedPrecondition,
        R::RateLimited | R::UserWatchLimit | R::InstanceWatchLimit => Code::ResourceExhausted,
        R::StripeUnavailable
        | R::DatabaseUnavailable
        | R::ShuttingDown
        | R::WatchLifetimeReached => Code::Unavailable,
        R::InternalError => Code::Internal,
        R::Unspecified => Code::Unknown,
    }
}

/// Database errors; constraint names become domain errors here and nowhere else.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable {
                dependency: Dependency::Database,
                source: e.into(),
            },
            StoreError::Conflict(constraint) => conflict(&constraint),
            // Undone to break a cycle of waits: nothing was written, and the same
            // request (its idempotency key) can be sent again.
            other if other.is_lock_cycle() => ApiError::Unavailable {
                dependency: Dependency::Database,
                source: other.into(),
            },
            other => ApiError::internal("database error", other),
        }
    }
}

fn conflict(constraint: &str) -> ApiError {
    match constraint {
        "transactions_coupon_once" => ApiError::refused(
            Reason::CouponAlreadyRedeemed,
            "this code was already redeemed by this user (an earlier redemption did not fail)",
        ),
        "transactions_coupon_once_per_coupon" => ApiError::refused(
            Reason::CouponAlreadyRedeemed,
            "this coupon was already redeemed by this user, through this or another code \
             (an earlier redemption did not fail)",
        ),
        other => ApiError::internal("unexpected unique violation", format!("constraint {other}")),
    }
}

/// A watch ended by this instance: retryable at once.
impl From<WatchEnd> for ApiError {
    fn from(end: WatchEnd) -> Self {
        let reason = match end {
            WatchEnd::ShuttingDown => Reason::ShuttingDown,
            WatchEnd::LifetimeReached => Reason::WatchLifetimeReached,
        };
        Refusal::new(reason, end.to_string())
            .retry_after(Duration::ZERO)
            .into()
    }
}

/// A cap on open streams: RESOURCE_EXHAUSTED, with the cap as `limit`.
impl From<LimitHit> for ApiError {
    fn from(hit: LimitHit) -> Self {
        let (reason, limit) = match hit {
            LimitHit::User(limit) => (Reason::UserWatchLimit, limit),
            LimitHit::Instance(limit) => (Reason::InstanceWatchLimit, limit),
        };
        Refusal::new(reason, hit.to_string())
            .with("limit", limit.to_string())
            .into()
    }
}

/// Stripe failures that reach the caller as errors (declines are answered as a
/// FAILED transaction before getting here).
impl From<StripeFailure> for ApiError {
    fn from(e: StripeFailure) -> Self {
        match e {
            StripeFailure::Unavailable(_) => ApiError::Unavailable {
                dependency: Dependency::Stripe,
                source: e.into(),
            },
            StripeFailure::Declined { code, message, .. } => Refusal::new(
                Reason::CardDeclined,
                format!("Stripe declined the card: {message}"),
            )
            .with("decline_code", code)
            .into(),
            StripeFailure::Rejected { code, message, .. } => Refusal::new(
                Reason::StripeRefused,
                format!("Stripe refused the request: {message}"),
            )
            .with("stripe_code", code)
            .into(),
            StripeFailure::Unexpected(_) => ApiError::internal("unexpected answer from Stripe", e),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let reason = e.reason();
        let refusal = match e {
            ApiError::Refused(refusal) => refusal,
            ApiError::Unavailable { dependency, source } => {
                tracing::warn!(error = %error_chain(source.as_ref()), "{dependency} unavailable");
                Refusal::new(reason, format!("{dependency} is unavailable; retry later"))
            }
            ApiError::Internal { context, source } => {
                tracing::error!(error = %error_chain(source.as_ref()), "{context}");
                Refusal::new(reason, "internal error")
            }
        };
        status(refusal)
    }
}

/// The status of a refusal, with its ErrorInfo and, by code, RetryInfo or BadRequest.
fn status(refusal: Refusal) -> Status {
    let code = code(refusal.reason);
    let message = refusal.to_string();
    let metadata: HashMap<String, String> = refusal
        .metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    let mut details = ErrorDetails::new();
    details.set_error_info(refusal.reason.wire_name(), DOMAIN, metadata);
    if matches!(code, Code::Unavailable | Code::ResourceExhausted) {
        details.set_retry_info(Some(refusal.retry_after.unwrap_or(DEFAULT_RETRY_DELAY)));
    }
    if let Some(field) = refusal.field {
        details.add_bad_request_violation(field, refusal.message);
    }
    Status::with_error_details(code, message, details)
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use payments_proto::errors::ErrorDetail;

    use super::*;

    /// Every reason the proto lists, by number (the enum is dense below 100).
    fn all_reasons() -> Vec<Reason> {
        (1..100).filter_map(|n| Reason::try_from(n).ok()).collect()
    }

    #[test]
    fn every_reason_has_a_status_code_and_survives_the_wire() {
        let reasons = all_reasons();
        assert!(reasons.len() >= 30, "{reasons:?}");
        for reason in reasons {
            let code = code(reason);
            assert!(!matches!(code, Code::Ok | Code::Unknown), "{reason:?}");
            let status = Status::from(ApiError::refused(reason, "why"));
            assert_eq!(status.code(), code);
            let detail = ErrorDetail::of(&status).expect("ErrorInfo");
            assert_eq!(detail.reason, reason);
            let retryable = matches!(code, Code::Unavailable | Code::ResourceExhausted);
            assert_eq!(detail.retry_delay.is_some(), retryable, "{reason:?}");
        }
    }

    #[test]
    fn an_invalid_field_is_named_in_the_message_the_metadata_and_bad_request() {
        let status = Status::from(ApiError::invalid("amount", "must be at least 500"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid amount: must be at least 500");
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(violation.field, "amount");
        assert_eq!(violation.description, "must be at least 500");
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INVALID_FIELD");
        assert_eq!(info.domain, "payments.v1");
        assert_eq!(info.metadata["field"], "amount");
    }

    #[test]
    fn an_internal_error_is_opaque_but_still_has_a_reason() {
        let status = Status::from(ApiError::internal("boom", "secret detail"));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        let detail = ErrorDetail::of(&status).expect("ErrorInfo");
        assert_eq!(detail.reason, Reason::InternalError);
    }

    #[test]
    fn stripe_and_database_outages_are_retryable_after_a_delay() {
        let stripe = Status::from(ApiError::from(StripeFailure::Unavailable("503".into())));
        let detail = ErrorDetail::of(&stripe).expect("ErrorInfo");
        assert_eq!(
            (stripe.code(), detail.reason, detail.retry_delay),
            (
                Code::Unavailable,
                Reason::StripeUnavailable,
                Some(DEFAULT_RETRY_DELAY)
            )
        );
        let db = Status::from(ApiError::from(StoreError::Unavailable(
            sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(
            ErrorDetail::of(&db).expect("ErrorInfo").reason,
            Reason::DatabaseUnavailable
        );
    }

    /// A deadlock's victim wrote nothing: the caller may send the same request again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadlock_victim_is_unavailable_and_retryable() {
        let db = payments_core::testing::TestDb::new().await;
        let error = ApiError::from(StoreError::from(db.deadlock_victim().await));
        assert!(
            matches!(
                error,
                ApiError::Unavailable {
                    dependency: Dependency::Database,
                    ..
                }
            ),
            "{error:?}"
        );
        let status = Status::from(error);
        assert_eq!(status.code(), Code::Unavailable);
        let detail = ErrorDetail::of(&status).expect("ErrorInfo");
        assert!(detail.retry_delay.is_some());
    }
}
