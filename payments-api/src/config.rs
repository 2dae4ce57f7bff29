//! The service's configuration: one typed struct, read once from the environment.
//! Every problem is collected and reported together, and a missing secret stops the
//! start-up rather than falling back to a default. Tests build the struct directly.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use http::HeaderValue;
use payments_core::{Currency, STRIPE_MAX_AMOUNT, StripeMode};
use secrecy::{ExposeSecret, SecretString};

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

/// How bearer tokens are verified: a fixed key, an identity provider's JWKS, or both,
/// and what a token must say.
#[derive(Debug)]
pub struct JwtConfig {
    /// `PAYMENTS_JWT_SECRET` or `PAYMENTS_JWT_PUBLIC_KEY_FILE`.
    pub key: Option<JwtKey>,
    /// `PAYMENTS_JWT_JWKS_URL`: RS256 and ES256 keys by `kid`.
    pub jwks: Option<JwksConfig>,
    /// `PAYMENTS_JWT_ISSUER`: the `iss` a token must carry.
    pub issuer: Option<String>,
    /// `PAYMENTS_JWT_AUDIENCE`: a token's `aud` (a string or a list) must name one of these.
    pub audience: Vec<String>,
    /// `PAYMENTS_JWT_LEEWAY_SECS`: clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// `PAYMENTS_JWT_ROLE_CLAIM`: the claim that carries roles: a string (space-separated,
    /// like `scope`) or a list of strings; a dotted path reaches into objects
    /// (`realm_access.roles`).
    pub role_claim: String,
    /// `PAYMENTS_JWT_SERVICE_ROLE`: the role (or scope) that makes a token a service's.
    pub service_role: String,
}

impl JwtConfig {
    /// HS256 with `secret`, no issuer or audience: what tests and development use.
    pub fn hs256(secret: &str) -> JwtConfig {
        JwtConfig {
            key: Some(JwtKey::Hs256(secret.into())),
            jwks: None,
            issuer: None,
            audience: Vec::new(),
            leeway: Duration::from_secs(30),
            role_claim: "role".into(),
            service_role: "service".into(),
        }
    }
}

/// A fixed key that verifies bearer tokens: an HS256 shared secret or an RS256 public key.
#[derive(Debug)]
pub enum JwtKey {
    Hs256(SecretString),
    /// The PEM file's contents (a public key is not secret).
    Rs256Pem(Vec<u8>),
}

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash's size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// An identity provider's key set.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    pub url: String,
    /// `PAYMENTS_JWKS_MIN_REFRESH_SECS`: a token with an unknown `kid` refetches the set
    /// at most this often, so unknown kids cannot hammer the provider.
    pub min_refresh: Duration,
    /// `PAYMENTS_JWKS_MAX_AGE_SECS`: the set is refetched when it is older than this,
    /// so a key the provider withdrew stops verifying.
    pub max_age: Duration,
}

/// The origins allowed by CORS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin (development only; tokens are still required).
    Any,
    /// Exactly these origins; empty means no cross-origin browser calls.
    List(Vec<HeaderValue>),
}

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

/// The caps that keep one caller from starving the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `PAYMENTS_WATCH_MAX_PER_USER`: open WatchTransaction streams per user token.
    pub watches_per_user: usize,
    /// `PAYMENTS_WATCH_MAX_STREAMS`: open WatchTransaction streams on this instance.
    pub watches_per_instance: usize,
    /// `PAYMENTS_RATE_LIMIT_PER_SEC` / `PAYMENTS_RATE_LIMIT_BURST`: mutations per user;
    /// `None` (a rate of 0) turns the limit off.
    pub mutations: Option<RateLimit>,
    /// `PAYMENTS_HTTP2_MAX_CONCURRENT_STREAMS`: concurrent calls per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// `PAYMENTS_HTTP2_KEEPALIVE_SECS`: idle HTTP/2 connections are pinged this often.
    pub keepalive_interval: Duration,
    /// `PAYMENTS_HTTP2_KEEPALIVE_TIMEOUT_SECS`: a ping unanswered this long closes the
    /// connection (and with it the streams of a client that vanished).
    pub keepalive_timeout: Duration,
}

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: std::num::NonZeroU32,
    pub burst: std::num::NonZeroU32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            watches_per_user: 16,
            watches_per_instance: 20_000,
            mutations: Some(RateLimit {
                per_second: std::num::NonZeroU32::MIN.saturating_add(4),
                burst: std::num::NonZeroU32::MIN.saturating_add(19),
            }),
            max_concurrent_streams: 256,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// Every problem found in the environment, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

