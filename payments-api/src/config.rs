//! The service's configuration: one typed struct, read once from the environment.
//! Every problem is collected and reported together, and a missing secret stops the
//! start-up rather than falling back to a default. Tests build the struct directly.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use http::HeaderValue;
use payments_core::Currency;
use secrecy::SecretString;

use crate::watch::WatchConfig;

/// Everything the service needs to start.
#[derive(Debug)]
pub struct Config {
    /// Where gRPC and grpc-web are served (`PAYMENTS_API_ADDR`).
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served (Prometheus text format).
    pub metrics_addr: SocketAddr,
    pub database: DatabaseConfig,
    pub stripe: StripeConfig,
    /// How bearer tokens are verified.
    pub jwt: JwtKey,
    /// Browser origins allowed to call grpc-web (`PAYMENTS_CORS_ORIGINS`).
    pub cors: CorsOrigins,
    pub wallet: WalletConfig,
    /// WatchTransaction's hub; `PAYMENTS_WATCH_COALESCE_MS` sets how long doorbells
    /// gather into one re-read.
    pub watch: WatchConfig,
    /// How long in-flight calls may take to finish once shutdown starts.
    pub drain_timeout: Duration,
}

#[derive(Debug)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`; secret because it usually carries a password.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// `STRIPE_API_BASE`, `STRIPE_SECRET_KEY`, `STRIPE_TIMEOUT_MS`: the client both services share.
pub use payments_stripe::StripeConfig;

/// The key that verifies bearer tokens: an HS256 shared secret or an RS256 public key.
#[derive(Debug)]
pub enum JwtKey {
    Hs256(SecretString),
    /// The PEM file's contents (a public key is not secret).
    Rs256Pem(Vec<u8>),
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
    /// `PAYMENTS_VALIDATION_AMOUNT`: the authorization hold that proves a card.
    pub validation_amount: i64,
    /// `PAYMENTS_TRIAL_CREDIT`: what a successful StartTrial grants.
    pub trial_credit: i64,
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
        let metrics_addr = env.parsed(
            "PAYMENTS_METRICS_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 9090)),
        );
        let database = DatabaseConfig {
            url: env.secret("DATABASE_URL"),
            max_connections: env.parsed("PAYMENTS_DB_MAX_CONNECTIONS", 10),
            acquire_timeout: Duration::from_secs(5),
        };
        let stripe = StripeConfig {
            api_base: env.url("STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            secret_key: env.secret("STRIPE_SECRET_KEY"),
            timeout: Duration::from_millis(env.parsed("STRIPE_TIMEOUT_MS", 10_000)),
        };
        let jwt = env.jwt_key();
        let cors = env.cors();
        let wallet = WalletConfig {
            currency: env.currency("PAYMENTS_WALLET_CURRENCY", "usd"),
            min_topup: env.positive("PAYMENTS_MIN_TOPUP", 500),
            validation_amount: env.positive("PAYMENTS_VALIDATION_AMOUNT", 100),
            trial_credit: env.positive("PAYMENTS_TRIAL_CREDIT", 500),
        };
        let watch = env.watch();
        let drain_timeout = Duration::from_secs(env.parsed("PAYMENTS_DRAIN_TIMEOUT_SECS", 10));
        if !env.problems.is_empty() {
            return Err(ConfigError {
                problems: env.problems,
            });
        }
        Ok(Config {
            addr,
            metrics_addr,
            database,
            stripe,
            jwt,
            cors,
            wallet,
            watch,
            drain_timeout,
        })
    }

    /// A configuration for tests: port 0 on loopback, HS256, any CORS origin, usd wallets.
    pub fn for_tests(database_url: &str, stripe_api_base: &str, jwt_secret: &str) -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseConfig {
                url: database_url.into(),
                max_connections: 10,
                acquire_timeout: Duration::from_secs(5),
            },
            stripe: StripeConfig {
                api_base: stripe_api_base.to_owned(),
                secret_key: "sk_test_payments_api".into(),
                timeout: Duration::from_secs(10),
            },
            jwt: JwtKey::Hs256(jwt_secret.into()),
            cors: CorsOrigins::Any,
            wallet: WalletConfig {
                currency: Currency::USD,
                min_topup: 500,
                validation_amount: 100,
                trial_credit: 500,
            },
            watch: WatchConfig::default(),
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
        WatchConfig {
            coalesce: Duration::from_millis(ms),
            ..default
        }
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

    fn jwt_key(&mut self) -> JwtKey {
        let secret = self.get("PAYMENTS_JWT_SECRET");
        let key_file = self.get("PAYMENTS_JWT_PUBLIC_KEY_FILE");
        match (secret, key_file) {
            (Some(secret), None) => JwtKey::Hs256(secret.into()),
            (None, Some(path)) => match std::fs::read(PathBuf::from(&path)) {
                Ok(pem) if jsonwebtoken::DecodingKey::from_rsa_pem(&pem).is_ok() => {
                    JwtKey::Rs256Pem(pem)
                }
                Ok(_) => {
                    self.problems.push(format!(
                        "PAYMENTS_JWT_PUBLIC_KEY_FILE={path:?} is not an RSA public key in PEM"
                    ));
                    JwtKey::Rs256Pem(Vec::new())
                }
                Err(e) => {
                    self.problems.push(format!(
                        "PAYMENTS_JWT_PUBLIC_KEY_FILE={path:?} cannot be read: {e}"
                    ));
                    JwtKey::Rs256Pem(Vec::new())
                }
            },
            (Some(_), Some(_)) => {
                self.problems.push(
                    "set only one of PAYMENTS_JWT_SECRET (HS256) and PAYMENTS_JWT_PUBLIC_KEY_FILE (RS256)"
                        .into(),
                );
                JwtKey::Rs256Pem(Vec::new())
            }
            (None, None) => {
                self.problems.push(
                    "PAYMENTS_JWT_SECRET (HS256) or PAYMENTS_JWT_PUBLIC_KEY_FILE (RS256) is required"
                        .into(),
                );
                JwtKey::Rs256Pem(Vec::new())
            }
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
