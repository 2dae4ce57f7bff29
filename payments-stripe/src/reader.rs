//! Reading back from Stripe as JSON, for payments-core to interpret the way it reads a
//! webhook's object: the reconciliation reader ([`StripeReader`]), an invoice with its
//! payments ([`StripeClient::invoice_with_payments`]) and the event list of the
//! catch-up pass ([`StripeClient::events_page`]).

use payments_core::reconcile::{ObjectKind, ObjectRef, StripeReader};
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use crate::{StripeClient, StripeFailure};

/// Where a page of `GET /v1/events` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsFrom<'a> {
    /// The newest events Stripe lists (`starting_after` with `Some`: older than that one).
    Newest { older_than: Option<&'a str> },
    /// The events just after this one (`ending_before`): paging forward in time.
    After(&'a str),
}

/// One page of `GET /v1/events`, newest first as Stripe lists it.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    pub events: Vec<Value>,
    /// More events lie beyond the page in the direction it was read.
    pub has_more: bool,
}

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

    /// The Invoice `id` with its payments and their PaymentIntents: since API version
    /// 2025-03-31.basil the only place that says why its payment failed
    /// ([`StripeObject::invoice_payment_failure`](payments_core::StripeObject::invoice_payment_failure)).
    pub async fn invoice_with_payments(&self, id: &str) -> Result<Value, StripeFailure> {
        let path = format!("/invoices/{}", path_safe(id)?);
        let expand = [("expand[]", "payments.data.payment.payment_intent")];
        self.get("retrieve_invoice", &path, &expand).await
    }

    /// One page (up to 100) of the events whose type matches one of `types`
    /// (`payment_intent.*` style), from `from`, created at or after `since` (Unix
    /// seconds) if given. A cursor event Stripe no longer holds is a `resource_missing`
    /// rejection ([`StripeFailure::is_missing`]).
    pub async fn events_page(
        &self,
        from: EventsFrom<'_>,
        since: Option<i64>,
        types: &[&str],
    ) -> Result<EventPage, StripeFailure> {
        let since = since.map(|s| s.to_string());
        let mut query = vec![("limit", "100")];
        match from {
            EventsFrom::Newest { older_than: None } => {}
            EventsFrom::Newest {
                older_than: Some(id),
            } => query.push(("starting_after", id)),
            EventsFrom::After(id) => query.push(("ending_before", id)),
        }
        if let Some(since) = &since {
            query.push(("created[gte]", since));
        }
        query.extend(types.iter().map(|t| ("types[]", *t)));
        let page = self.get("list_events", "/events", &query).await?;
        Ok(EventPage {
            events: list_data(&page, "an event list")?.to_vec(),
            has_more: page.get("has_more").and_then(Value::as_bool) == Some(true),
        })
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
