//! The built binary against the real system (`payments_testkit::System`: database,
//! stripe-sim, ingestor, payments-api in-process on port 0), as an operator runs it.

use std::process::Output;

use payments_testkit::{JWT_SECRET, System, TlsFront};
use serde_json::Value;

/// `payments-cli ARGS` against `api`, with development credentials and nothing from the
/// environment.
async fn cli(api: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_payments-cli"))
        .args(["--api", api, "--jwt-secret", JWT_SECRET])
        .args(args)
        .env_remove("PAYMENTS_TOKEN")
        .env_remove("PAYMENTS_JWT_SECRET")
        .env_remove("PAYMENTS_JWT_PRIVATE_KEY_FILE")
        .env_remove("PAYMENTS_API_URL")
        .env_remove("PAYMENTS_ADMIN_API_URL")
        .env_remove("PAYMENTS_CA_FILE")
        .output()
        .await
        .expect("payments-cli runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The command succeeded and printed one JSON document per line.
fn json_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "failed: {}", stderr(output));
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

fn json(output: &Output) -> Value {
    let mut lines = json_lines(output);
    assert_eq!(lines.len(), 1, "one document: {lines:?}");
    lines.remove(0)
}

#[tokio::test]
async fn a_misspelt_flag_or_a_missing_value_exits_2_with_a_message() {
    let unused = "http://127.0.0.1:9";
    let misspelt = cli(
        unused,
        &["pay", "--user", "u", "--pm", "pm_card_visa", "--amout", "5"],
    )
    .await;
    assert_eq!(misspelt.status.code(), Some(2));
    let message = stderr(&misspelt);
    assert!(
        message.contains("--amout") && message.contains("--amount"),
        "{message}"
    );

    let missing = cli(
        unused,
        &["pay", "--user", "u", "--pm", "pm_card_visa", "--amount"],
    )
    .await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("--amount"),
        "{}",
        stderr(&missing)
    );

    let help = cli(unused, &["detach", "--help"]).await;
    assert!(help.status.success());
    assert!(stdout(&help).contains("DetachPaymentMethod"));
}