pub const DEFAULT_ADDR: &str = "0.0.0.0:50051";
pub const DEFAULT_STRIPE_API_BASE: &str = payments_stripe::DEFAULT_API_BASE;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let addr = env.parsed("PAYMENTS_API_ADDR", SocketAddr::from(([0, 0, 0, 0], 50051)));
        let admin_addr = env.parsed(
            "PAYMENTS_ADMIN_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 50052)),
        );
        let metrics_addr = env.parsed(
            "PAYMENTS_METRICS_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 9090)),
        );
        let database = DatabaseConfig {
            url: env.secret("DATABASE_URL"),
            max_connections: env.parsed("PAYMENTS_DB_MAX_CONNECTIONS", 10),
            acquire_timeout: Duration::from_secs(5),
            migrate_at_start: env.parsed("PAYMENTS_MIGRATE_AT_START", true),
        };
        let stripe = StripeConfig {
            api_base: env.url("STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            secret_key: env.stripe_key("STRIPE_SECRET_KEY"),
            timeout: Duration::from_millis(env.parsed("STRIPE_TIMEOUT_MS", 10_000)),
        };
        let jwt = env.jwt();
        let cors = env.cors();
        let wallet = WalletConfig {
            currency: env.currency("PAYMENTS_WALLET_CURRENCY", "usd"),
            min_topup: env.positive("PAYMENTS_MIN_TOPUP", 500),
            max_amount: env.max_amount("PAYMENTS_MAX_AMOUNT"),
            validation_amount: env.positive("PAYMENTS_VALIDATION_AMOUNT", 100),
            trial_credit: env.positive("PAYMENTS_TRIAL_CREDIT", 500),
            accept_coupon_ids: env.parsed("PAYMENTS_ACCEPT_COUPON_IDS", false),
        };
        let watch = env.watch();
        let limits = env.limits();
        let drain_timeout = Duration::from_secs(env.parsed("PAYMENTS_DRAIN_TIMEOUT_SECS", 10));
        if !env.problems.is_empty() {
            return Err(ConfigError {
                problems: env.problems,
            });
        }
        Ok(Config {
            addr,
            admin_addr,
            metrics_addr,
            database,
            stripe,
            jwt,
            cors,
            wallet,
            watch,
            limits,
            drain_timeout,
        })
    }

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

