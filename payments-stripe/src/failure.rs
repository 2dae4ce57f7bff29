//! What went wrong with a call to Stripe, decided once for every caller: the request
//! path (what to answer), the outbox (retry or dead-letter), reconciliation and
//! catch-up (try again next pass or not), and the metrics (which class to count).

use stripe::{ApiErrorsType, StripeError};

/// Why a Stripe call did not give what we asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeFailure {
    /// Not reached, timed out, a conflicting request in flight (409), rate limited
    /// (429) or a Stripe-side error (5xx): the same request may succeed later.
    #[error("Stripe could not be reached: {0}")]
    Unavailable(String),
    /// A card error (HTTP 402, or any error of type `card_error`): an answer about the
    /// card, which asking again with the same card does not change. `payment_intent`
    /// is the PaymentIntent the decline belongs to, when Stripe says.
    #[error("card declined ({code}): {message}")]
    Declined {
        code: String,
        message: String,
        payment_intent: Option<String>,
    },
    /// Stripe refused the request itself (another 4xx).
    #[error("Stripe refused the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
        param: Option<String>,
    },
    /// Stripe refused our credentials, answered something we could not read, or the
    /// client is misconfigured: asking again will not help until someone fixes it.
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
}

impl StripeFailure {
    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StripeFailure::Unavailable(_))
    }

    /// Whether Stripe says the object does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, StripeFailure::Rejected { status: 404, .. })
            || matches!(self, StripeFailure::Rejected { code, .. } if code == "resource_missing")
    }

    /// Whether Stripe refused the request with this error code.
    pub fn is_rejected_with(&self, error_code: &str) -> bool {
        matches!(self, StripeFailure::Rejected { code, .. } if code == error_code)
    }

    /// The failure's class, as metrics count it.
    pub fn class(&self) -> &'static str {
        match self {
            StripeFailure::Unavailable(_) => "unavailable",
            StripeFailure::Declined { .. } => "declined",
            StripeFailure::Rejected { .. } => "rejected",
            StripeFailure::Unexpected(_) => "unexpected",
        }
    }
}

impl From<StripeError> for StripeFailure {
    fn from(e: StripeError) -> Self {
        match e {
            StripeError::Stripe(err, status) => {
                let message = err.message.clone().unwrap_or_else(|| "no message".into());
                let code = err.code.as_ref().map(|c| c.as_str().to_owned());
                if status == 402 || err.type_ == ApiErrorsType::CardError {
                    let (code, message) = payments_core::stripe_object::payment_error(
                        err.decline_code.as_deref(),
                        code.as_deref(),
                        err.message.as_deref(),
                    );
                    return StripeFailure::Declined {
                        code,
                        message,
                        payment_intent: err.payment_intent.as_ref().map(|pi| pi.id.to_string()),
                    };
                }
                if status == 401 || status == 403 {
                    return StripeFailure::Unexpected(format!(
                        "Stripe refused our credentials (HTTP {status}): {message}"
                    ));
                }
                if status == 409 || status == 429 || status >= 500 {
                    return StripeFailure::Unavailable(format!("HTTP {status}: {message}"));
                }
                StripeFailure::Rejected {
                    status,
                    code: code.unwrap_or_else(|| err.type_.as_str().to_owned()),
                    message,
                    param: err.param.clone(),
                }
            }
            StripeError::ClientError(e) => StripeFailure::Unavailable(e),
            StripeError::Timeout => StripeFailure::Unavailable("timed out".into()),
            StripeError::JSONDeserialize(e) => StripeFailure::Unexpected(e),
            StripeError::ConfigError(e) => StripeFailure::Unexpected(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use stripe::{ApiErrors, ApiErrorsCode};

    use super::*;

    fn error_of(type_: ApiErrorsType, code: ApiErrorsCode) -> ApiErrors {
        ApiErrors {
            advice_code: None,
            charge: None,
            code: Some(code),
            decline_code: None,
            doc_url: None,
            message: None,
            network_advice_code: None,
            network_decline_code: None,
            param: None,
            payment_intent: None,
            payment_method: None,
            payment_method_type: None,
            request_log_url: None,
            setup_intent: None,
            source: None,
            type_,
        }
    }

    fn api_error(type_: ApiErrorsType, status: u16) -> StripeFailure {
        let mut err = error_of(type_, ApiErrorsCode::CardDeclined);
        err.decline_code = Some("insufficient_funds".into());
        err.message = Some("Your card has insufficient funds.".into());
        StripeFailure::from(StripeError::Stripe(Box::new(err), status))
    }

    #[test]
    fn network_trouble_is_retried_and_config_errors_are_not() {
        let failure = |e| StripeFailure::from(e).is_retryable();
        assert!(failure(StripeError::ClientError(
            "connection refused".into()
        )));
        assert!(failure(StripeError::Timeout));
        assert!(!failure(StripeError::ConfigError("bad url".into())));
    }

    #[test]
    fn timing_and_stripe_side_errors_are_retried_refusals_are_not() {
        for status in [409, 429, 500, 503] {
            let failure = api_error(ApiErrorsType::ApiError, status);
            assert!(failure.is_retryable(), "{status}: {failure}");
            assert_eq!(failure.class(), "unavailable");
        }
        for status in [400, 404] {
            let failure = api_error(ApiErrorsType::InvalidRequestError, status);
            assert!(!failure.is_retryable(), "{status}: {failure}");
            assert_eq!(failure.class(), "rejected");
        }
        for status in [401, 403] {
            let failure = api_error(ApiErrorsType::InvalidRequestError, status);
            assert!(!failure.is_retryable(), "{status}: {failure}");
            assert_eq!(failure.class(), "unexpected");
        }
    }

    /// The three copies of this rule disagreed on a `card_error` that did not come
    /// with a 402: payments-api called it a decline, its metrics a refusal, and the
    /// ingestor went by the status alone. A card error is an answer about the card,
    /// whatever the status: a decline, never retried, counted as one.
    #[test]
    fn a_card_error_is_a_decline_whatever_its_status() {
        for status in [402, 400] {
            let failure = api_error(ApiErrorsType::CardError, status);
            assert_eq!(
                failure,
                StripeFailure::Declined {
                    code: "insufficient_funds".into(),
                    message: "Your card has insufficient funds.".into(),
                    payment_intent: None,
                },
                "{status}"
            );
            assert!(!failure.is_retryable());
            assert_eq!(failure.class(), "declined");
        }
    }

    #[test]
    fn a_missing_object_is_a_rejection_that_says_so() {
        let err = error_of(
            ApiErrorsType::InvalidRequestError,
            ApiErrorsCode::ResourceMissing,
        );
        let failure = StripeFailure::from(StripeError::Stripe(Box::new(err), 404));
        assert!(failure.is_missing());
        assert!(failure.is_rejected_with("resource_missing"));
        assert!(!failure.is_retryable());
    }
}
