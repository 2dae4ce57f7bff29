//! Bearer tokens: the [`TokenProvider`] a connection asks before every call, a
//! [`StaticToken`] handed over by an identity provider, and [`SigningKey`], which mints
//! HS256 or RS256 tokens for services and tests (one identity per provider).

use std::{
    fmt,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the signing key {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the signing key is not a usable {algorithm:?} key")]
    Key {
        algorithm: Algorithm,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error("signing the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("the system clock is before 1970")]
    Clock,
    /// A provider of another kind (an identity provider's client) failed.
    #[error("{0}")]
    Provider(String),
}

/// Where a connection gets the bearer token it sends with each call. Implementations
/// cache what they can: this is asked before every call and every retry.
pub trait TokenProvider: Send + Sync + fmt::Debug {
    fn token(&self) -> BoxFuture<'_, Result<String, TokenError>>;
}

impl<T: TokenProvider + ?Sized> TokenProvider for Box<T> {
    fn token(&self) -> BoxFuture<'_, Result<String, TokenError>> {
        (**self).token()
    }
}

impl<T: TokenProvider + ?Sized> TokenProvider for Arc<T> {
    fn token(&self) -> BoxFuture<'_, Result<String, TokenError>> {
        (**self).token()
    }
}

/// A token obtained elsewhere (an identity provider, `PAYMENTS_TOKEN`), sent as is.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    pub fn new(token: impl Into<String>) -> StaticToken {
        StaticToken(token.into())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(…)")
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<String, TokenError>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// A key that signs tokens payments-api accepts: the HS256 secret it is configured
/// with (`PAYMENTS_JWT_SECRET`), or the RSA private key whose public half it holds
/// (`PAYMENTS_JWT_PUBLIC_KEY_FILE`).
#[derive(Clone)]
pub struct SigningKey {
    key: Arc<EncodingKey>,
    algorithm: Algorithm,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?}, …)", self.algorithm)
    }
}

impl SigningKey {
    pub fn hs256(secret: impl AsRef<[u8]>) -> SigningKey {
        SigningKey {
            key: Arc::new(EncodingKey::from_secret(secret.as_ref())),
            algorithm: Algorithm::HS256,
        }
    }

    /// An RSA private key in PEM (PKCS#1 or PKCS#8).
    pub fn rs256_pem(pem: &[u8]) -> Result<SigningKey, TokenError> {
        let key = EncodingKey::from_rsa_pem(pem).map_err(|source| TokenError::Key {
            algorithm: Algorithm::RS256,
            source,
        })?;
        Ok(SigningKey {
            key: Arc::new(key),
            algorithm: Algorithm::RS256,
        })
    }

    pub fn rs256_pem_file(path: impl AsRef<Path>) -> Result<SigningKey, TokenError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|source| TokenError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::rs256_pem(&pem)
    }

    /// Tokens of an end user: they act only for `user`.
    pub fn user(&self, user: impl Into<String>) -> MintedToken {
        MintedToken::new(self.clone(), user.into(), None)
    }

    /// Tokens of a service (`"role": "service"`): they act for any user and may call
    /// PaymentsAdmin. `subject` names the service in payments-api's logs.
    pub fn service(&self, subject: impl Into<String>) -> MintedToken {
        MintedToken::new(self.clone(), subject.into(), Some("service"))
    }
}

/// The claims payments-api reads (`sub`, `exp`, `role`), and the registered ones an
/// identity provider would add.
#[derive(Debug, serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Mints tokens for one identity, and reuses each until it is close to expiring.
pub struct MintedToken {
    key: SigningKey,
    subject: String,
    role: Option<&'static str>,
    lifetime: Duration,
    issuer: Option<String>,
    audience: Option<String>,
    cached: Mutex<Option<(String, u64)>>,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("subject", &self.subject)
            .field("role", &self.role)
            .field("algorithm", &self.key.algorithm)
            .finish_non_exhaustive()
    }
}

impl MintedToken {
    fn new(key: SigningKey, subject: String, role: Option<&'static str>) -> MintedToken {
        MintedToken {
            key,
            subject,
            role,
            lifetime: Duration::from_secs(3_600),
            issuer: None,
            audience: None,
            cached: Mutex::new(None),
        }
    }

