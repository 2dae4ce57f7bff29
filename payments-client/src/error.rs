//! [`Error`]: what a call can end with. A refusal or failure from payments-api is an
//! [`RpcError`] carrying the status code, the `google.rpc.ErrorInfo` reason a program
//! acts on ([`Reason`]), the `RetryInfo` delay and the fields a `BadRequest` names.

use std::{collections::HashMap, fmt, time::Duration};

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::auth::TokenError;

/// The `ErrorInfo` domain of payments-api's reasons.
pub const DOMAIN: &str = "payments.v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// payments-api (or the network on the way) answered with a status.
    #[error(transparent)]
    Rpc(Box<RpcError>),
    /// The endpoint's URL or TLS settings cannot be used.
    #[error("invalid endpoint {url}")]
    Endpoint {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("reading the CA file {path}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The first connection failed ([`crate::Connection::connect`]; a lazy connection
    /// reports this as UNAVAILABLE on the call instead).
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("no bearer token")]
    Token(#[from] TokenError),
    /// The answer lacks a field the contract promises.
    #[error("the answer has no {0}")]
    Incomplete(&'static str),
    /// A watch ended, each time it was opened, without a single message.
    #[error("the watch of transaction {0} ended without an answer")]
    WatchEnded(String),
}

impl Error {
    /// The status code, when payments-api (or the transport) answered with one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Rpc(e) => Some(e.code),
            _ => None,
        }
    }

    /// The reason payments-api gave, when it gave one.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Error::Rpc(e) => e.reason.as_ref(),
            _ => None,
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        Error::from(RpcError::from(status))
    }
}

impl From<RpcError> for Error {
    fn from(error: RpcError) -> Error {
        Error::Rpc(Box::new(error))
    }
}

/// A status from payments-api, with its standard details decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: Code,
    pub message: String,
    /// `ErrorInfo.reason` when its domain is [`DOMAIN`].
    pub reason: Option<Reason>,
    /// The whole `ErrorInfo`, whatever its domain (a proxy's own, say).
    pub error_info: Option<ErrorInfo>,
    /// `RetryInfo.retry_delay`: how long the server asks the caller to wait.
    pub retry_delay: Option<Duration>,
    /// `BadRequest` field violations: (field, description).
    pub field_violations: Vec<(String, String)>,
}

/// `google.rpc.ErrorInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    pub reason: String,
    pub domain: String,
    pub metadata: HashMap<String, String>,
}

impl RpcError {
    /// Whether the same call may be sent again: UNAVAILABLE, or RESOURCE_EXHAUSTED
    /// when the server said how long to wait.
    pub fn is_retryable(&self) -> bool {
        self.code == Code::Unavailable
            || (self.code == Code::ResourceExhausted && self.retry_delay.is_some())
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)?;
        if let Some(info) = &self.error_info {
            write!(f, " [{}]", info.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

impl From<Status> for RpcError {
    fn from(status: Status) -> RpcError {
        let details = status.get_error_details();
        let error_info = details.error_info().map(|info| ErrorInfo {
            reason: info.reason.clone(),
            domain: info.domain.clone(),
            metadata: info.metadata.clone(),
        });
        let reason = error_info
            .as_ref()
            .filter(|info| info.domain == DOMAIN)
            .map(|info| Reason::from_wire(&info.reason));
        let retry_delay = details.retry_info().and_then(|retry| retry.retry_delay);
        let field_violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect()
            })
            .unwrap_or_default();
        RpcError {
            code: status.code(),
            message: status.message().to_owned(),
            reason,
            error_info,
            retry_delay,
            field_violations,
        }
    }
}

/// Why payments-api refused a call, as its `ErrorInfo.reason` says (domain
/// `payments.v1`). Reasons this version does not know arrive as [`Reason::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The idempotency key was used before with other parameters.
    IdempotencyKeyReused,
    /// The user already redeemed this code.
    CouponAlreadyRedeemed,
    /// The code expired or ran out of redemptions.
    CouponExpired,
    /// The wallet or the card already had its trial.
    TrialAlreadyUsed,
    /// The card was declined.
    CardDeclined,
    /// Too many calls; `retry_delay` says when to come back.
    RateLimited,
    Other(String),
}

