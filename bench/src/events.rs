//! Signed Stripe webhooks for the pre-inserted transactions, shaped as stripe-sim (and
//! Stripe) sends them, and the HTTP/1.1 client that posts them to the ingestor.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use serde_json::{Value, json};

use crate::db::tx_id;

/// The PaymentIntent event a change is announced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Succeeded,
    RequiresAction,
    Processing,
}

impl Change {
    fn event_type(self) -> &'static str {
        match self {
            Change::Succeeded => "payment_intent.succeeded",
            Change::RequiresAction => "payment_intent.requires_action",
            Change::Processing => "payment_intent.processing",
        }
    }

    fn status(self) -> &'static str {
        match self {
            Change::Succeeded => "succeeded",
            Change::RequiresAction => "requires_action",
            Change::Processing => "processing",
        }
    }
}

/// The event for row `n`, with the ids given as text so the pgbench script can use the
/// same document with placeholders.
pub fn event_json(change: Change, event_id: &str, n: &str, transaction_id: &str) -> Value {
    let now = unix_now();
    json!({
        "id": event_id,
        "object": "event",
        "api_version": stripe_sim::API_VERSION,
        "created": now,
        "data": {"object": payment_intent(change, n, transaction_id, now)},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": change.event_type(),
    })
}

/// The PaymentIntent as stripe-sim renders it (the fields Stripe sends).
fn payment_intent(change: Change, n: &str, transaction_id: &str, now: i64) -> Value {
    let succeeded = change == Change::Succeeded;
    let pi = format!("pi_bench_{n}");
    json!({
            "id": pi,
            "object": "payment_intent",
            "amount": 1000,
            "amount_capturable": 0,
            "amount_received": if succeeded { 1000 } else { 0 },
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": null,
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic",
            "client_secret": format!("{pi}_secret_bench"),
            "confirmation_method": "automatic",
            "created": now,
            "currency": "usd",
            "customer": format!("cus_bench_{n}"),
            "description": null,
            "last_payment_error": null,
            "latest_charge": if succeeded { Value::from(format!("ch_bench_{n}")) } else { Value::Null },
            "livemode": false,
            "metadata": {"transaction_id": transaction_id},
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": "pm_bench",
            "payment_method_types": ["card"],
            "processing": null,
            "receipt_email": null,
            "review": null,
            "setup_future_usage": null,
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": change.status(),
            "transfer_data": null,
            "transfer_group": null,
    })
}

fn unix_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or_default()
}

/// Posts signed events to the ingestor over keep-alive HTTP/1.1 connections.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    url: String,
    secret: String,
}

/// Every event id in a run is new.
static EVENT_SEQ: AtomicU64 = AtomicU64::new(1);

/// One acknowledged event.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub sent: Instant,
    pub acked: Instant,
}

impl Sender {
    pub fn new(url: String, secret: String, connections: usize) -> anyhow::Result<Sender> {
        let client = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(connections.max(1))
            .pool_idle_timeout(Duration::from_secs(300))
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the webhook client")?;
        Ok(Sender {
            client,
            url,
            secret,
        })
    }

    /// Signs and posts `change` for row `n`; an answer other than 200 `stored` is an error
    /// (every event in the benchmark is new and matches a transaction).
    pub async fn post(&self, change: Change, n: u64) -> anyhow::Result<Ack> {
        let event_id = format!("evt_bench{}", EVENT_SEQ.fetch_add(1, Ordering::Relaxed));
        let id = tx_id(n).to_string();
        let body = serde_json::to_vec(&event_json(change, &event_id, &n.to_string(), &id))?;
        let t = unix_now();
        let signature = format!("t={t},v1={}", stripe_sim::sign(&self.secret, t, &body));
        let sent = Instant::now();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", signature)
            .body(body)
            .send()
            .await
            .context("posting a webhook")?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        let acked = Instant::now();
        if status != reqwest::StatusCode::OK || text != "stored" {
            anyhow::bail!("the ingestor answered {status} {text:?} for {event_id}");
        }
        Ok(Ack { sent, acked })
    }
}

#[cfg(test)]
mod tests {
    use payments_core::{Meaning, Signal, StripeEvent, TransactionId};

    use super::*;

    #[test]
    fn the_events_mean_what_the_benchmark_says() {
        let id = tx_id(42);
        for (change, signal) in [
            (Change::Succeeded, Signal::Succeeded),
            (Change::RequiresAction, Signal::RequiresAction),
            (Change::Processing, Signal::Processing),
        ] {
            let body = event_json(change, "evt_bench1", "42", &id.to_string());
            let raw = serde_json::to_vec(&body).expect("serializes");
            let event = StripeEvent::parse(&raw).expect("an event");
            let Ok(Meaning::Transaction {
                target, signal: s, ..
            }) = event.meaning()
            else {
                panic!("a transaction event");
            };
            assert_eq!(s, signal);
            assert_eq!(target.transaction_id, Some(TransactionId::from(id)));
            assert_eq!(target.payment_intent.as_deref(), Some("pi_bench_42"));
        }
    }
}
