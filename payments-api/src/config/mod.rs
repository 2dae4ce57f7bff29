//! The service's configuration: one typed struct, read once from the environment
//! through the shared [`Reader`]. Every problem is collected and reported together,
//! and a missing secret stops the start-up rather than falling back to a default.
//! Tests build the struct directly.
//!
//! - this file: [`Config`], the database, Stripe, wallet and watch settings.
//! - [`jwt`]: how bearer tokens are verified.
//! - [`cors`]: the browser origins allowed to call grpc-web.
//! - [`limits`]: the caps on streams, mutations and connections.

mod cors;
mod jwt;
mod limits;

use std::{net::SocketAddr, time::Duration};

use payments_core::{Currency, STRIPE_MAX_AMOUNT, StripeMode};
pub use payments_service_kit::ConfigError;
use payments_service_kit::{FromEnv, Reader};
use secrecy::SecretString;

pub use self::{
    cors::CorsOrigins,
    jwt::{JwksConfig, JwtConfig, JwtKey, MIN_HS256_SECRET_BYTES},
    limits::{LimitsConfig, RateLimit},
};
use crate::watch::WatchConfig;

/// Everything the service needs to start.
#[derive(Debug)]
pub struct Config {
    /// Where `PaymentsService` is served, gRPC and grpc-web, with health
    /// (`PAYMENTS_API_ADDR`): the port a public ingress may reach.
    pub addr: SocketAddr,
    /// Where `PaymentsAdmin` and reflection are served (`PAYMENTS_ADMIN_ADDR`): for
    /// operators inside the cluster, never behind the public ingress.
    pub admin_addr: SocketAddr,
    /// Where `GET /metrics` is served (Prometheus text format).
    pub metrics_addr: SocketAddr,
    pub database: DatabaseConfig,
    pub stripe: StripeConfig,
    /// How bearer tokens are verified.
    pub jwt: JwtConfig,
    /// Browser origins allowed to call grpc-web (`PAYMENTS_CORS_ORIGINS`).
    pub cors: CorsOrigins,
    pub wallet: WalletConfig,
    /// WatchTransaction's hub; `PAYMENTS_WATCH_COALESCE_MS` sets how long doorbells
    /// gather into one re-read, `PAYMENTS_WATCH_MAX_LIFETIME_SECS` how long a stream lives.
    pub watch: WatchConfig,
    /// What one caller, and one connection, may take of the instance.
    pub limits: LimitsConfig,
    /// How long in-flight calls may take to finish once shutdown starts.
    pub drain_timeout: Duration,
}

#[derive(Debug)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`; secret because it usually carries a password.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `PAYMENTS_MIGRATE_AT_START`: apply migrations at start (the default), or only
    /// check none is pending, so the service can run as a role without DDL rights.
    pub migrate_at_start: bool,
}

/// `STRIPE_API_BASE`, `STRIPE_SECRET_KEY`, `STRIPE_TIMEOUT_MS`: the client both services share.
pub use payments_stripe::StripeConfig;

/// Wallet rules, all amounts in minor units of `currency`.
#[derive(Debug, Clone, Copy)]
pub struct WalletConfig {
    /// `PAYMENTS_WALLET_CURRENCY`: the currency of new wallets.
    pub currency: Currency,
    /// `PAYMENTS_MIN_TOPUP`: the smallest CreatePayment amount.
    pub min_topup: i64,
    /// `PAYMENTS_MAX_AMOUNT`: the largest CreatePayment amount; at most Stripe's own
    /// ceiling ([`STRIPE_MAX_AMOUNT`]), the default.
    pub max_amount: i64,
    /// `PAYMENTS_VALIDATION_AMOUNT`: the authorization hold that proves a card.
    pub validation_amount: i64,
    /// `PAYMENTS_TRIAL_CREDIT`: what a successful StartTrial grants.
    pub trial_credit: i64,
    /// `PAYMENTS_ACCEPT_COUPON_IDS`: whether ApplyCoupon takes a raw Stripe coupon id as
    /// well as a promotion code (off: promotion codes only, which carry every restriction).
    pub accept_coupon_ids: bool,
}

pub const DEFAULT_ADDR: &str = "0.0.0.0:50051";
pub const DEFAULT_STRIPE_API_BASE: &str = payments_stripe::DEFAULT_API_BASE;

