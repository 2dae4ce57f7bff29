//! Verifying a bearer token: pick the key by the token's algorithm and `kid`, check the
//! signature and the registered claims (`exp`, `nbf`, `iss`, `aud`, with the leeway),
//! then read who the caller is. Fail closed: an algorithm without a configured key,
//! or a key of another family than the algorithm, is refused.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation, errors::ErrorKind};
use payments_core::UserId;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{
    Caller,
    jwks::{Jwks, SigningKey},
};
use crate::{
    config::{JwtConfig, JwtKey, MIN_HS256_SECRET_BYTES},
    error::{ApiError, Reason},
};

/// Verifies bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    fixed: Option<SigningKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
    role_claim: Vec<String>,
    service_role: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("the RS256 public key is not a PEM RSA key: {0}")]
    BadPem(jsonwebtoken::errors::Error),
    #[error("the JWKS client cannot be built: {0}")]
    Http(reqwest::Error),
}

impl Authenticator {
    pub fn new(config: &JwtConfig) -> Result<Self, KeyError> {
        let fixed = match &config.key {
            None => None,
            Some(JwtKey::Hs256(secret)) => {
                let secret = secret.expose_secret().as_bytes();
                if secret.len() < MIN_HS256_SECRET_BYTES {
                    return Err(KeyError::ShortSecret);
                }
                Some(SigningKey {
                    algorithm: Algorithm::HS256,
                    key: Arc::new(DecodingKey::from_secret(secret)),
                })
            }
            Some(JwtKey::Rs256Pem(pem)) => Some(SigningKey {
                algorithm: Algorithm::RS256,
                key: Arc::new(DecodingKey::from_rsa_pem(pem).map_err(KeyError::BadPem)?),
            }),
        };
        let jwks = config
            .jwks
            .clone()
            .map(Jwks::new)
            .transpose()
            .map_err(KeyError::Http)?;
        Ok(Authenticator {
            inner: Arc::new(Inner {
                fixed,
                jwks,
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                leeway: config.leeway.as_secs(),
                role_claim: config.role_claim.split('.').map(str::to_owned).collect(),
                service_role: config.service_role.clone(),
            }),
        })
    }

    /// Fetches the identity provider's keys, if there is one, so the first token does
    /// not wait for them. A failure is logged; the fetch is tried again on use.
    pub async fn warm_up(&self) {
        if let Some(jwks) = &self.inner.jwks {
            jwks.refresh().await;
        }
    }

    /// Verifies the `authorization` header's value.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let header = authorization.ok_or_else(|| {
            ApiError::refused(
                Reason::TokenMissing,
                "missing authorization: Bearer <token>",
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::refused(
                    Reason::TokenMissing,
                    "authorization must be \"Bearer <token>\"",
                )
            })?;
        let head = jsonwebtoken::decode_header(token).map_err(|e| rejection(e.kind()))?;
        let key = self.key_for(&head).await?;
        let claims =
            jsonwebtoken::decode::<Value>(token, &key.key, &self.validation(key.algorithm))
                .map_err(|e| rejection(e.kind()))?
                .claims;
        self.caller(&claims)
    }

    /// The key for the token's algorithm: a `kid` goes to the provider's set (when one
    /// is configured), otherwise the fixed key, which must be of the same algorithm.
    async fn key_for(&self, head: &Header) -> Result<SigningKey, ApiError> {
        let inner = &self.inner;
        let key = match (&head.kid, &inner.jwks) {
            (Some(kid), Some(jwks)) if head.alg != Algorithm::HS256 => {
                jwks.key(kid).await.ok_or_else(|| {
                    invalid("the token is signed with a key the identity provider does not list")
                })?
            }
            _ => inner.fixed.clone().ok_or_else(|| {
                invalid("the token is signed with an algorithm not accepted here")
            })?,
        };
        if key.algorithm != head.alg {
            return Err(invalid(
                "the token is signed with an algorithm not accepted here",
            ));
        }
        Ok(key)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let inner = &self.inner;
        let mut validation = Validation::new(algorithm);
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &inner.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if inner.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&inner.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        validation.leeway = inner.leeway;
        validation
    }

    /// A token whose role claim holds the service role acts for any user; any other
    /// acts for its `sub`.
    fn caller(&self, claims: &Value) -> Result<Caller, ApiError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the token's sub is not a string"))?;
        if self.has_service_role(claims) {
            return Ok(Caller::Service {
                subject: subject.to_owned(),
            });
        }
        UserId::parse(subject)
            .map(Caller::User)
            .map_err(|_| invalid("the token's sub is not a valid user id"))
    }

    fn has_service_role(&self, claims: &Value) -> bool {
        let inner = &self.inner;
        let claim = inner
            .role_claim
            .iter()
            .try_fold(claims, |value, name| value.get(name));
        let wanted = inner.service_role.as_str();
        match claim {
            Some(Value::String(roles)) => roles.split_whitespace().any(|r| r == wanted),
            Some(Value::Array(roles)) => roles.iter().any(|r| r.as_str() == Some(wanted)),
            _ => false,
        }
    }
}

fn invalid(why: &'static str) -> ApiError {
    ApiError::refused(Reason::TokenInvalid, why)
}

fn rejection(kind: &ErrorKind) -> ApiError {
    let why = match kind {
        ErrorKind::ExpiredSignature => {
            return ApiError::refused(Reason::TokenExpired, "the token has expired");
        }
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::InvalidAlgorithm => "the token is signed with an algorithm not accepted here",
        ErrorKind::MissingRequiredClaim(_) => {
            "the token lacks a required claim (exp, sub, and iss and aud where configured)"
        }
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted here",
        ErrorKind::InvalidAudience => "the token is meant for another audience",
        _ => "the token is not a valid JWT",
    };
    invalid(why)
}