#[tokio::test]
async fn a_3ds_top_up_from_attach_to_the_ledger_check_prints_json_that_parses() {
    let system = System::start().await;
    let api = system.api_url();
    let card = json(
        &cli(
            &api,
            &[
                "--json",
                "attach",
                "--user",
                "alice",
                "--pm",
                "pm_card_threeDSecure2Required",
            ],
        )
        .await,
    );
    let card_id = card["id"].as_str().expect("card id");

    let paid = json(
        &cli(
            &api,
            &[
                "pay", "--user", "alice", "--pm", card_id, "--amount", "2500", "--json",
            ],
        )
        .await,
    );
    assert_eq!(
        paid["transaction"]["status"],
        "TRANSACTION_STATUS_REQUIRES_ACTION"
    );
    assert_eq!(paid["transaction"]["amount"], 2_500);
    let id = paid["transaction"]["id"].as_str().expect("id");
    let secret = paid["client_secret"].as_str().expect("client secret");
    let pi = paid["transaction"]["stripe_payment_intent_id"]
        .as_str()
        .expect("pi");
    system.authenticate_3ds(pi, secret, true).await;

    let updates = json_lines(&cli(&api, &["--json", "watch", id]).await);
    let last = updates.last().expect("an update");
    assert_eq!(
        last["transaction"]["status"],
        "TRANSACTION_STATUS_SUCCEEDED"
    );
    let got = json(&cli(&api, &["--json", "get", id]).await);
    assert_eq!(got["status"], "TRANSACTION_STATUS_SUCCEEDED");
    assert!(got["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let wallet = json(&cli(&api, &["--json", "wallet", "--user", "alice"]).await);
    assert_eq!(wallet["balance"], 2_500);
    let listed = json(&cli(&api, &["--json", "list", "--user", "alice"]).await);
    assert_eq!(listed["transactions"][0]["id"], id);
    let cards = json(&cli(&api, &["--json", "cards", "--user", "alice"]).await);
    assert_eq!(cards["payment_methods"][0]["id"], card_id);
    let detached = json(
        &cli(
            &api,
            &["--json", "detach", "--user", "alice", "--pm", card_id],
        )
        .await,
    );
    assert_eq!(detached["id"], card_id);
    let cards = json(&cli(&api, &["--json", "cards", "--user", "alice"]).await);
    assert_eq!(cards["payment_methods"], Value::Array(Vec::new()));

    // Operator calls, with a minted service token, on the admin port.
    let admin = system.admin_url();
    let reconciled = json(&cli(&api, &["--admin-api", &admin, "--json", "reconcile", id]).await);
    assert_eq!(reconciled["status"], "TRANSACTION_STATUS_SUCCEEDED");
    let ledger = json(&cli(&api, &["--admin-api", &admin, "--json", "ledger-check"]).await);
    assert_eq!(
        (
            ledger["wallets_checked"].as_i64(),
            ledger["mismatches"].clone()
        ),
        (Some(1), Value::Array(Vec::new()))
    );
    let dead = json(&cli(&api, &["--admin-api", &admin, "--json", "dead-events"]).await);
    assert_eq!(dead["events"], Value::Array(Vec::new()));
    system.stop().await;
}

#[tokio::test]
async fn a_generated_key_is_printed_and_passing_it_again_returns_the_same_transaction() {
    let system = System::start().await;
    let api = system.api_url();
    let card = json(
        &cli(
            &api,
            &["--json", "attach", "--user", "bob", "--pm", "pm_card_visa"],
        )
        .await,
    );
    let card_id = card["id"].as_str().expect("card id");
    let pay = [
        "--json", "pay", "--user", "bob", "--pm", card_id, "--amount", "1000",
    ];

    let first = cli(&api, &pay).await;
    let printed = stderr(&first);
    let key = printed
        .split_whitespace()
        .skip_while(|word| *word != "key:")
        .nth(1)
        .unwrap_or_else(|| panic!("no key in {printed:?}"));
    let first = json(&first);
    let again = cli(&api, &[&pay[..], &["--idempotency-key", key]].concat()).await;
    assert!(
        stderr(&again).is_empty(),
        "a given key is not printed again"
    );
    let again = json(&again);
    assert_eq!(again["transaction"]["id"], first["transaction"]["id"]);

    let other = json(&cli(&api, &pay).await);
    assert_ne!(
        other["transaction"]["id"], first["transaction"]["id"],
        "a new key, a new payment"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_refusal_exits_1_with_its_code_and_field_in_json() {
    let system = System::start().await;
    let api = system.api_url();
    let refused = cli(
        &api,
        &[
            "--json",
            "pay",
            "--user",
            "bob",
            "--pm",
            "pm_card_visa",
            "--amount",
            "-5",
            "--idempotency-key",
            "k1",
        ],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let error: Value = serde_json::from_str(stderr(&refused).trim()).expect("a JSON error");
    assert_eq!(error["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(error["error"]["reason"], "INVALID_FIELD");
    assert_eq!(error["error"]["field_violations"][0][0], "amount");
    system.stop().await;
}

#[tokio::test]
async fn an_https_endpoint_is_verified_against_the_ca_file() {
    let system = System::start().await;
    let front = TlsFront::start(system.addr).await;
    let ca = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca.path(), &front.ca_pem).expect("write the CA");
    let ca_path = ca.path().to_str().expect("utf-8 path");

    let wallet = json(
        &cli(
            &front.url(),
            &["--ca-file", ca_path, "--json", "wallet", "--user", "carol"],
        )
        .await,
    );
    assert_eq!(wallet["user_id"], "carol");
    let untrusted = cli(&front.url(), &["wallet", "--user", "carol"]).await;
    assert_eq!(untrusted.status.code(), Some(1), "{}", stderr(&untrusted));
    system.stop().await;
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = cli("http://127.0.0.1:9", &["completions", shell]).await;
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(
            script.contains("payments-cli") && script.contains("ledger-check"),
            "{shell}"
        );
    }
}

#[tokio::test]
async fn the_scripted_demo_plays_its_three_flows_to_the_end() {
    let system = System::start().await;
    let output = cli(&system.api_url(), &["demo", "--sim", system.sim.base_url()]).await;
    let text = stdout(&output);
    assert!(output.status.success(), "{text}\n{}", stderr(&output));
    let settled = text
        .lines()
        .filter(|line| line.starts_with("  watch →") && line.contains(" SUCCEEDED "))
        .count();
    assert_eq!(settled, 3, "each flow watched to SUCCEEDED: {text}");
    assert!(
        text.contains("== wallet:") && text.contains("balance 3500 usd, trial active (credit 500)"),
        "{text}"
    );
    system.stop().await;
}
