//! Bearer tokens for payments-api, signed with the benchmark's HS256 secret.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::services::JWT_SECRET;

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
}

/// A token for `user` valid for a day; a service token acts for anyone.
pub fn mint(user: &str, service: bool) -> anyhow::Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 86_400;
    let claims = Claims {
        sub: user,
        exp,
        role: service.then_some("service"),
    };
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}
