//! Configuration: one typed struct, read from the environment once at start-up, with
//! every problem reported together. Tests build the struct ([`Config::for_tests`]) and
//! never touch the process environment.

use std::{fmt, net::SocketAddr, time::Duration};

use payments_core::{StripeMode, inbox::Rules};
pub use payments_service_kit::ConfigError;
use payments_service_kit::{FromEnv, Reader};
use secrecy::{ExposeSecret, SecretString};

use crate::retry::RetryPolicy;

pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    /// `INGESTOR_MIGRATE_AT_START`: apply migrations at start (the default), or only
    /// check none is pending, so the service can run as a role without DDL rights.
    pub migrate_at_start: bool,
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before answering 503.
    pub db_acquire_timeout: Duration,
    pub stripe_api_base: String,
    pub stripe_secret_key: SecretString,
    /// Every secret a webhook may be signed with (several while one is rolled).
    pub webhook_secrets: Vec<SecretString>,
    pub signature_tolerance: Duration,
    pub body_limit: usize,
    /// Budget and backoff for unmatched, deferred and failed events, and outbox calls.
    pub retry: RetryPolicy,
    pub event_worker_interval: Duration,
    pub outbox_interval: Duration,
    /// Per-call timeout for requests to Stripe.
    pub stripe_timeout: Duration,
    /// A transaction unsettled for this long is read back from Stripe.
    pub reconcile_after: Duration,
    /// How often the reconciliation sweeper runs; None turns it off.
    pub reconcile_interval: Option<Duration>,
    /// A transaction still CREATED or REQUIRES_ACTION this long after its creation is
    /// abandoned: the sweeper cancels it at Stripe (through the outbox).
    pub abandon_after: Duration,
    /// How often `GET /v1/events` is read for events we missed; None turns it off.
    pub catch_up_interval: Option<Duration>,
    /// How often the database's health signals are read into the metrics; None: never.
    pub signals_interval: Option<Duration>,
    /// After a shutdown signal, how long in-flight work may take before we give up.
    pub shutdown_grace: Duration,
    /// Group commit: webhooks that arrive together are stored and applied in one
    /// database transaction, each still answered only after that commit.
    pub group_commit: GroupCommitConfig,
    /// `INGESTOR_DOORBELL_AFTER_COMMIT`: the webhook path rings the watchers' doorbell
    /// right after its commit, so its commits do not wait on each other's WAL flush for
    /// the notification queue's lock; a doorbell lost to a crash in between is found by
    /// payments-api's safety pass. On by default: with one statement per success, that
    /// lock was what held the webhook rate (most of the backends' time went waiting on
    /// it at 16 senders). Off: inside the commit, as every other writer.
    pub doorbell_after_commit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// Events per database transaction at most; 1 commits each webhook on its own.
    pub max_events: usize,
    /// Database transactions being filled or committed at once.
    pub committers: usize,
}

impl GroupCommitConfig {
    pub const OFF: GroupCommitConfig = GroupCommitConfig {
        max_events: 1,
        committers: 1,
    };

    /// The default: up to 32 events per commit, 2 committers. A lone webhook still goes
    /// straight through (a batch is what queued while the committers were busy), so it
    /// costs nothing at low rates and saves commits and round trips at high ones. Two
    /// committers keep one batch executing while the other's commit is flushed; each
    /// committer more splits the same queue into smaller batches (measured on a 2-core
    /// database at 16 senders: 4 events per commit with two committers, 2.6 with four,
    /// and about a fifth fewer webhooks per second). Raise it with the database's cores.
    pub const DEFAULT: GroupCommitConfig = GroupCommitConfig {
        max_events: 32,
        committers: 2,
    };

    pub fn enabled(&self) -> bool {
        self.max_events > 1
    }
}