    /// How long each token is valid (an hour unless set).
    pub fn lifetime(mut self, lifetime: Duration) -> MintedToken {
        self.lifetime = lifetime;
        self
    }

    /// The `iss` claim, for a payments-api that checks it.
    pub fn issuer(mut self, issuer: impl Into<String>) -> MintedToken {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` claim, for a payments-api that checks it.
    pub fn audience(mut self, audience: impl Into<String>) -> MintedToken {
        self.audience = Some(audience.into());
        self
    }

    /// A new token, valid from now for the lifetime.
    pub fn mint(&self) -> Result<String, TokenError> {
        Ok(self.mint_at(unix_now()?)?.0)
    }

    /// The token and its expiry (Unix seconds).
    fn mint_at(&self, now: u64) -> Result<(String, u64), TokenError> {
        let exp = now + self.lifetime.as_secs().max(1);
        let claims = Claims {
            sub: &self.subject,
            iat: now,
            exp,
            role: self.role,
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        let token = jsonwebtoken::encode(&Header::new(self.key.algorithm), &claims, &self.key.key)
            .map_err(TokenError::Sign)?;
        Ok((token, exp))
    }

    /// The cached token while more than a quarter of its lifetime (at most a minute)
    /// is left, else a new one.
    fn current(&self) -> Result<String, TokenError> {
        let now = unix_now()?;
        let margin = (self.lifetime.as_secs() / 4).min(60);
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((token, exp)) if now + margin < *exp => Ok(token.clone()),
            _ => {
                let (token, exp) = self.mint_at(now)?;
                *cached = Some((token.clone(), exp));
                Ok(token)
            }
        }
    }
}

impl TokenProvider for MintedToken {
    fn token(&self) -> BoxFuture<'_, Result<String, TokenError>> {
        Box::pin(std::future::ready(self.current()))
    }
}

fn unix_now() -> Result<u64, TokenError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| TokenError::Clock)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Read {
        sub: String,
        exp: u64,
        iat: u64,
        role: Option<String>,
    }

    fn read(token: &str, secret: &str) -> Read {
        let validation = Validation::new(Algorithm::HS256);
        jsonwebtoken::decode::<Read>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .expect("the token verifies")
        .claims
    }

    #[test]
    fn a_user_token_names_the_user_and_no_role() {
        let token = SigningKey::hs256("s3cret")
            .user("alice")
            .mint()
            .expect("mint");
        let claims = read(&token, "s3cret");
        assert_eq!((claims.sub.as_str(), claims.role), ("alice", None));
        assert_eq!(claims.exp - claims.iat, 3_600);
    }

    #[test]
    fn a_service_token_carries_the_service_role() {
        let token = SigningKey::hs256("s3cret")
            .service("checkout")
            .lifetime(Duration::from_secs(60))
            .mint()
            .expect("mint");
        let claims = read(&token, "s3cret");
        assert_eq!(claims.role.as_deref(), Some("service"));
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn a_token_is_reused_until_close_to_its_expiry() {
        let provider = SigningKey::hs256("s3cret").user("alice");
        let first = provider.current().expect("mint");
        assert_eq!(provider.current().expect("cached"), first);
        // One that expires within the margin is replaced.
        *provider.cached.lock().expect("lock") = Some(("old".into(), unix_now().expect("now") + 5));
        assert_ne!(provider.current().expect("fresh"), "old");
    }

    #[test]
    fn an_rs256_key_must_be_an_rsa_private_key() {
        assert!(SigningKey::rs256_pem(b"not a key").is_err());
        let pem = include_bytes!("../../testdata/jwt/rs256-private.pem");
        let token = SigningKey::rs256_pem(pem)
            .expect("an RSA key")
            .user("alice")
            .mint()
            .expect("mint");
        let public = include_bytes!("../../testdata/jwt/rs256-public.pem");
        let key = DecodingKey::from_rsa_pem(public).expect("public key");
        jsonwebtoken::decode::<Read>(&token, &key, &Validation::new(Algorithm::RS256))
            .expect("verifies with the public key");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let text = format!(
            "{:?} {:?}",
            StaticToken::new("eyJhbGciOi.secret"),
            SigningKey::hs256("s3cret").user("alice")
        );
        assert!(
            !text.contains("secret.") && !text.contains("s3cret"),
            "{text}"
        );
    }
}
