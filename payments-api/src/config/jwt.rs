//! How bearer tokens are verified (`PAYMENTS_JWT_*`, `PAYMENTS_JWKS_*`): a fixed key,
//! an identity provider's key set, or both, and what a token must say.

use std::{path::PathBuf, time::Duration};

use payments_service_kit::Reader;
use secrecy::SecretString;

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

pub(super) fn read(env: &mut Reader<'_>) -> JwtConfig {
    let key = read_key(env);
    let jwks = env.get("PAYMENTS_JWT_JWKS_URL").map(|_| JwksConfig {
        url: env.url("PAYMENTS_JWT_JWKS_URL", ""),
        min_refresh: Duration::from_secs(env.parsed("PAYMENTS_JWKS_MIN_REFRESH_SECS", 30)),
        max_age: Duration::from_secs(env.parsed("PAYMENTS_JWKS_MAX_AGE_SECS", 3600)),
    });
    if key.is_none() && jwks.is_none() {
        env.problem(
            "one of PAYMENTS_JWT_SECRET (HS256), PAYMENTS_JWT_PUBLIC_KEY_FILE (RS256) \
             or PAYMENTS_JWT_JWKS_URL is required",
        );
    }
    let issuer = env.get("PAYMENTS_JWT_ISSUER");
    let audience = env.list("PAYMENTS_JWT_AUDIENCE");
    // A provider's keys sign tokens for every application it serves: only its
    // issuer and our audience make one ours.
    if jwks.is_some() && (issuer.is_none() || audience.is_empty()) {
        env.problem("PAYMENTS_JWT_JWKS_URL needs PAYMENTS_JWT_ISSUER and PAYMENTS_JWT_AUDIENCE");
    }
    let defaults = JwtConfig::hs256("");
    JwtConfig {
        key,
        jwks,
        issuer,
        audience,
        leeway: Duration::from_secs(
            env.parsed("PAYMENTS_JWT_LEEWAY_SECS", defaults.leeway.as_secs()),
        ),
        role_claim: env
            .get("PAYMENTS_JWT_ROLE_CLAIM")
            .unwrap_or(defaults.role_claim),
        service_role: env
            .get("PAYMENTS_JWT_SERVICE_ROLE")
            .unwrap_or(defaults.service_role),
    }
}

fn read_key(env: &mut Reader<'_>) -> Option<JwtKey> {
    let secret = env.get("PAYMENTS_JWT_SECRET");
    let key_file = env.get("PAYMENTS_JWT_PUBLIC_KEY_FILE");
    match (secret, key_file) {
        (Some(_), Some(_)) => {
            env.problem(
                "set only one of PAYMENTS_JWT_SECRET (HS256) and PAYMENTS_JWT_PUBLIC_KEY_FILE (RS256)",
            );
            None
        }
        (Some(secret), None) if secret.len() < MIN_HS256_SECRET_BYTES => {
            env.problem(format!(
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
                env.problem(format!(
                    "PAYMENTS_JWT_PUBLIC_KEY_FILE={path:?} is not an RSA public key in PEM"
                ));
                None
            }
            Err(e) => {
                env.problem(format!(
                    "PAYMENTS_JWT_PUBLIC_KEY_FILE={path:?} cannot be read: {e}"
                ));
                None
            }
        },
        (None, None) => None,
    }
}
