//! Reading back from Stripe as JSON, for payments-core to interpret the way it reads a
//! webhook's object: the reconciliation reader ([`StripeReader`]) and the event list of
//! the catch-up pass ([`StripeClient::events_since`]).

use payments_core::reconcile::{ObjectKind, ObjectRef, StripeReader};
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::{StripeClient, StripeFailure};

/// How many event types `GET /v1/events` takes in one `types[]` list.
pub const MAX_TYPES_PER_LIST: usize = 20;

/// Pages of `GET /v1/events` read in one catch-up pass at most (100 events each).
pub const MAX_EVENT_PAGES: usize = 20;

impl StripeClient {
    /// `GET /v1{path}?{query}` as JSON.
    async fn get(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, StripeFailure> {
        // The query goes into the path as we encode it: async-stripe's own encoder
        // writes lists as `key[0]=…`, and the event list is asked for as `types[]=…`.
        let path = match query {
            [] => path.to_owned(),
            pairs => {
                let mut encoded = form_urlencoded::Serializer::new(String::new());
                encoded.extend_pairs(pairs);
                format!("{path}?{}", encoded.finish())
            }
        };
        let request = RequestBuilder::new(StripeMethod::Get, path).customize();
        self.send_json(operation, request).await
    }

    /// The PaymentIntent `id` as Stripe holds it now.
    pub async fn payment_intent(&self, id: &str) -> Result<Value, StripeFailure> {
        let path = format!("/payment_intents/{}", path_safe(id)?);
        self.get("retrieve_payment_intent", &path, &[]).await
    }

    /// The Invoice `id` as Stripe holds it now.
    pub async fn invoice(&self, id: &str) -> Result<Value, StripeFailure> {
        let path = format!("/invoices/{}", path_safe(id)?);
        self.get("retrieve_invoice", &path, &[]).await
    }

    /// Events created at or after `since` (Unix seconds) whose type matches one of
    /// `types` (`payment_intent.*` style), oldest first within each list of at most
    /// [`MAX_TYPES_PER_LIST`] types (Stripe's limit; more types are asked for in several
    /// lists); at most [`MAX_EVENT_PAGES`] pages per list.
    pub async fn events_since(
        &self,
        since: i64,
        types: &[&str],
    ) -> Result<Vec<Value>, StripeFailure> {
        let mut events = Vec::new();
        for types in types.chunks(MAX_TYPES_PER_LIST) {
            events.extend(self.events_of_types_since(since, types).await?);
        }
        Ok(events)
    }

    async fn events_of_types_since(
        &self,
        since: i64,
        types: &[&str],
    ) -> Result<Vec<Value>, StripeFailure> {
        let since = since.to_string();
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_EVENT_PAGES {
            let mut query = vec![("created[gte]", since.as_str()), ("limit", "100")];
            query.extend(types.iter().map(|t| ("types[]", *t)));
            if let Some(id) = &after {
                query.push(("starting_after", id));
            }
            let page = self.get("list_events", "/events", &query).await?;
            let data = list_data(&page, "an event list")?;
            let last = data
                .last()
                .and_then(|e| e.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            events.extend(data.iter().cloned());
            let more = page.get("has_more").and_then(Value::as_bool) == Some(true);
            after = last;
            if !more || after.is_none() {
                break;
            }
        }
        // Stripe lists newest first; apply in the order things happened.
        events.reverse();
        Ok(events)
    }
}

impl StripeReader for StripeClient {
    type Error = StripeFailure;

    async fn retrieve(&self, object: ObjectRef<'_>) -> Result<Value, StripeFailure> {
        match object {
            ObjectRef::PaymentIntent(id) => self.payment_intent(id).await,
            ObjectRef::Invoice(id) => self.invoice(id).await,
        }
    }

    /// Stripe's search index lags by up to a minute, which reconciling a transaction
    /// whose answer was lost tolerates: the sweeper comes back, the operator retries.
    async fn search(&self, kind: ObjectKind, query: &str) -> Result<Vec<Value>, StripeFailure> {
        let path = match kind {
            ObjectKind::PaymentIntent => "/payment_intents/search",
            ObjectKind::Invoice => "/invoices/search",
        };
        let page = self.get("search", path, &[("query", query)]).await?;
        Ok(list_data(&page, "a search result")?.to_vec())
    }
}

/// A list's `data`.
fn list_data<'a>(page: &'a Value, what: &str) -> Result<&'a [Value], StripeFailure> {
    page.get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| StripeFailure::Unexpected(format!("{what} without data")))
}

/// Ids go into a URL path: refuse anything but Stripe's id characters.
fn path_safe(id: &str) -> Result<&str, StripeFailure> {
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(id)
        .ok_or_else(|| StripeFailure::Unexpected(format!("not a Stripe id: {id:?}")))
}
