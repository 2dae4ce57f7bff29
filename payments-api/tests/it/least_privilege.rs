//! Both services run as a role without DDL rights, with migrations at start off: the
//! role gets exactly the grants in `deploy/sql/runtime-grants.sql` (the file the
//! README points operators to), then a card payment, a card validation (its hold
//! released through the outbox) and an operator call go through. The role cannot
//! change the schema, and a service refuses to start while a migration is pending.

use std::{net::SocketAddr, time::Duration};

use payments_core::testing::TestDb;
use payments_proto::payments::v1::{
    self as pb, TransactionStatus as S, payments_admin_client::PaymentsAdminClient,
    payments_service_client::PaymentsServiceClient,
};
use sqlx::{Connection, Executor, PgConnection, postgres::PgConnectOptions};
use stripe_sim::StripeSim;
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    JWT_SECRET, TOPUP, WEBHOOK_SECRET, as_user, service_token, stop_servers, with_token,
};

/// `url` with another user (trust authentication, as the test server uses).
fn as_role(url: &str, role: &str) -> String {
    let options: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    format!(
        "postgres://{role}@{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database")
    )
}

async fn grant_runtime_rights(db: &TestDb, role: &str) {
    let path = format!(
        "{}/../deploy/sql/runtime-grants.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    let grants = std::fs::read_to_string(path).expect("the grants file");
    let mut owner = db.pool.acquire().await.expect("connection");
    owner
        .execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
        .await
        .expect("create role");
    owner
        .execute(sqlx::AssertSqlSafe(grants.replace("payments_app", role)))
        .await
        .expect("the grants apply");
}

async fn wait_for(
    client: &mut PaymentsServiceClient<tonic::transport::Channel>,
    id: &str,
    want: S,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let req = pb::GetTransactionRequest {
            transaction_id: id.into(),
        };
        let tx = client
            .get_transaction(as_user("alice", req))
            .await
            .expect("get")
            .into_inner();
        if tx.status == want as i32 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tx:?} never {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_services_run_as_a_role_without_ddl_rights_with_migrations_off() {
    let db = TestDb::new().await;
    let role = format!(
        "payments_app_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    grant_runtime_rights(&db, &role).await;
    let runtime_url = as_role(&db.url, &role);

    let mut runtime = PgConnection::connect(&runtime_url)
        .await
        .expect("the role logs in");
    let ddl = runtime.execute("CREATE TABLE intruder (id int)").await;
    let denied = ddl.expect_err("no DDL");
    let code = denied
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("42501"), "{denied}");
    runtime
        .execute("DELETE FROM _sqlx_migrations")
        .await
        .expect_err("the migration history is read-only");
    runtime.close().await.expect("close");

    let sim = StripeSim::builder()
        .webhook_secret(WEBHOOK_SECRET)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()
        .await
        .expect("stripe-sim");
    let mut ingestor_config =
        webhook_ingestor::Config::for_tests(&runtime_url, sim.base_url(), WEBHOOK_SECRET);
    ingestor_config.migrate_at_start = false;
    let ingestor = webhook_ingestor::App::build(ingestor_config)
        .await
        .expect("the ingestor starts without DDL rights");
    sim.add_webhook_endpoint(format!(
        "http://{}/v1/stripe-webhook",
        ingestor.local_addr()
    ));
    let mut api_config = payments_api::Config::for_tests(&runtime_url, sim.base_url(), JWT_SECRET);
    api_config.database.migrate_at_start = false;
    let api = payments_api::App::build(api_config)
        .await
        .expect("payments-api starts without DDL rights");
    let (addr, admin_addr) = (api.local_addr(), api.admin_addr());
    let shutdown = CancellationToken::new();
    let servers = vec![
        tokio::spawn(ingestor.run_until_stopped(shutdown.clone())),
        tokio::spawn(api.run_until_stopped(shutdown.clone())),
    ];

    let mut client = PaymentsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let attach = pb::AttachPaymentMethodRequest {
        user_id: "alice".into(),
        payment_method_id: "pm_card_visa".into(),
    };
    let card = client
        .attach_payment_method(as_user("alice", attach))
        .await
        .expect("attach")
        .into_inner();
    let pay = pb::CreatePaymentRequest {
        user_id: "alice".into(),
        payment_method_id: card.id.clone(),
        amount: TOPUP,
        currency: "usd".into(),
        idempotency_key: "least-privilege".into(),
    };
    let paid = client
        .create_payment(as_user("alice", pay))
        .await
        .expect("pay")
        .into_inner();
    wait_for(&mut client, &paid.transaction.expect("tx").id, S::Succeeded).await;
    let validate = pb::ValidatePaymentMethodRequest {
        user_id: "alice".into(),
        payment_method_id: card.id,
    };
    let validated = client
        .validate_payment_method(as_user("alice", validate))
        .await
        .expect("validate")
        .into_inner();
    let validation = validated.transaction.expect("tx");
    wait_for(&mut client, &validation.id, S::Succeeded).await;
    // The hold is released through the outbox, which the ingestor sends and completes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let pi = crate::helpers::sim_get(
            &sim,
            &format!("payment_intents/{}", validation.stripe_payment_intent_id),
        )
        .await;
        if pi["status"] == "canceled" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hold was never released: {pi}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut admin = PaymentsAdminClient::connect(format!("http://{admin_addr}"))
        .await
        .expect("connect");
    let ledger = admin
        .check_ledger(with_token(&service_token(), pb::CheckLedgerRequest {}))
        .await
        .expect("an operator call")
        .into_inner();
    assert!(ledger.mismatches.is_empty(), "{ledger:?}");
    stop_servers(&shutdown, servers).await;

    // A pending migration: a service without DDL rights refuses to start.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&db.pool)
    .await
    .expect("forget the newest migration");
    let mut config = payments_api::Config::for_tests(&runtime_url, sim.base_url(), JWT_SECRET);
    config.database.migrate_at_start = false;
    let refused = payments_api::App::build(config)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{refused:#}").contains("lacks migrations"),
        "{refused:#}"
    );

    drop(db);
    let mut server = PgConnection::connect(&payments_core::testing::server_url())
        .await
        .expect("connect");
    server
        .execute(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .await
        .expect("drop the role");
}
