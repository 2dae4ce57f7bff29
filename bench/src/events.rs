//! Signed Stripe webhooks for the pre-inserted transactions, shaped as stripe-sim (and
//! Stripe) sends them, and the HTTP/1.1 client that posts them to the ingestor.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

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

/// Signs events for the ingestor and posts them: [`Sender::post`] over a shared pool of
/// keep-alive connections (for open-loop traffic), or [`Connection::post`] on one
/// connection of the caller's, with the request signed and rendered beforehand.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    url: String,
    /// `host:port` and path of `url`, for [`Connection`].
    authority: String,
    path: String,
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

/// A signed event: its body and `Stripe-Signature` header value.
struct SignedBody {
    event_id: String,
    body: Vec<u8>,
    signature: String,
}

/// A signed event rendered as the whole HTTP/1.1 request that posts it, so sending it
/// costs the load generator one write. Stripe signs on its own machines; signing ahead
/// keeps that work out of the measured window on this shared one.
pub struct Request {
    event_id: String,
    bytes: Vec<u8>,
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
        let parsed = reqwest::Url::parse(&url).with_context(|| format!("parsing {url}"))?;
        let host = parsed.host_str().context("the webhook URL has no host")?;
        let port = parsed
            .port_or_known_default()
            .context("the webhook URL has no port")?;
        Ok(Sender {
            client,
            authority: format!("{host}:{port}"),
            path: parsed.path().to_owned(),
            url,
            secret,
        })
    }

    fn sign(&self, change: Change, n: u64) -> anyhow::Result<SignedBody> {
        let event_id = format!("evt_bench{}", EVENT_SEQ.fetch_add(1, Ordering::Relaxed));
        let id = tx_id(n).to_string();
        let body = serde_json::to_vec(&event_json(change, &event_id, &n.to_string(), &id))?;
        let t = unix_now();
        let signature = format!("t={t},v1={}", stripe_sim::sign(&self.secret, t, &body));
        Ok(SignedBody {
            event_id,
            body,
            signature,
        })
    }

    /// Signs and posts `change` for row `n`; an answer other than 200 `stored` is an error
    /// (every event in the benchmark is new and matches a transaction).
    pub async fn post(&self, change: Change, n: u64) -> anyhow::Result<Ack> {
        let SignedBody {
            event_id,
            body,
            signature,
        } = self.sign(change, n)?;
        let sent = Instant::now();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", CONTENT_TYPE)
            .header("stripe-signature", signature)
            .body(body)
            .send()
            .await
            .context("posting a webhook")?;
        let status = response.status().as_u16();
        let text = response.bytes().await.context("reading the answer")?;
        let acked = Instant::now();
        check_stored(status, &text, &event_id)?;
        Ok(Ack { sent, acked })
    }

    /// `change` for row `n`, signed now and rendered for [`Connection::post`].
    pub fn request(&self, change: Change, n: u64) -> anyhow::Result<Request> {
        let SignedBody {
            event_id,
            body,
            signature,
        } = self.sign(change, n)?;
        let mut bytes = format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: {CONTENT_TYPE}\r\n\
             stripe-signature: {signature}\r\ncontent-length: {}\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        Ok(Request { event_id, bytes })
    }

    /// A keep-alive connection of the caller's own, like each of Stripe's deliverers.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }
}

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

fn check_stored(status: u16, body: &[u8], event_id: &str) -> anyhow::Result<()> {
    if status != 200 || body != b"stored" {
        anyhow::bail!(
            "the ingestor answered {status} {:?} for {event_id}",
            String::from_utf8_lossy(body)
        );
    }
    Ok(())
}

/// One HTTP/1.1 connection to the ingestor, one request at a time. The least a client
/// can do per request (one write, reads until the answer is whole), as pgbench is the
/// least a database client can do.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub async fn post(&mut self, request: &Request) -> anyhow::Result<Ack> {
        let sent = Instant::now();
        self.stream
            .write_all(&request.bytes)
            .await
            .context("posting a webhook")?;
        let (status, body) = self.read_response().await?;
        let acked = Instant::now();
        check_stored(status, body, &request.event_id)?;
        Ok(Ack { sent, acked })
    }

    /// Reads one response (status and a `content-length` body) into the buffer.
    async fn read_response(&mut self) -> anyhow::Result<(u16, &[u8])> {
        self.buf.clear();
        loop {
            if let Some(head_len) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..head_len])?;
                let (status, length) = parse_head(head)?;
                let end = head_len + 4 + length;
                while self.buf.len() < end {
                    self.fill().await?;
                }
                return Ok((status, &self.buf[head_len + 4..end]));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .context("reading the answer")?;
        if n == 0 {
            anyhow::bail!("the ingestor closed the connection");
        }
        Ok(())
    }
}

/// The status and `content-length` of a response head.
fn parse_head(head: &str) -> anyhow::Result<(u16, usize)> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {head:?}"))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .with_context(|| format!("no content-length in {head:?}"))?;
    Ok((status, length))
}

#[cfg(test)]
mod tests {
    use payments_core::{Meaning, Signal, StripeEvent, TransactionId};

    use super::*;

    #[test]
    fn a_response_head_gives_its_status_and_length() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 6\r\ndate: x";
        assert_eq!(parse_head(head).expect("parses"), (200, 6));
        assert!(parse_head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
        assert!(parse_head("garbage").is_err());
    }

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
