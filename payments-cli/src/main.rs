//! `payments-cli`: the operator's client for payments-api, and the scripted demo.
//!
//! Commands map one to one onto RPCs (`args.rs` parses, `commands.rs` calls and
//! prints); `demo.rs` plays the three flows the frontend needs against stripe-sim,
//! printing each WatchTransaction stream as it arrives.

mod args;
mod client;
mod commands;
mod demo;
mod print;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = match args::parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}\n\n{}", args::HELP);
            return ExitCode::from(2);
        }
    };
    match commands::run(parsed).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
