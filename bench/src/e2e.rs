//! End to end: concurrent users, each with pm_card_visa attached first, loop
//! CreatePayment → WatchTransaction until SUCCEEDED arrives. The success travels the whole
//! way: payments-api → stripe-sim (confirm) → signed webhook → webhook-ingestor (commit)
//! → NOTIFY → payments-api's hub → the stream.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use payments_client::{
    Connection, Endpoint, PaymentsClient, RetryPolicy,
    pb::{AttachPaymentMethodRequest, CreatePaymentRequest, TransactionStatus},
};
use serde::{Deserialize, Serialize};

use crate::{
    procfs::{CpuMeter, CpuUse},
    services,
    stats::Latency,
};

const WARMUP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct E2eRun {
    pub users: usize,
    pub secs: f64,
    pub flows: u64,
    pub flows_per_s: f64,
    /// CreatePayment sent → SUCCEEDED received on the watch stream.
    pub latency: Latency,
    /// CreatePayment alone (it includes the synchronous Stripe confirm).
    pub create_latency: Latency,
    /// WatchTransaction called → its first message.
    pub first_message_latency: Latency,
    /// Flows whose first watch message was already SUCCEEDED.
    pub settled_before_watch: u64,
    /// First message → SUCCEEDED, for flows whose first message was not yet final.
    pub first_to_final_latency: Latency,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Over the window; processes: [payments-api, webhook-ingestor, stripe-sim].
    pub cpu: CpuUse,
}

pub async fn run(
    api_url: &str,
    users: usize,
    secs: Duration,
    run: usize,
    pids: &[u32],
) -> anyhow::Result<E2eRun> {
    let ids: Vec<String> = (0..users).map(|u| format!("e2e-{run}-{u}")).collect();
    let sessions =
        futures::future::try_join_all(ids.iter().map(|id| User::attach(api_url, id))).await?;
    let start = Instant::now();
    let window = (start + WARMUP, start + WARMUP + secs);
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|user| tokio::spawn(user.pay_until(window)))
        .collect();
    tokio::time::sleep_until(window.0.into()).await;
    let cpu = CpuMeter::start(pids);
    tokio::time::sleep_until(window.1.into()).await;
    let cpu = cpu.stop();
    let (mut flows, mut creates, mut firsts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut errors, mut first_error, mut settled_before_watch) = (0, None, 0);
    let mut first_to_final = Vec::new();
    for task in tasks {
        let done = task.await?;
        flows.extend(done.flows);
        creates.extend(done.creates);
        firsts.extend(done.first_messages);
        settled_before_watch += done.settled_before_watch;
        first_to_final.extend(done.first_to_final);
        errors += done.errors;
        first_error = first_error.or(done.first_error);
    }
    Ok(E2eRun {
        users,
        secs: secs.as_secs_f64(),
        flows: flows.len() as u64,
        flows_per_s: flows.len() as f64 / secs.as_secs_f64(),
        latency: Latency::of(flows),
        create_latency: Latency::of(creates),
        first_message_latency: Latency::of(firsts),
        settled_before_watch,
        first_to_final_latency: Latency::of(first_to_final),
        errors,
        first_error,
        cpu,
    })
}

/// When one flow's steps answered.
struct Timings {
    created: Instant,
    first_message: Duration,
    /// None when the first message was already SUCCEEDED.
    first_to_final: Option<Duration>,
}

struct User {
    client: PaymentsClient,
    id: String,
    card: String,
}

#[derive(Default)]
struct Done {
    flows: Vec<Duration>,
    creates: Vec<Duration>,
    first_messages: Vec<Duration>,
    settled_before_watch: u64,
    first_to_final: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl User {
    /// Connects (one HTTP/2 connection per user, the user's own token, no retries: a
    /// failure counts as one) and attaches pm_card_visa.
    async fn attach(api_url: &str, id: &str) -> anyhow::Result<User> {
        let token = services::signing_key().user(id);
        let client = Connection::connect(&Endpoint::new(api_url), token)
            .await
            .context("connecting to payments-api")?
            .with_retry(RetryPolicy::never())
            .payments();
        let attach = AttachPaymentMethodRequest {
            user_id: id.to_owned(),
            payment_method_id: "pm_card_visa".to_owned(),
        };
        let card = client
            .attach_payment_method(attach)
            .await
            .context("AttachPaymentMethod")?;
        Ok(User {
            client,
            id: id.to_owned(),
            card: card.id,
        })
    }

    /// Pays in a loop until the window ends; flows finishing inside it are counted.
    async fn pay_until(mut self, (from, to): (Instant, Instant)) -> Done {
        let mut done = Done::default();
        while Instant::now() < to {
            let started = Instant::now();
            match self.one_payment().await {
                Ok(t) => {
                    let finished = Instant::now();
                    if finished >= from && finished < to {
                        done.flows.push(finished - started);
                        done.creates.push(t.created - started);
                        done.first_messages.push(t.first_message);
                        match t.first_to_final {
                            Some(gap) => done.first_to_final.push(gap),
                            None => done.settled_before_watch += 1,
                        }
                    }
                }
                Err(e) => {
                    done.errors += 1;
                    done.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        done
    }

    /// One top-up, watched until SUCCEEDED.
    async fn one_payment(&mut self) -> anyhow::Result<Timings> {
        let create = CreatePaymentRequest {
            user_id: self.id.clone(),
            payment_method_id: self.card.clone(),
            amount: 1_000,
            currency: "usd".to_owned(),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        };
        let tx = self.client.create_payment(create).await?.transaction;
        let created_at = Instant::now();
        let watch_at = Instant::now();
        let mut stream = self.client.open_watch(&tx.id, None).await?;
        let mut first: Option<Duration> = None;
        let mut messages = 0;
        while let Some(update) = stream.message().await? {
            messages += 1;
            let first_message = *first.get_or_insert_with(|| watch_at.elapsed());
            let status = update.transaction.map_or(0, |t| t.status);
            if status == TransactionStatus::Succeeded as i32 {
                return Ok(Timings {
                    created: created_at,
                    first_message,
                    first_to_final: (messages > 1)
                        .then(|| watch_at.elapsed().saturating_sub(first_message)),
                });
            }
        }
        bail!("the stream ended without SUCCEEDED")
    }
}
