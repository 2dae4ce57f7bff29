//! One function per command: connect as the right identity, call, show the answer.

use std::io;

use anyhow::Context;
use clap::CommandFactory;
use payments_client::{
    Connection, Endpoint, IdempotencyKey, PaymentsClient, SigningKey, Started, StaticToken,
    TokenProvider, pb,
};
use serde_json::json;

use crate::{
    cli::{Cli, Command, Global, IdempotencyArg},
    demo,
    output::{self, Output},
};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output {
        json: cli.global.json,
    };
    let global = &cli.global;
    match cli.command {
        Command::Token(t) => {
            let key = signing_key(global)?
                .context("token needs --jwt-secret or --jwt-private-key-file")?;
            let minted = if t.service {
                key.service(t.user)
            } else {
                key.user(t.user)
            };
            let token = minted.mint()?;
            out.show(|| json!({ "token": token }), || vec![token.clone()]);
        }
        Command::Completions(c) => {
            clap_complete::generate(
                c.shell,
                &mut Cli::command(),
                "payments-cli",
                &mut io::stdout(),
            );
        }
        Command::Demo(d) => {
            let user = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            demo::run(&payments(global, Some(&user))?, &user, &d.sim, out)
                .await
                .with_context(|| format!("payments-api at {}", global.api))?;
        }
        Command::DeadEvents(_)
        | Command::Replay(_)
        | Command::Reconcile(_)
        | Command::LedgerCheck => admin(global, cli.command, out)
            .await
            .with_context(|| format!("PaymentsAdmin at {}", admin_url(global)))?,
        command => service(global, command, out)
            .await
            .with_context(|| format!("payments-api at {}", global.api))?,
    }
    Ok(())
}

/// The key to mint tokens with, if one is configured.
fn signing_key(global: &Global) -> anyhow::Result<Option<SigningKey>> {
    if let Some(path) = &global.jwt_private_key_file {
        return Ok(Some(SigningKey::rs256_pem_file(path)?));
    }
    Ok(global.jwt_secret.as_deref().map(SigningKey::hs256))
}

/// `--token` as is; else a minted token for `user`, or a service token without one.
fn credentials(global: &Global, user: Option<&str>) -> anyhow::Result<Box<dyn TokenProvider>> {
    if let Some(token) = &global.token {
        return Ok(Box::new(StaticToken::new(token.clone())));
    }
    let key = signing_key(global)?.context(
        "no credentials: pass --token, --jwt-secret or --jwt-private-key-file (or their PAYMENTS_* variables)",
    )?;
    Ok(match user {
        Some(user) => Box::new(key.user(user)),
        None => Box::new(key.service("operator")),
    })
}

/// A connection to `url` with `--ca-file`; it connects at the first call, and calls that
/// find the server unavailable are retried.
fn connect(global: &Global, url: &str, user: Option<&str>) -> anyhow::Result<Connection> {
    let mut endpoint = Endpoint::new(url);
    if let Some(ca) = &global.ca_file {
        endpoint = endpoint.ca_file(ca)?;
    }
    Ok(Connection::lazy(&endpoint, credentials(global, user)?)?)
}

fn admin_url(global: &Global) -> &str {
    &global.admin_api
}

fn payments(global: &Global, user: Option<&str>) -> anyhow::Result<PaymentsClient> {
    Ok(connect(global, &global.api, user)?.payments())
}

/// The key given, or a new one printed on stderr so that a retry can pass it.
fn idempotency_key(arg: IdempotencyArg) -> String {
    arg.idempotency_key.unwrap_or_else(|| {
        let key = IdempotencyKey::new().to_string();
        eprintln!("idempotency key: {key} (retry with --idempotency-key {key})");
        key
    })
}

