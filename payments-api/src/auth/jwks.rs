//! An identity provider's signing keys (JWKS), fetched over HTTP and cached by `kid`.
//!
//! A token with a `kid` the cache does not know makes the set be fetched again, so keys
//! rotate without a restart; fetches happen at most once per `min_refresh` whatever the
//! number of unknown kids (one fetch at a time, the others wait for it and look again),
//! so forged kids cannot hammer the provider. A set older than `max_age` is fetched
//! again too, so a withdrawn key stops verifying. A failed fetch keeps the keys known.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use tokio::time::Instant;

use crate::config::JwksConfig;

/// A verification key and the one algorithm it verifies.
#[derive(Clone)]
pub struct SigningKey {
    pub algorithm: Algorithm,
    pub key: Arc<DecodingKey>,
}

pub struct Jwks {
    config: JwksConfig,
    http: reqwest::Client,
    keys: RwLock<Known>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Known {
    by_kid: HashMap<String, SigningKey>,
    fetched_at: Option<Instant>,
}

impl Jwks {
    pub fn new(config: JwksConfig) -> Result<Jwks, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Jwks {
            config,
            http,
            keys: RwLock::new(Known::default()),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// The key with this `kid`, fetching the set again if it is unknown or stale (at
    /// most once per `min_refresh`).
    pub async fn key(&self, kid: &str) -> Option<SigningKey> {
        let (found, stale) = self.lookup(kid);
        if found.is_some() && !stale {
            return found;
        }
        self.refresh().await;
        self.lookup(kid).0
    }

    /// Fetches the set now unless a fetch started less than `min_refresh` ago.
    pub async fn refresh(&self) {
        let mut last_attempt = self.fetching.lock().await;
        if last_attempt.is_some_and(|at| at.elapsed() < self.config.min_refresh) {
            return;
        }
        *last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(by_kid) => {
                tracing::info!(url = %self.config.url, keys = by_kid.len(), "fetched the JWKS");
                let mut known = self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *known = Known {
                    by_kid,
                    fetched_at: Some(Instant::now()),
                };
            }
            Err(e) => {
                tracing::warn!(url = %self.config.url, error = %e, "cannot fetch the JWKS; keeping the keys known");
            }
        }
    }

    fn lookup(&self, kid: &str) -> (Option<SigningKey>, bool) {
        let known = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = known
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.config.max_age);
        (known.by_kid.get(kid).cloned(), stale)
    }

    async fn fetch(&self) -> Result<HashMap<String, SigningKey>, String> {
        let response = self
            .http
            .get(&self.config.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        let set: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        let keys = set
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("the document has no \"keys\" list")?;
        // One key we cannot use (another algorithm, encryption) does not spoil the rest.
        Ok(keys
            .iter()
            .filter_map(|raw| serde_json::from_value::<Jwk>(raw.clone()).ok())
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, signing_key(&jwk)?)))
            .collect())
    }
}

/// RS256 for an RSA key, ES256 for a P-256 key; a key meant for encryption, or with
/// another algorithm, is not used.
fn signing_key(jwk: &Jwk) -> Option<SigningKey> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(SigningKey {
        algorithm,
        key: Arc::new(key),
    })
}
