//! The webhook's errors and the one place they become HTTP statuses. Stripe retries
//! anything that is not 2xx, so every path that did not store the event answers with
//! an error status, and only refusals Stripe cannot fix by retrying are 4xx.

use std::error::Error as StdError;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use payments_core::{EventError, store::StoreError};

use crate::{group_commit::GroupCommitError, signature::Rejection};

type Source = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// 400: the signature did not verify; the body says which check failed.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// 413: the body is larger than the configured limit.
    #[error("body too large")]
    BodyTooLarge,
    /// 400: the body could not be read as sent.
    #[error("unreadable body")]
    UnreadableBody,
    /// 400: signed, but not a Stripe event (bad JSON, no id or type).
    #[error("{0}")]
    NotAnEvent(#[from] EventError),
    /// 503: the database is unreachable; the event is not stored and Stripe will retry.
    #[error("database unavailable")]
    Unavailable(#[source] Source),
    /// 503: group commit stopped before committing the event (the service is going
    /// away); it is not stored and Stripe will retry.
    #[error("shutting down")]
    ShuttingDown(#[source] GroupCommitError),
    /// 500: any other failure before the event was stored.
    #[error("internal error")]
    Internal(#[source] Source),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        match e.is_unavailable() {
            true => WebhookError::Unavailable(e.into()),
            false => WebhookError::Internal(e.into()),
        }
    }
}

impl From<GroupCommitError> for WebhookError {
    fn from(e: GroupCommitError) -> Self {
        match e {
            GroupCommitError::Stopped => WebhookError::ShuttingDown(e),
            GroupCommitError::Failed(ref cause) if cause.is_unavailable() => {
                WebhookError::Unavailable(e.into())
            }
            GroupCommitError::Failed(_) => WebhookError::Internal(e.into()),
        }
    }
}

/// Every value [`WebhookError::rejection_reason`] gives, so each is exported (at 0)
/// before its first refusal.
pub const REJECTION_REASONS: [&str; 7] = [
    "missing_signature",
    "malformed_header",
    "no_matching_signature",
    "timestamp_outside_tolerance",
    "body_too_large",
    "unreadable_body",
    "not_an_event",
];

impl WebhookError {
    /// The label counted in `payments_webhooks_rejected_total`, for refusals.
    pub fn rejection_reason(&self) -> Option<&'static str> {
        match self {
            WebhookError::Rejected(r) => Some(r.reason()),
            WebhookError::BodyTooLarge => Some("body_too_large"),
            WebhookError::UnreadableBody => Some("unreadable_body"),
            WebhookError::NotAnEvent(_) => Some("not_an_event"),
            WebhookError::Unavailable(_)
            | WebhookError::ShuttingDown(_)
            | WebhookError::Internal(_) => None,
        }
    }

    /// What the webhook span records as its outcome: the rejection reason, or why
    /// the event could not be stored.
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            WebhookError::Unavailable(_) | WebhookError::ShuttingDown(_) => "unavailable",
            WebhookError::Internal(_) => "internal_error",
            refused => refused.rejection_reason().unwrap_or("refused"),
        }
    }

    pub(super) fn status(&self) -> StatusCode {
        match self {
            WebhookError::Rejected(_)
            | WebhookError::UnreadableBody
            | WebhookError::NotAnEvent(_) => StatusCode::BAD_REQUEST,
            WebhookError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Unavailable(_) | WebhookError::ShuttingDown(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            WebhookError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %crate::error_chain(&self), "webhook not stored");
        } else {
            tracing::info!(reason = %self, "webhook refused");
        }
        // Our own messages only: the source chain stays in the log.
        (status, self.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Group commit used to answer every event of a failed group with a made-up
    /// pool error (or the cause's text as a "corrupt row"): the cause now travels.
    #[test]
    fn a_failed_group_answers_each_event_with_the_real_cause() {
        let away =
            GroupCommitError::Failed(Arc::new(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
        let away = WebhookError::from(away);
        assert_eq!(away.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            crate::error_chain(&away).contains("database unavailable: pool timed out"),
            "{}",
            crate::error_chain(&away)
        );

        let bug = GroupCommitError::Failed(Arc::new(StoreError::Corrupt("x".into())));
        let bug = WebhookError::from(bug);
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(crate::error_chain(&bug).ends_with("corrupt row: x"));
    }

    #[test]
    fn a_stopped_committer_is_a_retryable_shutdown_not_a_database_error() {
        let stopped = WebhookError::from(GroupCommitError::Stopped);
        assert_eq!(stopped.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(stopped.to_string(), "shutting down");
        assert_eq!(stopped.outcome(), "unavailable");
    }

    #[test]
    fn every_rejection_reason_is_listed() {
        let refusals = [
            WebhookError::Rejected(Rejection::MissingSignature),
            WebhookError::Rejected(Rejection::MalformedHeader),
            WebhookError::Rejected(Rejection::NoMatchingSignature),
            WebhookError::Rejected(Rejection::TimestampOutsideTolerance),
            WebhookError::BodyTooLarge,
            WebhookError::UnreadableBody,
        ];
        for refusal in refusals {
            let reason = refusal.rejection_reason().expect("a refusal has a reason");
            assert!(REJECTION_REASONS.contains(&reason), "{reason}");
        }
    }
}