async fn service(global: &Global, command: Command, out: Output) -> anyhow::Result<()> {
    match command {
        Command::Pay(p) => {
            let client = payments(global, Some(&p.card.user.user))?;
            let request = pb::CreatePaymentRequest {
                user_id: p.card.user.user,
                payment_method_id: p.card.pm,
                amount: p.amount,
                currency: p.currency,
                idempotency_key: idempotency_key(p.key),
            };
            show_started(out, &client.create_payment(request).await?);
        }
        Command::Coupon(c) => {
            let client = payments(global, Some(&c.user.user))?;
            let request = pb::ApplyCouponRequest {
                user_id: c.user.user,
                code: c.code,
                idempotency_key: idempotency_key(c.key),
            };
            show_started(out, &client.apply_coupon(request).await?);
        }
        Command::Validate(v) => {
            let client = payments(global, Some(&v.user.user))?;
            let request = pb::ValidatePaymentMethodRequest {
                user_id: v.user.user,
                payment_method_id: v.pm,
            };
            show_started(out, &client.validate_payment_method(request).await?);
        }
        Command::Trial(t) => {
            let client = payments(global, Some(&t.user.user))?;
            let request = pb::StartTrialRequest {
                user_id: t.user.user,
                payment_method_id: t.pm,
            };
            show_started(out, &client.start_trial(request).await?);
        }
        Command::Get(g) => {
            let t = payments(global, None)?.get_transaction(&g.id).await?;
            out.show(
                || output::transaction_json(&t),
                || vec![output::transaction(&t)],
            );
        }
        Command::List(l) => {
            let client = payments(global, Some(&l.user.user))?;
            let page = client
                .list_transactions(pb::ListTransactionsRequest {
                    user_id: l.user.user,
                    page_size: l.page_size,
                    page_token: l.page_token,
                })
                .await?;
            out.show(
                || {
                    let list: Vec<_> = page
                        .transactions
                        .iter()
                        .map(output::transaction_json)
                        .collect();
                    json!({"transactions": list, "next_page_token": page.next_page_token})
                },
                || {
                    let mut lines: Vec<String> =
                        page.transactions.iter().map(output::transaction).collect();
                    if !page.next_page_token.is_empty() {
                        lines.push(format!("next page: --page-token {}", page.next_page_token));
                    }
                    lines
                },
            );
        }
        Command::Watch(w) => {
            let client = payments(global, None)?;
            watch(&client, &w.id, w.await_status, out).await?;
        }
        Command::Wallet(w) => {
            let wallet = payments(global, Some(&w.user))?.get_wallet(&w.user).await?;
            out.show(
                || output::wallet_json(&wallet),
                || vec![output::wallet(&wallet)],
            );
        }
        Command::Attach(a) => {
            let client = payments(global, Some(&a.user.user))?;
            let card = client
                .attach_payment_method(pb::AttachPaymentMethodRequest {
                    user_id: a.user.user,
                    payment_method_id: a.pm,
                })
                .await?;
            out.show(|| output::card_json(&card), || vec![output::card(&card)]);
        }
        Command::Cards(c) => {
            let cards = payments(global, Some(&c.user))?
                .list_payment_methods(&c.user)
                .await?;
            out.show(
                || json!({"payment_methods": cards.iter().map(output::card_json).collect::<Vec<_>>()}),
                || cards.iter().map(output::card).collect(),
            );
        }
        Command::Detach(d) => {
            let client = payments(global, Some(&d.user.user))?;
            let card = client
                .detach_payment_method(pb::DetachPaymentMethodRequest {
                    user_id: d.user.user,
                    payment_method_id: d.pm,
                })
                .await?;
            out.show(
                || output::card_json(&card),
                || vec![format!("detached {}", output::card(&card))],
            );
        }
        other => anyhow::bail!("{other:?} is not a PaymentsService command"),
    }
    Ok(())
}

async fn admin(global: &Global, command: Command, out: Output) -> anyhow::Result<()> {
    let admin = connect(global, admin_url(global), None)?.admin();
    match command {
        Command::DeadEvents(d) => {
            let events = admin.list_dead_events(d.page_size).await?;
            out.show(
                || json!({"events": events.iter().map(output::event_json).collect::<Vec<_>>()}),
                || {
                    let mut lines: Vec<String> = events.iter().map(output::event).collect();
                    lines.push(format!("{} dead event(s)", events.len()));
                    lines
                },
            );
        }
        Command::Replay(r) => {
            let e = admin.replay_event(&r.id).await?;
            out.show(
                || json!({"event": output::event_json(&e)}),
                || vec![format!("{} {} now {}", e.id, e.r#type, e.state)],
            );
        }
        Command::Reconcile(r) => {
            let t = admin.reconcile_transaction(&r.id).await?;
            out.show(
                || output::transaction_json(&t),
                || vec![output::transaction(&t)],
            );
        }
        Command::LedgerCheck => {
            let report = admin.check_ledger().await?;
            out.show(
                || output::ledger_json(&report),
                || {
                    let mut lines = vec![format!(
                        "{} wallet(s) checked, {} mismatch(es)",
                        report.wallets_checked,
                        report.mismatches.len()
                    )];
                    lines.extend(report.mismatches.iter().map(|m| {
                        format!(
                            "  {}: balance {} but ledger sums to {}",
                            m.user_id, m.balance, m.ledger_sum
                        )
                    }));
                    lines
                },
            );
        }
        other => anyhow::bail!("{other:?} is not a PaymentsAdmin command"),
    }
    Ok(())
}

/// A mutation's answer, in the shape of its response message.
pub fn show_started(out: Output, started: &Started) {
    out.show(
        || {
            json!({
                "transaction": output::transaction_json(&started.transaction),
                "client_secret": started.client_secret.as_deref().unwrap_or_default(),
            })
        },
        || {
            let mut lines = vec![output::transaction(&started.transaction)];
            lines.extend(
                started
                    .client_secret
                    .iter()
                    .map(|s| format!("client_secret: {s}")),
            );
            lines
        },
    );
}

/// Shows every new version as it arrives (reconnecting when the stream breaks); returns
/// the last.
pub async fn watch(
    client: &PaymentsClient,
    id: &str,
    await_status: Option<pb::TransactionStatus>,
    out: Output,
) -> anyhow::Result<pb::Transaction> {
    let mut updates = client.watch_transaction(id, await_status);
    let mut last = None;
    while let Some(update) = updates.next().await {
        let t = update?;
        out.show(
            || json!({"transaction": output::transaction_json(&t)}),
            || vec![format!("  watch → {}", output::transaction(&t))],
        );
        last = Some(t);
    }
    last.context("the stream ended without a message")
}
