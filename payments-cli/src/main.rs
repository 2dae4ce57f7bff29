//! `payments-cli`: the operator's client for payments-api, and the scripted demo.
//!
//! `cli.rs` declares the command line (clap: unknown flags and missing values are
//! errors, exit code 2); `commands.rs` runs each command through `payments-client`;
//! `output.rs` shows answers as text or JSON; `demo.rs` plays the three flows the
//! frontend needs against stripe-sim, printing each WatchTransaction stream as it
//! arrives.

mod cli;
mod commands;
mod demo;
mod output;

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.global.json;
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, json);
            ExitCode::FAILURE
        }
    }
}

/// The error on stderr: its whole chain, and with `--json` also the status code and
/// the reason payments-api gave, for scripts to act on.
fn report(e: &anyhow::Error, json: bool) {
    if !json {
        eprintln!("error: {e:#}");
        return;
    }
    let rpc = match e.downcast_ref::<payments_client::Error>() {
        Some(payments_client::Error::Rpc(rpc)) => Some(rpc),
        _ => None,
    };
    let error = json!({
        "message": format!("{e:#}"),
        "code": rpc.map(|r| code_name(r.code)),
        "reason": rpc.and_then(|r| r.detail.as_ref()).map(|d| &d.reason_name),
        "field_violations": rpc.map(|r| &r.field_violations),
    });
    eprintln!("{}", json!({ "error": error }));
}

/// `FailedPrecondition` → `FAILED_PRECONDITION`, as gRPC names its codes.
fn code_name(code: payments_client::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}
