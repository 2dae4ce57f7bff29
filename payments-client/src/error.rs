//! [`Error`]: what a call can end with. A refusal or failure from payments-api is an
//! [`RpcError`] carrying the status code, the `google.rpc.ErrorInfo` reason a program
//! acts on (an [`ErrorReason`], decoded by the contract crate's [`ErrorDetail`]), the
//! `RetryInfo` delay and the fields a `BadRequest` names.

use std::{fmt, time::Duration};

pub use payments_proto::errors::{DOMAIN, ErrorDetail, ErrorReason};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::auth::TokenError;

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
    pub fn reason(&self) -> Option<ErrorReason> {
        match self {
            Error::Rpc(e) => e.reason(),
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
    /// payments-api's `ErrorInfo` (domain `payments.v1`): the reason, its name as sent
    /// (for a reason newer than this build) and its metadata. `None` for a status from
    /// elsewhere (a proxy, the transport).
    pub detail: Option<ErrorDetail>,
    /// `RetryInfo.retry_delay`: how long the server (or a proxy) asks the caller to wait.
    pub retry_delay: Option<Duration>,
    /// `BadRequest` field violations: (field, description).
    pub field_violations: Vec<(String, String)>,
}

impl RpcError {
    pub fn reason(&self) -> Option<ErrorReason> {
        self.detail.as_ref().map(|d| d.reason)
    }

    /// Whether the same call may be sent again: UNAVAILABLE, or RESOURCE_EXHAUSTED when
    /// the server said how long to wait, except a user's own watch limit (waiting does
    /// not help until the caller closes a stream).
    pub fn is_retryable(&self) -> bool {
        match self.code {
            Code::Unavailable => true,
            Code::ResourceExhausted => {
                self.retry_delay.is_some() && self.reason() != Some(ErrorReason::UserWatchLimit)
            }
            _ => false,
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " [{}]", detail.reason_name)?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

impl From<Status> for RpcError {
    fn from(status: Status) -> RpcError {
        let details = status.get_error_details();
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
            detail: ErrorDetail::of(&status),
            retry_delay: details.retry_info().and_then(|retry| retry.retry_delay),
            field_violations,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
        assert_eq!(e.reason(), Some(ErrorReason::CouponAlreadyRedeemed));
        assert!(!e.is_retryable());
        let detail = e.detail.expect("decoded");
        assert_eq!(detail.metadata.get("code").map(String::as_str), Some("X"));
    }

    #[test]
    fn retry_info_and_bad_request_are_decoded_without_error_info_too() {
        let mut details = ErrorDetails::with_retry_info(Some(Duration::from_millis(1_500)));
        details.set_bad_request(vec![FieldViolation::new("amount", "must be positive")]);
        let e = with_details(Code::Unavailable, details);
        assert_eq!(e.detail, None, "no ErrorInfo of payments.v1");
        assert_eq!(e.retry_delay, Some(Duration::from_millis(1_500)));
        assert_eq!(
            e.field_violations,
            [("amount".into(), "must be positive".into())]
        );
    }

    #[test]
    fn unavailable_and_an_exhaustion_with_a_delay_are_retryable_but_a_user_s_watch_limit_is_not() {
        let plain = |code| RpcError::from(Status::new(code, "x"));
        assert!(plain(Code::Unavailable).is_retryable());
        assert!(!plain(Code::ResourceExhausted).is_retryable());
        assert!(!plain(Code::Internal).is_retryable());
        let exhausted = |reason: &str| {
            let mut details = ErrorDetails::with_retry_info(Some(Duration::from_secs(1)));
            details.set_error_info(reason, DOMAIN, HashMap::new());
            with_details(Code::ResourceExhausted, details)
        };
        assert!(exhausted("RATE_LIMITED").is_retryable());
        assert!(exhausted("INSTANCE_WATCH_LIMIT").is_retryable());
        assert!(!exhausted("USER_WATCH_LIMIT").is_retryable());
    }
}
