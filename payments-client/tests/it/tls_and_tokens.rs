//! TLS verified against a CA file, RS256 tokens, and who may call PaymentsAdmin.

use payments_client::{Connection, Endpoint, Error, ErrorReason, SigningKey, StaticToken};
use payments_testkit::{System, TlsFront};
use tonic::Code;

use crate::helpers::signing_key;

#[tokio::test]
async fn a_tls_endpoint_is_verified_against_the_ca_file() {
    let system = System::start().await;
    let front = TlsFront::start(system.addr).await;
    let ca = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca.path(), &front.ca_pem).expect("write the CA");

    let endpoint = Endpoint::new(front.url())
        .ca_file(ca.path())
        .expect("CA file");
    let payments = Connection::connect(&endpoint, signing_key().user("alice"))
        .await
        .expect("TLS connects")
        .payments();
    let wallet = payments.get_wallet("alice").await.expect("a call over TLS");
    assert_eq!(wallet.user_id, "alice");

    // Without the CA, the certificate does not verify against the public roots.
    let untrusted =
        Connection::connect(&Endpoint::new(front.url()), signing_key().user("alice")).await;
    assert!(
        matches!(untrusted, Err(Error::Connect { .. })),
        "{untrusted:?}"
    );
    let missing = Endpoint::new(front.url()).ca_file("/nonexistent/ca.pem");
    assert!(matches!(missing, Err(Error::CaFile { .. })));
    system.stop().await;
}

#[tokio::test]
async fn a_token_minted_with_the_rsa_private_key_is_accepted() {
    let public = include_bytes!("../../../testdata/jwt/rs256-public.pem").to_vec();
    let system = System::start_with(move |config| {
        config.jwt.key = Some(payments_api::config::JwtKey::Rs256Pem(public.clone()));
    })
    .await;
    let private = include_bytes!("../../../testdata/jwt/rs256-private.pem");
    let key = SigningKey::rs256_pem(private).expect("RSA key");
    let endpoint = Endpoint::new(system.api_url());
    let payments = Connection::connect(&endpoint, key.user("alice"))
        .await
        .expect("connect")
        .payments();
    payments.get_wallet("alice").await.expect("RS256 accepted");

    let hs256 = Connection::connect(&endpoint, signing_key().user("alice"))
        .await
        .expect("connect")
        .payments();
    let refused = hs256
        .get_wallet("alice")
        .await
        .expect_err("wrong algorithm");
    assert_eq!(refused.code(), Some(Code::Unauthenticated));
    assert_eq!(refused.reason(), Some(ErrorReason::TokenInvalid));
    system.stop().await;
}

#[tokio::test]
async fn admin_calls_need_a_service_token() {
    let system = System::start().await;
    // PaymentsAdmin is served on payments-api's admin port.
    let endpoint = Endpoint::new(system.admin_url());
    let operator = Connection::connect(&endpoint, signing_key().service("backoffice"))
        .await
        .expect("connect");
    let report = operator
        .admin()
        .check_ledger()
        .await
        .expect("service token");
    assert!(report.mismatches.is_empty());

    let user = operator.clone().with_token(signing_key().user("alice"));
    let refused = user.admin().check_ledger().await.expect_err("user token");
    assert_eq!(refused.code(), Some(Code::PermissionDenied));
    assert_eq!(refused.reason(), Some(ErrorReason::ServiceTokenRequired));
    let garbage = operator.with_token(StaticToken::new("not-a-jwt"));
    let refused = garbage
        .admin()
        .list_dead_events(10)
        .await
        .expect_err("bad token");
    assert_eq!(refused.code(), Some(Code::Unauthenticated));
    system.stop().await;
}
