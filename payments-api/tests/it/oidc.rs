//! Bearer tokens from an OIDC provider: keys from a local JWKS server (port 0) that
//! rotates them mid-test, RS256 and ES256, issuer, audience, `nbf`, expiry, an unknown
//! `kid`, and a machine-to-machine token whose `scope` makes it a service.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use payments_api::config::{JwksConfig, JwtConfig};
use payments_proto::payments::v1::{self as pb, payments_admin_client::PaymentsAdminClient};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{TestApp, assert_refused, with_token};

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "payments";
const MIN_REFRESH: Duration = Duration::from_millis(800);

fn jwk(name: &str) -> Value {
    let path = format!("{}/tests/keys/{name}.jwk.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("jwk file")).expect("jwk json")
}

fn signing_key(name: &str) -> (Algorithm, EncodingKey) {
    let path = format!("{}/tests/keys/{name}.pem", env!("CARGO_MANIFEST_DIR"));
    let pem = std::fs::read(path).expect("pem file");
    if name.starts_with("ec") {
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem).expect("ec key"),
        )
    } else {
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
        )
    }
}

/// A token signed by `key` announced as `kid`, with the claims of a valid user token
/// for `sub` changed by `extra`.
fn token(key: &str, kid: &str, sub: &str, extra: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now,
    });
    let fields = claims.as_object_mut().expect("object");
    for (name, value) in extra.as_object().cloned().unwrap_or_default() {
        fields.insert(name, value);
    }
    let (algorithm, key) = signing_key(key);
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// The identity provider's JWKS endpoint, serving whatever set the test puts in.
struct KeyServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(keys: Value) -> KeyServer {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (keys.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let set = served.lock().expect("keys").clone();
                async move { axum::Json(set) }
            }),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        KeyServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            keys,
            fetches,
        }
    }

    fn publish(&self, names: &[&str]) {
        let set: Vec<Value> = names.iter().map(|n| jwk(n)).collect();
        *self.keys.lock().expect("keys") = json!({ "keys": set });
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn wallet(app: &TestApp, token: &str) -> Result<pb::Wallet, tonic::Status> {
    let req = pb::GetWalletRequest {
        user_id: "alice".into(),
    };
    Ok(app
        .client()
        .get_wallet(with_token(token, req))
        .await?
        .into_inner())
}

#[tokio::test]
async fn oidc_tokens_verify_against_a_rotating_jwks_and_bad_ones_are_unauthenticated() {
    let idp = KeyServer::start(json!({ "keys": [] })).await;
    idp.publish(&["rsa-a", "ec-a"]);
    let url = idp.url.clone();
    let app = TestApp::start_with(move |config| {
        config.jwt = JwtConfig {
            key: None,
            jwks: Some(JwksConfig {
                url: url.clone(),
                min_refresh: MIN_REFRESH,
                max_age: Duration::from_secs(3600),
            }),
            issuer: Some(ISSUER.into()),
            audience: vec!["other-app".into(), AUDIENCE.into()],
            leeway: Duration::from_secs(5),
            role_claim: "scope".into(),
            service_role: "payments:service".into(),
        };
    })
    .await;
    assert_eq!(idp.fetches(), 1, "fetched once at start");

    // RS256 and ES256 user tokens; `aud` as a string or a list.
    wallet(&app, &token("rsa-a", "rsa-a", "alice", json!({})))
        .await
        .expect("RS256");
    let listed = json!({"aud": ["someone-else", AUDIENCE]});
    wallet(&app, &token("ec-a", "ec-a", "alice", listed))
        .await
        .expect("ES256");

    // A machine-to-machine token: its scope makes it a service, for users and the admin.
    let m2m = token(
        "rsa-a",
        "rsa-a",
        "billing-job",
        json!({"scope": "openid payments:service"}),
    );
    wallet(&app, &m2m).await.expect("a service acts for alice");
    let mut admin = PaymentsAdminClient::connect(format!("http://{}", app.admin_addr))
        .await
        .expect("connect");
    admin
        .check_ledger(with_token(&m2m, pb::CheckLedgerRequest {}))
        .await
        .expect("a service calls the admin service");
    let user = token("rsa-a", "rsa-a", "alice", json!({"scope": "openid"}));
    assert_refused(
        admin
            .check_ledger(with_token(&user, pb::CheckLedgerRequest {}))
            .await,
        Code::PermissionDenied,
        "SERVICE_TOKEN_REQUIRED",
    );

    let now = chrono::Utc::now().timestamp();
    for (bad, reason) in [
        (json!({"iss": "https://evil.test/"}), "TOKEN_INVALID"),
        (json!({"aud": "not-payments"}), "TOKEN_INVALID"),
        (json!({"exp": now - 60}), "TOKEN_EXPIRED"),
        (json!({"nbf": now + 120}), "TOKEN_INVALID"),
    ] {
        let refused = wallet(&app, &token("rsa-a", "rsa-a", "alice", bad.clone())).await;
        assert_refused(refused, Code::Unauthenticated, reason);
    }
    // Signed by a key the provider does not list (yet), or announced under another kid.
    let before = idp.fetches();
    let started = std::time::Instant::now();
    for i in 0..20 {
        let unknown = token("rsa-b", &format!("made-up-{i}"), "alice", json!({}));
        assert_refused(
            wallet(&app, &unknown).await,
            Code::Unauthenticated,
            "TOKEN_INVALID",
        );
    }
    let mismatched = token("rsa-b", "rsa-a", "alice", json!({}));
    assert_refused(
        wallet(&app, &mismatched).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // At most one fetch per MIN_REFRESH, however many unknown kids arrive.
    let allowed = 1 + started.elapsed().as_millis() / MIN_REFRESH.as_millis();
    let fetched = idp.fetches() - before;
    assert!(
        fetched as u128 <= allowed,
        "{fetched} fetches for 21 unknown kids in {:?}",
        started.elapsed()
    );

    // Rotation: the provider replaces rsa-a with rsa-b; no restart.
    idp.publish(&["rsa-b", "ec-a"]);
    tokio::time::sleep(MIN_REFRESH + Duration::from_millis(100)).await;
    wallet(&app, &token("rsa-b", "rsa-b", "alice", json!({})))
        .await
        .expect("the new key");
    assert_refused(
        wallet(&app, &token("rsa-a", "rsa-a", "alice", json!({}))).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    wallet(&app, &token("ec-a", "ec-a", "alice", json!({})))
        .await
        .expect("a key kept");
    app.stop().await;
}