impl Reason {
    pub fn from_wire(reason: &str) -> Reason {
        match reason {
            "IDEMPOTENCY_KEY_REUSED" => Reason::IdempotencyKeyReused,
            "COUPON_ALREADY_REDEEMED" => Reason::CouponAlreadyRedeemed,
            "COUPON_EXPIRED" => Reason::CouponExpired,
            "TRIAL_ALREADY_USED" => Reason::TrialAlreadyUsed,
            "CARD_DECLINED" => Reason::CardDeclined,
            "RATE_LIMITED" => Reason::RateLimited,
            other => Reason::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reason::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Reason::CouponAlreadyRedeemed => "COUPON_ALREADY_REDEEMED",
            Reason::CouponExpired => "COUPON_EXPIRED",
            Reason::TrialAlreadyUsed => "TRIAL_ALREADY_USED",
            Reason::CardDeclined => "CARD_DECLINED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::Other(other) => other,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, FieldViolation};

    use super::*;

    fn with_details(code: Code, details: ErrorDetails) -> RpcError {
        RpcError::from(Status::with_error_details(code, "refused", details))
    }

    #[test]
    fn the_error_info_reason_of_payments_v1_is_typed() {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            "COUPON_ALREADY_REDEEMED",
            DOMAIN,
            [("code".into(), "X".into())],
        );
        let e = with_details(Code::AlreadyExists, details);
        assert_eq!(e.reason, Some(Reason::CouponAlreadyRedeemed));
        assert!(!e.is_retryable());
        let info = e.error_info.expect("kept whole");
        assert_eq!(info.metadata.get("code").map(String::as_str), Some("X"));
    }

    #[test]
    fn an_unknown_reason_is_kept_and_another_domain_is_not_ours() {
        let mut details = ErrorDetails::new();
        details.set_error_info("NEW_REASON", DOMAIN, HashMap::new());
        let e = with_details(Code::FailedPrecondition, details);
        assert_eq!(e.reason, Some(Reason::Other("NEW_REASON".into())));

        let mut details = ErrorDetails::new();
        details.set_error_info("RATE_LIMITED", "ingress.example.com", HashMap::new());
        let e = with_details(Code::ResourceExhausted, details);
        assert_eq!(e.reason, None);
        assert_eq!(
            e.error_info.map(|i| i.reason).as_deref(),
            Some("RATE_LIMITED")
        );
    }

    #[test]
    fn retry_info_and_bad_request_are_decoded() {
        let mut details = ErrorDetails::with_retry_info(Some(Duration::from_millis(1_500)));
        details.set_bad_request(vec![FieldViolation::new("amount", "must be positive")]);
        let e = with_details(Code::Unavailable, details);
        assert_eq!(e.retry_delay, Some(Duration::from_millis(1_500)));
        assert_eq!(
            e.field_violations,
            [("amount".into(), "must be positive".into())]
        );
    }

    #[test]
    fn only_unavailable_or_an_exhaustion_with_a_delay_is_retryable() {
        let plain = |code| RpcError::from(Status::new(code, "x"));
        assert!(plain(Code::Unavailable).is_retryable());
        assert!(!plain(Code::ResourceExhausted).is_retryable());
        assert!(!plain(Code::Internal).is_retryable());
        let delayed = with_details(
            Code::ResourceExhausted,
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        );
        assert!(delayed.is_retryable());
    }

    #[test]
    fn every_known_reason_reads_back_as_itself() {
        for reason in [
            Reason::IdempotencyKeyReused,
            Reason::CouponAlreadyRedeemed,
            Reason::CouponExpired,
            Reason::TrialAlreadyUsed,
            Reason::CardDeclined,
            Reason::RateLimited,
        ] {
            assert_eq!(Reason::from_wire(reason.as_str()), reason);
        }
    }
}
