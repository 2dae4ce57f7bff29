//! [`StripeClient`]: async-stripe's client configured once for both services. Every
//! request goes out at the pinned API version, with no retries of its own (our callers
//! decide, from [`StripeFailure::is_retryable`], with their own budgets), in a
//! `stripe` span, and is reported to the [`CallObserver`] if there is one.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;
use stripe::{IdempotencyKey, RequestStrategy};
use stripe_client_core::CustomizableStripeRequest;
use tracing::Instrument as _;

use crate::{StripeConfig, StripeFailure};

/// Told about every call a [`StripeClient`] makes (a service's metrics).
pub trait CallObserver: Send + Sync {
    /// A call named `operation` ended after `elapsed`, failing with `failure` if it did.
    fn stripe_call(
        &self,
        operation: &'static str,
        elapsed: Duration,
        failure: Option<&StripeFailure>,
    );
}

/// Cheap to clone; clones share the connection pool and the observer.
#[derive(Clone)]
pub struct StripeClient {
    client: stripe::Client,
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient").finish_non_exhaustive()
    }
}

impl StripeClient {
    pub fn new(config: &StripeConfig) -> Result<Self, StripeFailure> {
        let client = stripe::ClientBuilder::new(config.secret_key.expose_secret())
            .url(config.api_base.as_str())
            .timeout(config.timeout)
            .request_strategy(RequestStrategy::Once)
            .build()?;
        Ok(StripeClient {
            client,
            observer: None,
        })
    }

    /// The same client, reporting every call to `observer`.
    pub fn observed_by(self, observer: Arc<dyn CallObserver>) -> Self {
        StripeClient {
            observer: Some(observer),
            ..self
        }
    }

    /// Sends `request` (built with async-stripe's typed requests) as `operation`.
    pub async fn send<T: miniserde::Deserialize>(
        &self,
        operation: &'static str,
        request: CustomizableStripeRequest<T>,
    ) -> Result<T, StripeFailure> {
        let span =
            tracing::info_span!("stripe", otel.kind = "client", stripe.operation = operation);
        async {
            let started = Instant::now();
            let result = request
                .send(&self.client)
                .await
                .map_err(StripeFailure::from);
            if let Some(observer) = &self.observer {
                observer.stripe_call(operation, started.elapsed(), result.as_ref().err());
            }
            result
        }
        .instrument(span)
        .await
    }

    /// [`send`](Self::send), with the answer as JSON for payments-core's
    /// [`StripeObject`](payments_core::StripeObject) to read, as it reads an event's
    /// object.
    pub async fn send_json(
        &self,
        operation: &'static str,
        request: CustomizableStripeRequest<miniserde::json::Value>,
    ) -> Result<serde_json::Value, StripeFailure> {
        let answer = self.send(operation, request).await?;
        serde_json::from_str(&miniserde::json::to_string(&answer))
            .map_err(|e| StripeFailure::Unexpected(format!("Stripe's answer as JSON: {e}")))
    }
}

/// The strategy that sends `key` as the `Idempotency-Key` header, once.
pub fn idempotent(key: &str) -> Result<RequestStrategy, StripeFailure> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeFailure::Unexpected(format!("idempotency key {key:?}: {e}")))
}
