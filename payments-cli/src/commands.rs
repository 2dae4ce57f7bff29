//! One function per command: build the request, call, print.

use anyhow::Context;
use futures::StreamExt;
use payments_proto::payments::v1::{self as pb, TransactionStatus};

use crate::{
    args::Parsed,
    client::{Api, Auth, mint},
    demo, print,
};

pub async fn run(p: Parsed) -> anyhow::Result<()> {
    if p.command == "token" {
        let secret = p
            .jwt_secret
            .as_deref()
            .context("token needs --jwt-secret")?;
        println!("{}", mint(secret, p.required("user")?, p.flag("service"))?);
        return Ok(());
    }
    let auth = Auth {
        token: p.token.clone(),
        jwt_secret: p.jwt_secret.clone(),
    };
    let mut api = Api::connect(&p.api, &p.admin, auth).await?;
    match p.command.as_str() {
        "attach" | "cards" | "pay" | "coupon" | "validate" | "trial" | "wallet" | "list" => {
            user_command(&mut api, &p).await
        }
        "get" => {
            let req = pb::GetTransactionRequest {
                transaction_id: p.first("a transaction id")?.into(),
            };
            let t = api
                .payments
                .get_transaction(api.request(None, req)?)
                .await?
                .into_inner();
            println!("{}", print::transaction(&t));
            Ok(())
        }
        "watch" => {
            let await_status = p.opt("await").map(parse_status).transpose()?;
            watch(&mut api, None, p.first("a transaction id")?, await_status)
                .await
                .map(|_| ())
        }
        "dead-events" | "replay" | "reconcile" | "ledger-check" => {
            admin_command(&mut api, &p).await
        }
        "demo" => demo::run(&mut api, p.required("sim")?).await,
        other => anyhow::bail!("unknown command {other:?}"),
    }
}

async fn user_command(api: &mut Api, p: &Parsed) -> anyhow::Result<()> {
    let user = p.required("user")?.to_owned();
    let u = Some(user.as_str());
    let key = || {
        p.opt("key")
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
    };
    match p.command.as_str() {
        "attach" => {
            let req = pb::AttachPaymentMethodRequest {
                user_id: user.clone(),
                payment_method_id: p.required("pm")?.into(),
            };
            println!(
                "{}",
                print::card(
                    &api.payments
                        .attach_payment_method(api.request(u, req)?)
                        .await?
                        .into_inner()
                )
            );
        }
        "cards" => {
            let req = pb::ListPaymentMethodsRequest {
                user_id: user.clone(),
            };
            for c in api
                .payments
                .list_payment_methods(api.request(u, req)?)
                .await?
                .into_inner()
                .payment_methods
            {
                println!("{}", print::card(&c));
            }
        }
        "pay" => {
            let req = pb::CreatePaymentRequest {
                user_id: user.clone(),
                payment_method_id: p.required("pm")?.into(),
                amount: p
                    .required("amount")?
                    .parse()
                    .context("--amount is an integer of minor units")?,
                currency: p.opt("currency").unwrap_or("usd").into(),
                idempotency_key: key(),
            };
            let resp = api
                .payments
                .create_payment(api.request(u, req)?)
                .await?
                .into_inner();
            print_with_secret(resp.transaction.as_ref(), &resp.client_secret);
        }
        "coupon" => {
            let req = pb::ApplyCouponRequest {
                user_id: user.clone(),
                code: p.required("code")?.into(),
                idempotency_key: key(),
            };
            let resp = api
                .payments
                .apply_coupon(api.request(u, req)?)
                .await?
                .into_inner();
            print_with_secret(resp.transaction.as_ref(), "");
        }
        "validate" => {
            let req = pb::ValidatePaymentMethodRequest {
                user_id: user.clone(),
                payment_method_id: p.required("pm")?.into(),
            };
            let resp = api
                .payments
                .validate_payment_method(api.request(u, req)?)
                .await?
                .into_inner();
            print_with_secret(resp.transaction.as_ref(), &resp.client_secret);
        }
        "trial" => {
            let req = pb::StartTrialRequest {
                user_id: user.clone(),
                payment_method_id: p.required("pm")?.into(),
            };
            let resp = api
                .payments
                .start_trial(api.request(u, req)?)
                .await?
                .into_inner();
            print_with_secret(resp.transaction.as_ref(), &resp.client_secret);
        }
        "wallet" => {
            let req = pb::GetWalletRequest {
                user_id: user.clone(),
            };
            println!(
                "{}",
                print::wallet(
                    &api.payments
                        .get_wallet(api.request(u, req)?)
                        .await?
                        .into_inner()
                )
            );
        }
        _ => {
            let req = pb::ListTransactionsRequest {
                user_id: user.clone(),
                page_size: p
                    .opt("page-size")
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or(20),
                page_token: p.opt("page-token").unwrap_or_default().into(),
            };
            let resp = api
                .payments
                .list_transactions(api.request(u, req)?)
                .await?
                .into_inner();
            resp.transactions
                .iter()
                .for_each(|t| println!("{}", print::transaction(t)));
            if !resp.next_page_token.is_empty() {
                println!("next page: --page-token {}", resp.next_page_token);
            }
        }
    }
    Ok(())
}

