//! Stripe's error envelope, `{"error": {"type", "code", "decline_code", "message", "param", ...}}`,
//! and the one place where an error kind becomes an HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The `error.type` values Stripe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// 400 (or 404 for a missing resource, 401 for a missing key): the request was wrong.
    InvalidRequest,
    /// 402: the card was declined or needs authentication.
    Card,
    /// 400: an `Idempotency-Key` was reused with different parameters.
    Idempotency,
    /// 500: something went wrong on "Stripe's" side (only ever injected by faults).
    Api,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Card => "card_error",
            ErrorType::Idempotency => "idempotency_error",
            ErrorType::Api => "api_error",
        }
    }
}

/// An error response in Stripe's shape. Build it with the constructors; the status is chosen
/// by the constructor and never by the handler.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorType,
    pub message: String,
    pub code: Option<&'static str>,
    pub decline_code: Option<String>,
    pub param: Option<String>,
    /// Extra fields carried by card errors: `payment_intent`, `charge`, `payment_method`.
    pub extra: Map<String, Value>,
}

pub type ApiResult<T = Value> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            code: None,
            decline_code: None,
            param: None,
            extra: Map::new(),
        }
    }

    /// 400 `invalid_request_error` about one parameter.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, ErrorType::InvalidRequest, message);
        error.param = Some(param.to_owned());
        error
    }

    /// 400 `parameter_invalid_integer`.
    pub fn invalid_integer(param: &str, value: impl std::fmt::Display) -> Self {
        let mut error = Self::invalid_param(param, format!("Invalid integer: {value}"));
        error.code = Some("parameter_invalid_integer");
        error
    }

    /// 400 `invalid_request_error` with no code.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorType::InvalidRequest, message)
    }

    /// 400 `parameter_missing`.
    pub fn missing_param(param: &str) -> Self {
        let mut error = Self::invalid_param(param, format!("Missing required param: {param}."));
        error.code = Some("parameter_missing");
        error
    }

    /// 400 `invalid_request_error` with a specific code and no parameter.
    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, ErrorType::InvalidRequest, message);
        error.code = Some(code);
        error
    }

    /// 404 `resource_missing`.
    pub fn missing(kind: &str, id: &str, param: &str) -> Self {
        let mut error = Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            format!("No such {kind}: '{id}'"),
        );
        error.code = Some("resource_missing");
        error.param = Some(param.to_owned());
        error
    }

    /// 404 for an unknown URL.
    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            format!("Unrecognized request URL ({method}: {path})."),
        )
    }

    /// 400 `payment_intent_unexpected_state` (and similar state errors).
    pub fn unexpected_state(code: &'static str, message: impl Into<String>) -> Self {
        Self::invalid_request(code, message)
    }

    /// 401: no key, or not a test key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorType::InvalidRequest, message)
    }

    /// 402 `card_error`.
    pub fn card(
        code: &'static str,
        decline_code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        let mut error = Self::new(StatusCode::PAYMENT_REQUIRED, ErrorType::Card, message);
        error.code = Some(code);
        error.decline_code = decline_code.map(str::to_owned);
        error
    }

    /// 400 `idempotency_error`.
    pub fn idempotency(message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, ErrorType::Idempotency, message);
        error.code = Some("idempotency_key_in_use");
        error
    }

    /// An injected failure with the given status (500 unless told otherwise).
    pub fn injected(status: StatusCode) -> Self {
        Self::new(
            status,
            ErrorType::Api,
            "An injected fault made this request fail before it was processed.",
        )
    }

    pub fn with_extra(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// The `error` object alone, as it appears in `last_payment_error`.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(self.kind.as_str()));
        body.insert("message".into(), json!(self.message));
        if let Some(code) = self.code {
            body.insert("code".into(), json!(code));
            body.insert(
                "doc_url".into(),
                json!(format!(
                    "https://stripe.com/docs/error-codes/{}",
                    code.replace('_', "-")
                )),
            );
        }
        if let Some(decline_code) = &self.decline_code {
            body.insert("decline_code".into(), json!(decline_code));
        }
        if let Some(param) = &self.param {
            body.insert("param".into(), json!(param));
        }
        for (key, value) in &self.extra {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.body() }))).into_response();
        if self.kind == ErrorType::Api {
            response.headers_mut().insert(
                "stripe-should-retry",
                axum::http::HeaderValue::from_static("true"),
            );
        }
        response
    }
}
