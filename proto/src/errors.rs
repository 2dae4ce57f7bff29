//! The error contract of `payments.v1`, for servers and clients alike: every error
//! status carries a `google.rpc.ErrorInfo` whose `reason` is an [`ErrorReason`] name
//! and whose `domain` is [`DOMAIN`]; UNAVAILABLE and RESOURCE_EXHAUSTED add a
//! `google.rpc.RetryInfo`. [`ErrorDetail::of`] decodes them from a status's
//! `grpc-status-details-bin`, so a client acts on the reason, never on the message.

use std::{collections::HashMap, time::Duration};

use tonic::Status;
use tonic_types::StatusExt;

pub use crate::payments::v1::ErrorReason;

/// The `ErrorInfo.domain` of every error this API returns.
pub const DOMAIN: &str = "payments.v1";

/// The prefix the proto's lint rules put on every `ErrorReason` value; the reason on
/// the wire is the value's name without it (`ERROR_REASON_COUPON_EXPIRED` is sent as
/// `COUPON_EXPIRED`, the name generated clients give it too).
const PROTO_PREFIX: &str = "ERROR_REASON_";

impl ErrorReason {
    /// The `ErrorInfo.reason` this value is sent as.
    pub fn wire_name(self) -> &'static str {
        let name = self.as_str_name();
        name.strip_prefix(PROTO_PREFIX).unwrap_or(name)
    }

    /// The value an `ErrorInfo.reason` names, if this build knows it.
    pub fn from_wire_name(reason: &str) -> Option<ErrorReason> {
        ErrorReason::from_str_name(&format!("{PROTO_PREFIX}{reason}"))
    }
}

/// What a `payments.v1` error status says, decoded from its details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The reason, or [`ErrorReason::Unspecified`] for one this build does not know
    /// (a newer server); [`ErrorDetail::reason_name`] has it as sent.
    pub reason: ErrorReason,
    pub reason_name: String,
    /// The reason's metadata (the keys are listed with each reason in the proto).
    pub metadata: HashMap<String, String>,
    /// How long to wait before retrying, from `google.rpc.RetryInfo`.
    pub retry_delay: Option<Duration>,
}

impl ErrorDetail {
    /// The detail of a status from this API; `None` when it carries no `ErrorInfo` of
    /// [`DOMAIN`] (e.g. a status from a proxy or the transport).
    pub fn of(status: &Status) -> Option<ErrorDetail> {
        let details = status.get_error_details();
        let info = details.error_info().filter(|info| info.domain == DOMAIN)?;
        Some(ErrorDetail {
            reason: ErrorReason::from_wire_name(&info.reason).unwrap_or(ErrorReason::Unspecified),
            reason_name: info.reason.clone(),
            metadata: info.metadata.clone(),
            retry_delay: details.retry_info().and_then(|retry| retry.retry_delay),
        })
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn a_status_with_error_info_and_retry_info_decodes() {
        let mut details = ErrorDetails::new();
        details
            .set_error_info(
                "RATE_LIMITED",
                DOMAIN,
                HashMap::from([("limit".to_owned(), "5".to_owned())]),
            )
            .set_retry_info(Some(Duration::from_millis(1500)));
        let status = Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        let detail = ErrorDetail::of(&status).expect("decodes");
        assert_eq!(detail.reason, ErrorReason::RateLimited);
        assert_eq!(detail.metadata["limit"], "5");
        assert_eq!(detail.retry_delay, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn an_unknown_reason_keeps_its_name_and_another_domain_is_not_ours() {
        let status = Status::with_error_details(
            Code::FailedPrecondition,
            "new",
            ErrorDetails::with_error_info("SOMETHING_NEW", DOMAIN, HashMap::new()),
        );
        let detail = ErrorDetail::of(&status).expect("decodes");
        assert_eq!(detail.reason, ErrorReason::Unspecified);
        assert_eq!(detail.reason_name, "SOMETHING_NEW");
        let foreign = Status::with_error_details(
            Code::Unavailable,
            "proxy",
            ErrorDetails::with_error_info("UPSTREAM", "proxy.example", HashMap::new()),
        );
        assert_eq!(ErrorDetail::of(&foreign), None);
        assert_eq!(ErrorDetail::of(&Status::internal("bare")), None);
    }

    #[test]
    fn reason_names_are_the_proto_names_without_a_prefix() {
        assert_eq!(ErrorReason::CouponExpired.wire_name(), "COUPON_EXPIRED");
        assert_eq!(
            ErrorReason::from_wire_name("IDEMPOTENCY_KEY_REUSED"),
            Some(ErrorReason::IdempotencyKeyReused)
        );
        assert_eq!(
            ErrorReason::from_wire_name("ERROR_REASON_COUPON_EXPIRED"),
            None
        );
    }
}
