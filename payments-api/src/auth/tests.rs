use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use tonic::Code;

use super::*;
use crate::{
    config::JwtConfig,
    error::{Reason, code},
};

const SECRET: &str = "test-secret-of-at-least-thirty-two-bytes";

fn authenticator() -> Authenticator {
    Authenticator::new(&JwtConfig::hs256(SECRET)).expect("hs256 key")
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

#[tokio::test]
async fn a_user_token_names_its_subject() {
    let header = bearer(json!({"sub": "alice", "exp": now() + 60}));
    let caller = authenticator().verify(Some(&header)).await.expect("valid");
    assert_eq!(caller, Caller::User(UserId::parse("alice").expect("id")));
}

#[tokio::test]
async fn a_service_role_acts_for_anyone() {
    let header = bearer(json!({"sub": "billing", "exp": now() + 60, "role": "service"}));
    let caller = authenticator().verify(Some(&header)).await.expect("valid");
    let bob = authorize_user(&caller, "bob").expect("service may act for bob");
    assert_eq!(bob.as_str(), "bob");
    assert!(matches!(
        authorize_user(&caller, ""),
        Err(ApiError::Refused(refusal)) if refusal.field == Some("user_id")
    ));
}

#[tokio::test]
async fn missing_malformed_expired_and_forged_tokens_are_refused() {
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
        let refused = auth.verify(header).await.expect_err("accepted");
        assert_eq!(code(refused.reason()), Code::Unauthenticated, "{header:?}");
    }
}

#[tokio::test]
async fn a_token_signed_with_another_algorithm_is_refused() {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let claims = json!({"sub": "alice", "exp": now() + 60});
    let hs512 = encode(&Header::new(Algorithm::HS512), &claims, &key).expect("encode");
    let header = format!("Bearer {hs512}");
    let refused = authenticator()
        .verify(Some(&header))
        .await
        .expect_err("accepted");
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

fn configured(change: impl FnOnce(&mut JwtConfig)) -> Authenticator {
    let mut config = JwtConfig::hs256(SECRET);
    change(&mut config);
    Authenticator::new(&config).expect("valid")
}

#[test]
fn an_hs256_secret_shorter_than_32_bytes_is_refused_at_start_up() {
    let short = Authenticator::new(&JwtConfig::hs256("short-secret"));
    assert!(matches!(short, Err(KeyError::ShortSecret)));
}

#[tokio::test]
async fn issuer_audience_and_not_before_are_checked_with_the_leeway() {
    let auth = configured(|c| {
        c.issuer = Some("https://idp.example".into());
        c.audience = vec!["payments".into()];
        c.leeway = std::time::Duration::from_secs(5);
    });
    let ok = |extra: serde_json::Value| {
        let mut claims = json!({"sub": "alice", "exp": now() + 60, "iss": "https://idp.example"});
        claims
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        bearer(claims)
    };
    for accepted in [
        ok(json!({"aud": "payments"})),
        ok(json!({"aud": ["other", "payments"]})),
        ok(json!({"aud": "payments", "nbf": now() + 3})),
    ] {
        auth.verify(Some(&accepted)).await.expect("accepted");
    }
    for (refused, why) in [
        (ok(json!({"aud": "other"})), "audience"),
        (ok(json!({})), "no aud"),
        (
            ok(json!({"aud": "payments", "iss": "https://evil.example"})),
            "issuer",
        ),
        (
            ok(json!({"aud": "payments", "nbf": now() + 60})),
            "not yet valid",
        ),
        (ok(json!({"aud": "payments", "exp": now() - 10})), "expired"),
    ] {
        let error = auth.verify(Some(&refused)).await.expect_err(why);
        assert_eq!(code(error.reason()), Code::Unauthenticated, "{why}");
    }
}

#[tokio::test]
async fn the_role_claim_is_configurable_as_a_list_a_scope_string_or_a_nested_list() {
    let service = |caller: Caller| matches!(caller, Caller::Service { .. });
    let roles = configured(|c| c.role_claim = "roles".into());
    let token = bearer(json!({"sub": "m2m", "exp": now() + 60, "roles": ["reader", "service"]}));
    assert!(service(roles.verify(Some(&token)).await.expect("valid")));
    let old_style = bearer(json!({"sub": "alice", "exp": now() + 60, "role": "service"}));
    assert!(!service(
        roles.verify(Some(&old_style)).await.expect("valid")
    ));

    let scope = configured(|c| {
        c.role_claim = "scope".into();
        c.service_role = "payments:service".into();
    });
    let token =
        bearer(json!({"sub": "m2m", "exp": now() + 60, "scope": "openid payments:service"}));
    assert!(service(scope.verify(Some(&token)).await.expect("valid")));
    let partial = bearer(json!({"sub": "alice", "exp": now() + 60, "scope": "payments:service-x"}));
    assert!(!service(scope.verify(Some(&partial)).await.expect("valid")));

    let nested = configured(|c| c.role_claim = "realm_access.roles".into());
    let token =
        bearer(json!({"sub": "m2m", "exp": now() + 60, "realm_access": {"roles": ["service"]}}));
    assert!(service(nested.verify(Some(&token)).await.expect("valid")));
}

#[tokio::test]
async fn an_rs256_public_key_file_verifies_its_tokens_and_nothing_signed_otherwise() {
    let public = include_bytes!("../../tests/keys/rsa-a.pub.pem").to_vec();
    let config = JwtConfig {
        key: Some(crate::config::JwtKey::Rs256Pem(public)),
        ..JwtConfig::hs256(SECRET)
    };
    let auth = Authenticator::new(&config).expect("valid");
    let private = include_bytes!("../../tests/keys/rsa-a.pem");
    let key = EncodingKey::from_rsa_pem(private).expect("rsa key");
    let claims = json!({"sub": "alice", "exp": now() + 60});
    let rs256 = encode(&Header::new(Algorithm::RS256), &claims, &key).expect("encode");
    auth.verify(Some(&format!("Bearer {rs256}")))
        .await
        .expect("RS256 with the file's key");
    // An HS256 token, even one "signed" with the public key's bytes, is refused.
    let hs256 = token(
        claims,
        std::str::from_utf8(include_bytes!("../../tests/keys/rsa-a.pub.pem")).expect("pem"),
    );
    let refused = auth
        .verify(Some(&format!("Bearer {hs256}")))
        .await
        .expect_err("alg confusion");
    assert_eq!(refused.reason(), Reason::TokenInvalid);
}
