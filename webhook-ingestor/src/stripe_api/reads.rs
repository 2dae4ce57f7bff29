//! Reading objects and events back from Stripe as plain JSON.

use std::time::Duration;

use payments_core::reconcile::ObjectKind;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Pages of `GET /v1/events` read in one catch-up pass at most (100 events each).
const MAX_EVENT_PAGES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("Stripe answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("request to Stripe failed")]
    Transport(#[source] reqwest::Error),
    #[error("unexpected answer from Stripe: {0}")]
    Shape(String),
}

impl ReadError {
    /// A missing object will not appear by asking again.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Status { status: 404, .. })
    }
}

#[derive(Clone)]
pub struct Reader {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl Reader {
    pub fn new(base: &str, key: SecretString, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Reader {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
        })
    }

    #[tracing::instrument(
        name = "stripe",
        skip_all,
        fields(otel.kind = "client", stripe.operation = "retrieve_payment_intent", stripe.object = id)
    )]
    pub async fn payment_intent(&self, id: &str) -> Result<Value, ReadError> {
        self.get(&format!("/v1/payment_intents/{}", safe_id(id)?), &[])
            .await
    }

    #[tracing::instrument(
        name = "stripe",
        skip_all,
        fields(otel.kind = "client", stripe.operation = "retrieve_invoice", stripe.object = id)
    )]
    pub async fn invoice(&self, id: &str) -> Result<Value, ReadError> {
        self.get(&format!("/v1/invoices/{}", safe_id(id)?), &[])
            .await
    }

    /// Events created at or after `since` (Unix seconds) whose type matches one of
    /// `types` (`payment_intent.*` style), oldest first.
    /// The PaymentIntents or Invoices matching a search `query`, newest first (Stripe's
    /// search index lags by up to a minute, which a sweep of old transactions tolerates).
    #[tracing::instrument(
        name = "stripe",
        skip_all,
        fields(otel.kind = "client", stripe.operation = "search")
    )]
    pub async fn search(&self, kind: ObjectKind, query: &str) -> Result<Vec<Value>, ReadError> {
        let path = match kind {
            ObjectKind::PaymentIntent => "/v1/payment_intents/search",
            ObjectKind::Invoice => "/v1/invoices/search",
        };
        let page = self
            .get(path, &[("query".to_owned(), query.to_owned())])
            .await?;
        page.get("data")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| ReadError::Shape("a search result without data".into()))
    }

    #[tracing::instrument(
        name = "stripe",
        skip_all,
        fields(otel.kind = "client", stripe.operation = "list_events", since)
    )]
    pub async fn events_since(&self, since: i64, types: &[&str]) -> Result<Vec<Value>, ReadError> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_EVENT_PAGES {
            let mut query = vec![
                ("created[gte]".to_owned(), since.to_string()),
                ("limit".to_owned(), "100".to_owned()),
            ];
            query.extend(
                types
                    .iter()
                    .map(|t| ("types[]".to_owned(), (*t).to_owned())),
            );
            if let Some(id) = &after {
                query.push(("starting_after".to_owned(), id.clone()));
            }
            let page = self.get("/v1/events", &query).await?;
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| ReadError::Shape("an event list without data".into()))?;
            after = data
                .last()
                .and_then(|e| e.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            events.extend(data.iter().cloned());
            let more = page.get("has_more").and_then(Value::as_bool) == Some(true);
            if !more || after.is_none() {
                break;
            }
        }
        // Stripe lists newest first; apply in the order things happened.
        events.reverse();
        Ok(events)
    }

    async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, ReadError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
            .query(query)
            .send()
            .await
            .map_err(ReadError::Transport)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(ReadError::Transport)?;
        if !status.is_success() {
            let message = body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned();
            return Err(ReadError::Status {
                status: status.as_u16(),
                message,
            });
        }
        Ok(body)
    }
}

/// Ids go into a URL path: refuse anything but Stripe's id characters.
fn safe_id(id: &str) -> Result<&str, ReadError> {
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(id)
        .ok_or_else(|| ReadError::Shape(format!("not a Stripe id: {id:?}")))
}
