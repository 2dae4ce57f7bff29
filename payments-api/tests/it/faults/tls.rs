//! PostgreSQL over TLS, as a managed database serves it: a private cluster with
//! `ssl=on` and a certificate from a CA made for the test, refusing every connection
//! without TLS. Both services connect with `sslmode=verify-full` and the CA in
//! `sslrootcert`, and run a payment end to end; a server whose certificate does not
//! verify (another CA, another host name) is refused at start-up.

use sqlx::Connection as _;

use super::{
    SETTLE, attach_cards,
    postgres::{PrivatePostgres, TestCa},
    stack::{Payment, Spec, Stack},
};
use crate::helpers::{JWT_SECRET, WEBHOOK_SECRET};
use payments_proto::payments::v1::TransactionStatus as S;

fn url(host: &str, pg: &PrivatePostgres, query: &str) -> String {
    format!("postgres://postgres@{host}:{}/postgres?{query}", pg.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_work_over_tls_verified_against_the_ca_and_the_host_name() {
    let ca = TestCa::new("payments test CA");
    let pg = PrivatePostgres::start_tls(ca.server_certificate(&["127.0.0.1"])).await;
    let ca_file = pg.write_file("ca.pem", &ca.cert_pem);
    let plaintext = url("127.0.0.1", &pg, "sslmode=disable");
    let refused = sqlx::PgConnection::connect(&plaintext).await;
    assert!(refused.is_err(), "the server accepts TLS connections only");

    let verified = url(
        "127.0.0.1",
        &pg,
        &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
    );
    let stack = Stack::start(&verified, Spec::default()).await;
    let users = attach_cards(&stack, 1, &["pm_card_visa"]).await;
    let payment = Payment {
        user: users[0].0.clone(),
        card: users[0].1[0].clone(),
        amount: 2_500,
        key: "over-tls".into(),
    };
    let paid = stack.pay(0, &payment).await;
    let settled = stack
        .settled(&payment.user, &paid.transaction.id, SETTLE)
        .await;
    assert_eq!(settled.status(), S::Succeeded);
    assert_eq!(
        stack.wallet(&payment.user).await.expect("wallet").balance,
        2_500
    );

    let (plain, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.backend_type = 'client backend'",
    )
    .fetch_one(&stack.pool)
    .await
    .expect("read pg_stat_ssl");
    assert_eq!(plain, 0);
    // The check pool, the API's pool and listener, the ingestor's pool.
    assert!(encrypted >= 4, "{encrypted} TLS connections");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_does_not_verify_is_refused() {
    let ca = TestCa::new("payments test CA");
    let other_ca = TestCa::new("somebody else's CA");
    let pg = PrivatePostgres::start_tls(ca.server_certificate(&["127.0.0.1"])).await;
    let right = pg.write_file("ca.pem", &ca.cert_pem);
    let wrong = pg.write_file("other-ca.pem", &other_ca.cert_pem);
    let (right, wrong) = (right.display(), wrong.display());
    // (url, whether it verifies)
    let cases = [
        (
            url(
                "127.0.0.1",
                &pg,
                &format!("sslmode=verify-full&sslrootcert={wrong}"),
            ),
            false,
        ),
        // The certificate names 127.0.0.1, not localhost.
        (
            url(
                "localhost",
                &pg,
                &format!("sslmode=verify-full&sslrootcert={right}"),
            ),
            false,
        ),
        // verify-ca checks the chain only.
        (
            url(
                "localhost",
                &pg,
                &format!("sslmode=verify-ca&sslrootcert={right}"),
            ),
            true,
        ),
        // As in libpq, `require` with a root certificate checks the chain.
        (
            url(
                "127.0.0.1",
                &pg,
                &format!("sslmode=require&sslrootcert={wrong}"),
            ),
            false,
        ),
        // `require` alone encrypts without verifying.
        (url("127.0.0.1", &pg, "sslmode=require"), true),
    ];
    for (url, verifies) in cases {
        let api = payments_api::App::build(payments_api::Config::for_tests(
            &url,
            "http://127.0.0.1:9",
            JWT_SECRET,
        ))
        .await;
        let ingestor = webhook_ingestor::App::build(webhook_ingestor::Config::for_tests(
            &url,
            "http://127.0.0.1:9",
            WEBHOOK_SECRET,
        ))
        .await;
        for (service, built) in [
            ("payments-api", api.map(drop)),
            ("webhook-ingestor", ingestor.map(drop)),
        ] {
            match (built, verifies) {
                (Ok(()), true) => {}
                (Err(e), false) => {
                    let chain = format!("{e:#}");
                    assert!(chain.contains("certificate"), "{service}, {url}: {chain}");
                }
                (Ok(()), false) => panic!("{service} accepted the server with {url}"),
                (Err(e), true) => panic!("{service} refused the server with {url}: {e:#}"),
            }
        }
    }
}