/// Reads variables, recording every problem instead of stopping at the first.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// The variable parsed, or `default` when unset; a value that does not parse is a problem.
    fn parsed<T: std::str::FromStr>(&mut self, name: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        let Some(raw) = self.get(name) else {
            return default;
        };
        match raw.trim().parse() {
            Ok(value) => value,
            Err(e) => {
                self.problems.push(format!("{name}={raw:?}: {e}"));
                default
            }
        }
    }

    fn positive(&mut self, name: &str, default: i64) -> i64 {
        let value = self.parsed(name, default);
        if value <= 0 {
            self.problems
                .push(format!("{name} must be a positive amount in minor units"));
        }
        value
    }

    /// Up to a second: every change to a watched transaction may wait that long.
    fn watch(&mut self) -> WatchConfig {
        const NAME: &str = "PAYMENTS_WATCH_COALESCE_MS";
        let default = WatchConfig::default();
        let default_ms = u64::try_from(default.coalesce.as_millis()).unwrap_or(u64::MAX);
        let ms = self.parsed(NAME, default_ms);
        if ms > 1_000 {
            self.problems
                .push(format!("{NAME} must be at most 1000 milliseconds"));
        }
        let lifetime_secs = self.parsed(
            "PAYMENTS_WATCH_MAX_LIFETIME_SECS",
            default.max_lifetime.as_secs(),
        );
        if lifetime_secs == 0 {
            self.problems
                .push("PAYMENTS_WATCH_MAX_LIFETIME_SECS must be at least 1".into());
        }
        WatchConfig {
            coalesce: Duration::from_millis(ms),
            max_lifetime: Duration::from_secs(lifetime_secs),
            ..default
        }
    }

    fn limits(&mut self) -> LimitsConfig {
        let default = LimitsConfig::default();
        let watches_per_user =
            self.at_least_one("PAYMENTS_WATCH_MAX_PER_USER", default.watches_per_user);
        let watches_per_instance =
            self.at_least_one("PAYMENTS_WATCH_MAX_STREAMS", default.watches_per_instance);
        let rate = default.mutations.map_or(0, |r| r.per_second.get());
        let burst = default.mutations.map_or(1, |r| r.burst.get());
        let per_second = self.parsed("PAYMENTS_RATE_LIMIT_PER_SEC", rate);
        let burst = self.parsed("PAYMENTS_RATE_LIMIT_BURST", burst);
        let mutations = match (
            std::num::NonZeroU32::new(per_second),
            std::num::NonZeroU32::new(burst),
        ) {
            (None, _) => None,
            (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
            (Some(_), None) => {
                self.problems
                    .push("PAYMENTS_RATE_LIMIT_BURST must be at least 1".into());
                None
            }
        };
        let keepalive_interval = self.at_least_one(
            "PAYMENTS_HTTP2_KEEPALIVE_SECS",
            default.keepalive_interval.as_secs(),
        );
        let keepalive_timeout = self.at_least_one(
            "PAYMENTS_HTTP2_KEEPALIVE_TIMEOUT_SECS",
            default.keepalive_timeout.as_secs(),
        );
        LimitsConfig {
            watches_per_user,
            watches_per_instance,
            mutations,
            max_concurrent_streams: self.at_least_one(
                "PAYMENTS_HTTP2_MAX_CONCURRENT_STREAMS",
                default.max_concurrent_streams,
            ),
            keepalive_interval: Duration::from_secs(keepalive_interval),
            keepalive_timeout: Duration::from_secs(keepalive_timeout),
        }
    }

    /// A count or a number of seconds that must not be zero.
    fn at_least_one<T>(&mut self, name: &str, default: T) -> T
    where
        T: std::str::FromStr + PartialOrd + From<u8>,
        T::Err: fmt::Display,
    {
        let value = self.parsed(name, default);
        if value < T::from(1) {
            self.problems.push(format!("{name} must be at least 1"));
        }
        value
    }

    fn secret(&mut self, name: &str) -> SecretString {
        match self.get(name) {
            Some(value) => value.into(),
            None => {
                self.problems
                    .push(format!("{name} is required and has no default"));
                SecretString::from("")
            }
        }
    }

    /// A Stripe secret or restricted key; its prefix says which mode's events apply.
    fn stripe_key(&mut self, name: &str) -> SecretString {
        let key = self.secret(name);
        let given = !key.expose_secret().is_empty();
        if given && StripeMode::of_key(key.expose_secret()).is_none() {
            self.problems.push(format!(
                "{name} must start with sk_test_, sk_live_, rk_test_ or rk_live_ (its mode decides which events are applied)"
            ));
        }
        key
    }

    /// The largest amount a request may ask for: Stripe's ceiling, or lower.
    fn max_amount(&mut self, name: &str) -> i64 {
        let value = self.positive(name, STRIPE_MAX_AMOUNT);
        if value > STRIPE_MAX_AMOUNT {
            self.problems.push(format!(
                "{name} must be at most {STRIPE_MAX_AMOUNT} (Stripe's own maximum)"
            ));
        }
        value
    }

    fn url(&mut self, name: &str, default: &str) -> String {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            self.problems
                .push(format!("{name}={value:?} must be an http(s) URL"));
        }
        value.trim_end_matches('/').to_owned()
    }

    fn currency(&mut self, name: &str, default: &str) -> Currency {
        let raw = self.get(name).unwrap_or_else(|| default.to_owned());
        Currency::parse(&raw).unwrap_or_else(|e| {
            self.problems.push(format!("{name}: {e}"));
            Currency::USD
        })
    }

    fn jwt(&mut self) -> JwtConfig {
        let key = self.jwt_key();
        let jwks = self.get("PAYMENTS_JWT_JWKS_URL").map(|_| JwksConfig {
            url: self.url("PAYMENTS_JWT_JWKS_URL", ""),
            min_refresh: Duration::from_secs(self.parsed("PAYMENTS_JWKS_MIN_REFRESH_SECS", 30)),
            max_age: Duration::from_secs(self.parsed("PAYMENTS_JWKS_MAX_AGE_SECS", 3600)),
        });
        if key.is_none() && jwks.is_none() {
            self.problems.push(
                "one of PAYMENTS_JWT_SECRET (HS256), PAYMENTS_JWT_PUBLIC_KEY_FILE (RS256) \
                 or PAYMENTS_JWT_JWKS_URL is required"
                    .into(),
            );
        }
        let issuer = self.get("PAYMENTS_JWT_ISSUER");
        let audience: Vec<String> = self
            .get("PAYMENTS_JWT_AUDIENCE")
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        // A provider's keys sign tokens for every application it serves: only its
        // issuer and our audience make one ours.
        if jwks.is_some() && (issuer.is_none() || audience.is_empty()) {
            self.problems.push(
                "PAYMENTS_JWT_JWKS_URL needs PAYMENTS_JWT_ISSUER and PAYMENTS_JWT_AUDIENCE".into(),
            );
        }
        let defaults = JwtConfig::hs256("");
        JwtConfig {
            key,
            jwks,
            issuer,
            audience,
            leeway: Duration::from_secs(
                self.parsed("PAYMENTS_JWT_LEEWAY_SECS", defaults.leeway.as_secs()),
            ),
            role_claim: self
                .get("PAYMENTS_JWT_ROLE_CLAIM")
                .unwrap_or(defaults.role_claim),
            service_role: self
                .get("PAYMENTS_JWT_SERVICE_ROLE")
                .unwrap_or(defaults.service_role),
        }
    }

    fn jwt_key(&mut self) -> Option<JwtKey> {
        let secret = self.get("PAYMENTS_JWT_SECRET");
        let key_file = self.get("PAYMENTS_JWT_PUBLIC_KEY_FILE");
        match (secret, key_file) {
            (Some(_), Some(_)) => {
                self.problems.push(
                    "set only one of PAYMENTS_JWT_SECRET (HS256) and PAYMENTS_JWT_PUBLIC_KEY_FILE (RS256)"
                        .into(),
                );
                None
            }
            (Some(secret), None) if secret.len() < MIN_HS256_SECRET_BYTES => {
                self.problems.push(format!(
                    "PAYMENTS_JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes \
                     (e.g. `openssl rand -base64 48`)"
                ));
                None
            }
            (Some(secret), None) => Some(JwtKey::Hs256(secret.into())),
            (None, Some(path)) => match std::fs::read(PathBuf::from(&path)) {
                Ok(pem) if jsonwebtoken::DecodingKey::from_rsa_pem(&pem).is_ok() => {
                    Some(JwtKey::Rs256Pem(pem))
                }
                Ok(_) => {
                    self.problems.push(format!(
                        "PAYMENTS_JWT_PUBLIC_KEY_FILE={path:?} is not an RSA public key in PEM"
                    ));
                    None
                }
                Err(e) => {
                    self.problems.push(format!(
                        "PAYMENTS_JWT_PUBLIC_KEY_FILE={path:?} cannot be read: {e}"
                    ));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn cors(&mut self) -> CorsOrigins {
        let Some(raw) = self.get("PAYMENTS_CORS_ORIGINS") else {
            return CorsOrigins::List(Vec::new());
        };
        if raw.trim() == "*" {
            return CorsOrigins::Any;
        }
        let mut origins = Vec::new();
        for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let origin = origin.trim_end_matches('/');
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let looks_like_origin =
                host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#']));
            match HeaderValue::from_str(origin) {
                Ok(value) if looks_like_origin => origins.push(value),
                _ => self.problems.push(format!(
                    "PAYMENTS_CORS_ORIGINS: {origin:?} is not an origin like https://app.example.com"
                )),
            }
        }
        CorsOrigins::List(origins)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