impl FromEnv for Config {
    fn read(env: &mut Reader<'_>) -> Config {
        Config {
            addr: env.parsed("PAYMENTS_API_ADDR", SocketAddr::from(([0, 0, 0, 0], 50051))),
            admin_addr: env.parsed(
                "PAYMENTS_ADMIN_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 50052)),
            ),
            metrics_addr: env.parsed(
                "PAYMENTS_METRICS_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 9090)),
            ),
            database: DatabaseConfig {
                url: env.secret("DATABASE_URL"),
                max_connections: env.parsed("PAYMENTS_DB_MAX_CONNECTIONS", 10),
                acquire_timeout: Duration::from_secs(5),
                migrate_at_start: env.parsed("PAYMENTS_MIGRATE_AT_START", true),
            },
            stripe: StripeConfig {
                api_base: env.url("STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
                secret_key: StripeMode::read_key(env, "STRIPE_SECRET_KEY"),
                timeout: Duration::from_millis(env.parsed("STRIPE_TIMEOUT_MS", 10_000)),
            },
            jwt: jwt::read(env),
            cors: cors::read(env),
            wallet: WalletConfig {
                currency: read_currency(env, "PAYMENTS_WALLET_CURRENCY", "usd"),
                min_topup: env.positive("PAYMENTS_MIN_TOPUP", 500),
                max_amount: read_max_amount(env, "PAYMENTS_MAX_AMOUNT"),
                validation_amount: env.positive("PAYMENTS_VALIDATION_AMOUNT", 100),
                trial_credit: env.positive("PAYMENTS_TRIAL_CREDIT", 500),
                accept_coupon_ids: env.parsed("PAYMENTS_ACCEPT_COUPON_IDS", false),
            },
            watch: read_watch(env),
            limits: limits::read(env),
            drain_timeout: Duration::from_secs(env.parsed("PAYMENTS_DRAIN_TIMEOUT_SECS", 10)),
        }
    }
}

impl Config {
    /// A configuration for tests: port 0 on loopback, HS256, any CORS origin, usd wallets.
    pub fn for_tests(database_url: &str, stripe_api_base: &str, jwt_secret: &str) -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseConfig {
                url: database_url.into(),
                max_connections: 10,
                acquire_timeout: Duration::from_secs(5),
                migrate_at_start: true,
            },
            stripe: StripeConfig {
                api_base: stripe_api_base.to_owned(),
                secret_key: "sk_test_payments_api".into(),
                timeout: Duration::from_secs(10),
            },
            jwt: JwtConfig::hs256(jwt_secret),
            cors: CorsOrigins::Any,
            wallet: WalletConfig {
                currency: Currency::USD,
                min_topup: 500,
                max_amount: STRIPE_MAX_AMOUNT,
                validation_amount: 100,
                trial_credit: 500,
                accept_coupon_ids: false,
            },
            watch: WatchConfig::default(),
            limits: LimitsConfig::default(),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// Up to a second: every change to a watched transaction may wait that long.
fn read_watch(env: &mut Reader<'_>) -> WatchConfig {
    const NAME: &str = "PAYMENTS_WATCH_COALESCE_MS";
    let default = WatchConfig::default();
    let default_ms = u64::try_from(default.coalesce.as_millis()).unwrap_or(u64::MAX);
    let ms = env.parsed(NAME, default_ms);
    if ms > 1_000 {
        env.problem(format!("{NAME} must be at most 1000 milliseconds"));
    }
    WatchConfig {
        coalesce: Duration::from_millis(ms),
        max_lifetime: env.seconds(
            "PAYMENTS_WATCH_MAX_LIFETIME_SECS",
            default.max_lifetime.as_secs(),
        ),
        ..default
    }
}

/// The largest amount a request may ask for: Stripe's ceiling, or lower.
fn read_max_amount(env: &mut Reader<'_>, name: &str) -> i64 {
    let value = env.positive(name, STRIPE_MAX_AMOUNT);
    if value > STRIPE_MAX_AMOUNT {
        env.problem(format!(
            "{name} must be at most {STRIPE_MAX_AMOUNT} (Stripe's own maximum)"
        ));
    }
    value
}

fn read_currency(env: &mut Reader<'_>, name: &str, default: &str) -> Currency {
    let raw = env.get(name).unwrap_or_else(|| default.to_owned());
    Currency::parse(&raw).unwrap_or_else(|e| {
        env.problem(format!("{name}: {e}"));
        Currency::USD
    })
}

#[cfg(test)]
mod tests;
