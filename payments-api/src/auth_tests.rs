use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use tonic::Code;

use super::*;
use crate::error::{Reason, code};

const SECRET: &str = "test-secret";

fn authenticator() -> Authenticator {
    Authenticator::new(&JwtKey::Hs256(SECRET.into())).expect("hs256 key")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn token(claims: serde_json::Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    encode(&Header::default(), &claims, &key).expect("encode")
}

fn bearer(claims: serde_json::Value) -> String {
    format!("Bearer {}", token(claims, SECRET))
}

#[test]
fn a_user_token_names_its_subject() {
    let header = bearer(json!({"sub": "alice", "exp": now() + 60}));
    let caller = authenticator().verify(Some(&header)).expect("valid");
    assert_eq!(caller, Caller::User(UserId::parse("alice").expect("id")));
}

#[test]
fn a_service_role_acts_for_anyone() {
    let header = bearer(json!({"sub": "billing", "exp": now() + 60, "role": "service"}));
    let caller = authenticator().verify(Some(&header)).expect("valid");
    let bob = authorize_user(&caller, "bob").expect("service may act for bob");
    assert_eq!(bob.as_str(), "bob");
    assert!(matches!(
        authorize_user(&caller, ""),
        Err(ApiError::Refused(refusal)) if refusal.field == Some("user_id")
    ));
}

#[test]
fn missing_malformed_expired_and_forged_tokens_are_refused() {
    let auth = authenticator();
    let expired = bearer(json!({"sub": "alice", "exp": now() - 3600}));
    let forged = format!(
        "Bearer {}",
        token(json!({"sub": "alice", "exp": now() + 60}), "other")
    );
    let no_exp = bearer(json!({"sub": "alice"}));
    let no_sub = bearer(json!({"exp": now() + 60}));
    for header in [
        None,
        Some("Basic abc"),
        Some("Bearer "),
        Some("Bearer not.a.jwt"),
        Some(expired.as_str()),
        Some(forged.as_str()),
        Some(no_exp.as_str()),
        Some(no_sub.as_str()),
    ] {
        let refused = auth.verify(header).expect_err("accepted");
        assert_eq!(code(refused.reason()), Code::Unauthenticated, "{header:?}");
    }
}

#[test]
fn a_token_signed_with_another_algorithm_is_refused() {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let claims = json!({"sub": "alice", "exp": now() + 60});
    let hs512 = encode(&Header::new(Algorithm::HS512), &claims, &key).expect("encode");
    let header = format!("Bearer {hs512}");
    let refused = authenticator().verify(Some(&header)).expect_err("accepted");
    assert_eq!(refused.reason(), Reason::TokenInvalid);
}

#[test]
fn a_user_acts_only_for_itself() {
    let alice = Caller::User(UserId::parse("alice").expect("id"));
    assert_eq!(
        authorize_user(&alice, "").expect("own").as_str(),
        "alice",
        "empty means the caller"
    );
    assert!(authorize_user(&alice, "alice").is_ok());
    let other = authorize_user(&alice, "bob").expect_err("another user");
    assert_eq!(other.reason(), Reason::UserIdMismatch);
    let admin = require_service(&alice).expect_err("a user on an operator RPC");
    assert_eq!(admin.reason(), Reason::ServiceTokenRequired);
}