async fn admin_command(api: &mut Api, p: &Parsed) -> anyhow::Result<()> {
    match p.command.as_str() {
        "dead-events" => {
            let req = pb::ListDeadEventsRequest {
                page_size: p
                    .opt("page-size")
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or(50),
            };
            let events = api
                .admin
                .list_dead_events(api.request(None, req)?)
                .await?
                .into_inner()
                .events;
            for e in &events {
                println!(
                    "{} {} attempts={} tx={} error={}",
                    e.id, e.r#type, e.attempts, e.transaction_id, e.last_error
                );
            }
            println!("{} dead event(s)", events.len());
        }
        "replay" => {
            let req = pb::ReplayEventRequest {
                event_id: p.first("an event id")?.into(),
            };
            let e = api
                .admin
                .replay_event(api.request(None, req)?)
                .await?
                .into_inner()
                .event
                .unwrap_or_default();
            println!("{} {} now {}", e.id, e.r#type, e.state);
        }
        "reconcile" => {
            let req = pb::ReconcileTransactionRequest {
                transaction_id: p.first("a transaction id")?.into(),
            };
            println!(
                "{}",
                print::transaction(
                    &api.admin
                        .reconcile_transaction(api.request(None, req)?)
                        .await?
                        .into_inner()
                )
            );
        }
        _ => {
            let report = api
                .admin
                .check_ledger(api.request(None, pb::CheckLedgerRequest {})?)
                .await?
                .into_inner();
            println!(
                "{} wallet(s) checked, {} mismatch(es)",
                report.wallets_checked,
                report.mismatches.len()
            );
            for m in report.mismatches {
                println!(
                    "  {}: balance {} but ledger sums to {}",
                    m.user_id, m.balance, m.ledger_sum
                );
            }
        }
    }
    Ok(())
}

fn print_with_secret(t: Option<&pb::Transaction>, client_secret: &str) {
    if let Some(t) = t {
        println!("{}", print::transaction(t));
    }
    if !client_secret.is_empty() {
        println!("client_secret: {client_secret}");
    }
}

pub fn parse_status(s: &str) -> anyhow::Result<TransactionStatus> {
    let name = format!("TRANSACTION_STATUS_{}", s.to_uppercase());
    TransactionStatus::from_str_name(&name).with_context(|| format!("unknown status {s:?}"))
}

/// Prints every message of the stream as it arrives; returns the last state.
pub async fn watch(
    api: &mut Api,
    user: Option<&str>,
    id: &str,
    await_status: Option<TransactionStatus>,
) -> anyhow::Result<pb::Transaction> {
    let req = pb::WatchTransactionRequest {
        transaction_id: id.into(),
        await_status: await_status.map(|s| s as i32),
    };
    let mut stream = api
        .payments
        .watch_transaction(api.request(user, req)?)
        .await?
        .into_inner();
    let mut last = None;
    while let Some(update) = stream.next().await {
        if let Some(t) = update?.transaction {
            println!("  watch → {}", print::transaction(&t));
            last = Some(t);
        }
    }
    last.context("the stream ended without a message")
}
