//! Reading a transaction's Stripe object back as plain JSON, for reconciliation:
//! payments-core reads it the way it reads a webhook's object, whatever the API
//! version, so the operator's reconcile and the ingestor's sweeper agree.

use payments_core::reconcile::{ObjectKind, ObjectRef};
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::{Observed, Stripe, StripeFailure};

impl Stripe {
    /// The PaymentIntent or Invoice as Stripe holds it now.
    pub async fn retrieve_object(
        &self,
        object: ObjectRef<'_>,
    ) -> Result<serde_json::Value, StripeFailure> {
        let path = match object {
            ObjectRef::Invoice(id) => format!("/invoices/{}", path_safe(id)?),
            ObjectRef::PaymentIntent(id) => format!("/payment_intents/{}", path_safe(id)?),
        };
        let value: miniserde::json::Value = RequestBuilder::new(StripeMethod::Get, path)
            .customize()
            .send(&self.client)
            .observed(&self.metrics, "retrieve_object")
            .await?;
        serde_json::from_str(&miniserde::json::to_string(&value))
            .map_err(|e| StripeFailure::Unexpected(format!("Stripe's object as JSON: {e}")))
    }
}

impl Stripe {
    /// The PaymentIntents or Invoices matching a search `query`, newest first.
    pub async fn search_objects(
        &self,
        kind: ObjectKind,
        query: &str,
    ) -> Result<Vec<serde_json::Value>, StripeFailure> {
        let path = match kind {
            ObjectKind::PaymentIntent => "/payment_intents/search",
            ObjectKind::Invoice => "/invoices/search",
        };
        let value: miniserde::json::Value = RequestBuilder::new(StripeMethod::Get, path)
            .query(&std::collections::BTreeMap::from([("query", query)]))
            .customize()
            .send(&self.client)
            .observed(&self.metrics, "search")
            .await?;
        let page: serde_json::Value = serde_json::from_str(&miniserde::json::to_string(&value))
            .map_err(|e| {
                StripeFailure::Unexpected(format!("Stripe's search result as JSON: {e}"))
            })?;
        match page.get("data") {
            Some(serde_json::Value::Array(data)) => Ok(data.clone()),
            _ => Err(StripeFailure::Unexpected(
                "a search result without data".into(),
            )),
        }
    }
}

/// Ids go into a URL path: refuse anything but Stripe's id characters.
fn path_safe(id: &str) -> Result<&str, StripeFailure> {
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(id)
        .ok_or_else(|| StripeFailure::Unexpected(format!("not a Stripe id: {id:?}")))
}