impl FromEnv for Config {
    fn read(env: &mut Reader<'_>) -> Config {
        Config {
            addr: env.parsed("INGESTOR_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080))),
            database_url: env.required("DATABASE_URL").unwrap_or_default(),
            migrate_at_start: env.parsed("INGESTOR_MIGRATE_AT_START", true),
            db_max_connections: env.positive("INGESTOR_DB_MAX_CONNECTIONS", 10),
            db_acquire_timeout: env.millis("INGESTOR_DB_ACQUIRE_TIMEOUT_MS", 5_000),
            stripe_api_base: env.url("STRIPE_API_BASE", payments_stripe::DEFAULT_API_BASE),
            stripe_secret_key: StripeMode::read_key(env, "STRIPE_SECRET_KEY"),
            webhook_secrets: env.secret_list("STRIPE_WEBHOOK_SECRETS"),
            signature_tolerance: env.seconds("INGESTOR_SIGNATURE_TOLERANCE_SECS", 300),
            body_limit: env.positive("INGESTOR_BODY_LIMIT_BYTES", 1024 * 1024),
            retry: RetryPolicy {
                base: env.millis("INGESTOR_RETRY_BASE_MS", 1_000),
                max_backoff: env.seconds("INGESTOR_RETRY_MAX_BACKOFF_SECS", 3_600),
                max_attempts: env.positive("INGESTOR_RETRY_MAX_ATTEMPTS", 20),
            },
            event_worker_interval: env.millis("INGESTOR_EVENT_WORKER_INTERVAL_MS", 1_000),
            outbox_interval: env.millis("INGESTOR_OUTBOX_INTERVAL_MS", 1_000),
            stripe_timeout: env.seconds("INGESTOR_STRIPE_TIMEOUT_SECS", 10),
            reconcile_after: env.seconds("INGESTOR_RECONCILE_AFTER_SECS", 900),
            reconcile_interval: env.optional_seconds("INGESTOR_RECONCILE_INTERVAL_SECS", 60),
            abandon_after: env.seconds("INGESTOR_ABANDON_AFTER_SECS", 86_400),
            catch_up_interval: env.optional_seconds("INGESTOR_CATCH_UP_INTERVAL_SECS", 300),
            signals_interval: env.optional_seconds("INGESTOR_SIGNALS_INTERVAL_SECS", 15),
            shutdown_grace: env.seconds("INGESTOR_SHUTDOWN_GRACE_SECS", 25),
            group_commit: GroupCommitConfig {
                max_events: env.positive(
                    "INGESTOR_GROUP_COMMIT_MAX_EVENTS",
                    GroupCommitConfig::DEFAULT.max_events,
                ),
                committers: env.positive(
                    "INGESTOR_GROUP_COMMIT_COMMITTERS",
                    GroupCommitConfig::DEFAULT.committers,
                ),
            },
            doorbell_after_commit: env.parsed("INGESTOR_DOORBELL_AFTER_COMMIT", true),
        }
    }
}

impl Config {
    /// The mode of `STRIPE_SECRET_KEY`: only that mode's events are applied (the key's
    /// prefix is checked at load; a test configuration's unknown prefix is test mode).
    pub fn stripe_mode(&self) -> StripeMode {
        StripeMode::of_key(self.stripe_secret_key.expose_secret()).unwrap_or(StripeMode::Test)
    }

    /// How the inbox treats events: the retry budget and the key's mode.
    pub fn inbox_rules(&self) -> Rules {
        Rules {
            retry: self.retry,
            mode: self.stripe_mode(),
        }
    }

    /// A configuration for tests: port 0 on loopback, fast worker intervals and a short
    /// retry budget; reconciliation, catch-up and the health signals off (turn them on by
    /// setting the fields).
    pub fn for_tests(database_url: &str, stripe_api_base: &str, webhook_secret: &str) -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned(),
            migrate_at_start: true,
            db_max_connections: 10,
            db_acquire_timeout: Duration::from_secs(5),
            stripe_api_base: stripe_api_base.to_owned(),
            stripe_secret_key: SecretString::from("sk_test_ingestor"),
            webhook_secrets: vec![SecretString::from(webhook_secret)],
            signature_tolerance: Duration::from_secs(300),
            body_limit: 1024 * 1024,
            retry: RetryPolicy {
                base: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
                max_attempts: 5,
            },
            event_worker_interval: Duration::from_millis(25),
            outbox_interval: Duration::from_millis(25),
            stripe_timeout: Duration::from_secs(5),
            reconcile_after: Duration::from_secs(60),
            reconcile_interval: None,
            abandon_after: Duration::from_secs(86_400),
            catch_up_interval: None,
            signals_interval: None,
            shutdown_grace: Duration::from_secs(10),
            group_commit: GroupCommitConfig::DEFAULT,
            doorbell_after_commit: true,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &redact_password(&self.database_url))
            .field("stripe_api_base", &self.stripe_api_base)
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("signature_tolerance", &self.signature_tolerance)
            .field("body_limit", &self.body_limit)
            .field("retry", &self.retry)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("catch_up_interval", &self.catch_up_interval)
            .field("group_commit", &self.group_commit)
            .field("doorbell_after_commit", &self.doorbell_after_commit)
            .finish_non_exhaustive()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
