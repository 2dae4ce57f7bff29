//! The command line: global connection options and one subcommand per RPC.

use std::path::PathBuf;

use clap::{
    Args, Parser, Subcommand,
    builder::{PossibleValuesParser, TypedValueParser},
};
use payments_client::pb::TransactionStatus;

use crate::output;

#[derive(Debug, Parser)]
#[command(
    name = "payments-cli",
    version,
    about = "Calls payments-api: every PaymentsService and PaymentsAdmin RPC, and the scripted demo.",
    after_help = "Credentials: --token sends a token as is; --jwt-secret or --jwt-private-key-file mint one \
                  per call: for --user when the command has one, else a service token (operator calls)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Connection and output")]
pub struct Global {
    /// payments-api's address; https:// for TLS
    #[arg(
        long,
        global = true,
        env = "PAYMENTS_API_URL",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub api: String,
    /// PaymentsAdmin's address: payments-api's admin port (PAYMENTS_ADMIN_ADDR)
    #[arg(
        long,
        global = true,
        env = "PAYMENTS_ADMIN_API_URL",
        default_value = "http://127.0.0.1:50052",
        value_name = "URL"
    )]
    pub admin_api: String,
    /// CA certificate(s) in PEM that an https:// endpoint must be signed by
    #[arg(long, global = true, env = "PAYMENTS_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// A bearer token to send as is (wins over minting)
    #[arg(
        long,
        global = true,
        env = "PAYMENTS_TOKEN",
        hide_env_values = true,
        value_name = "JWT"
    )]
    pub token: Option<String>,
    /// Mint HS256 tokens with this secret (payments-api's PAYMENTS_JWT_SECRET)
    #[arg(
        long,
        global = true,
        env = "PAYMENTS_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<String>,
    /// Mint RS256 tokens with this RSA private key (its public half is payments-api's key)
    #[arg(
        long,
        global = true,
        env = "PAYMENTS_JWT_PRIVATE_KEY_FILE",
        value_name = "PEM"
    )]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Print each answer as one line of JSON (proto field names) instead of text
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// CreatePayment: top up a wallet with a card
    Pay(Pay),
    /// ApplyCoupon: redeem a promotion code (or coupon id) as wallet credit
    Coupon(Coupon),
    /// ValidatePaymentMethod: prove a card with a small hold, released afterwards
    Validate(UserCard),
    /// StartTrial: validate a card whose success grants the trial
    Trial(UserCard),
    /// GetTransaction
    Get(TransactionArg),
    /// ListTransactions: newest first, a page at a time
    List(List),
    /// WatchTransaction: print each change until the transaction settles (reconnects when
    /// the stream breaks)
    Watch(Watch),
    /// GetWallet
    Wallet(UserArg),
    /// AttachPaymentMethod: attach a card (pm_… or a test token such as pm_card_visa)
    Attach(UserCard),
    /// ListPaymentMethods
    Cards(UserArg),
    /// DetachPaymentMethod
    Detach(UserCard),
    /// PaymentsAdmin.ListDeadEvents: Stripe events that exhausted their retries (service token)
    DeadEvents(DeadEvents),
    /// PaymentsAdmin.ReplayEvent: apply a stored event again now (service token)
    Replay(EventArg),
    /// PaymentsAdmin.ReconcileTransaction: read the transaction's state from Stripe now
    /// (service token)
    Reconcile(TransactionArg),
    /// PaymentsAdmin.CheckLedger: wallets whose balance differs from their ledger (service
    /// token)
    LedgerCheck,
    /// Print a token minted with --jwt-secret or --jwt-private-key-file
    Token(Token),
    /// The scripted demo against stripe-sim: a 3DS top-up, a coupon, a card validation and
    /// trial, each watched live
    Demo(Demo),
    /// Print a shell completion script (e.g. `source <(payments-cli completions bash)`)
    Completions(Completions),
}

#[derive(Debug, Args)]
pub struct UserArg {
    /// The user acted for
    #[arg(long)]
    pub user: String,
}

#[derive(Debug, Args)]
pub struct UserCard {
    #[command(flatten)]
    pub user: UserArg,
    /// A payment method id (pm_…), or a Stripe test token
    #[arg(long, visible_alias = "payment-method")]
    pub pm: String,
}

#[derive(Debug, Args)]
pub struct IdempotencyArg {
    /// Keep the key of an intent and pass it again to retry it: the retry returns the
    /// same transaction. Without it a new key is made and printed on stderr.
    #[arg(long, alias = "key", value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct Pay {
    #[command(flatten)]
    pub card: UserCard,
    /// Minor units (2500 = $25.00)
    #[arg(long, allow_negative_numbers = true)]
    pub amount: i64,
    /// Lower-case ISO 4217
    #[arg(long, default_value = "usd")]
    pub currency: String,
    #[command(flatten)]
    pub key: IdempotencyArg,
}

#[derive(Debug, Args)]
pub struct Coupon {
    #[command(flatten)]
    pub user: UserArg,
    /// A promotion code or coupon id
    #[arg(long)]
    pub code: String,
    #[command(flatten)]
    pub key: IdempotencyArg,
}

#[derive(Debug, Args)]
pub struct TransactionArg {
    #[arg(value_name = "TRANSACTION_ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EventArg {
    /// A Stripe event id (evt_…)
    #[arg(value_name = "EVENT_ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct List {
    #[command(flatten)]
    pub user: UserArg,
    /// At most 100
    #[arg(long, default_value_t = 20)]
    pub page_size: i32,
    /// The token printed after the previous page
    #[arg(long, default_value = "")]
    pub page_token: String,
}

#[derive(Debug, Args)]
pub struct Watch {
    #[arg(value_name = "TRANSACTION_ID")]
    pub id: String,
    /// Stop at this status (or at any settled one)
    #[arg(long = "await", value_name = "STATUS", value_parser = status_parser())]
    pub await_status: Option<TransactionStatus>,
}

#[derive(Debug, Args)]
pub struct DeadEvents {
    #[arg(long, default_value_t = 50)]
    pub page_size: i32,
}

#[derive(Debug, Args)]
pub struct Token {
    /// The token's subject
    #[arg(long)]
    pub user: String,
    /// A service token ("role": "service"): acts for any user, may call PaymentsAdmin
    #[arg(long)]
    pub service: bool,
}

#[derive(Debug, Args)]
pub struct Demo {
    /// stripe-sim's base URL (its test endpoints complete 3DS)
    #[arg(long, value_name = "URL")]
    pub sim: String,
}

#[derive(Debug, Args)]
pub struct Completions {
    pub shell: clap_complete::Shell,
}

/// `--await`'s values: the contract's statuses by their short names (`requires_action`),
/// listed from the generated enum so that they are never a copy of it.
fn status_parser() -> impl TypedValueParser<Value = TransactionStatus> {
    let names: Vec<String> = (1..)
        .map_while(|n| TransactionStatus::try_from(n).ok())
        .map(|status| output::status_name(status as i32).to_lowercase())
        .collect();
    PossibleValuesParser::new(names).try_map(|name| {
        TransactionStatus::from_str_name(&format!("TRANSACTION_STATUS_{}", name.to_uppercase()))
            .ok_or("not a transaction status")
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_help() {
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            assert!(sub.get_about().is_some(), "{name} has no description");
            let help = Cli::try_parse_from(["payments-cli", name, "--help"]).expect_err("help");
            assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp, "{name}");
        }
    }

    #[test]
    fn unknown_flags_and_missing_values_are_errors() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace()).map(|_| ());
        use clap::error::ErrorKind::*;
        let kind = |line| parse(line).expect_err(line).kind();
        assert_eq!(
            kind("payments-cli pay --user u --pm p --amout 5"),
            UnknownArgument
        );
        assert_eq!(
            kind("payments-cli pay --user u --pm p --amount"),
            InvalidValue
        );
        assert_eq!(
            kind("payments-cli pay --user u --pm p"),
            MissingRequiredArgument
        );
        assert_eq!(kind("payments-cli watch id --await settled"), InvalidValue);
        assert!(parse("payments-cli pay --user u --pm p --amount 5 --key k --json").is_ok());
    }

    #[test]
    fn await_takes_every_status_of_the_contract_by_its_short_name() {
        let awaited =
            |name: &str| match Cli::try_parse_from(["payments-cli", "watch", "t", "--await", name])
            {
                Ok(Cli {
                    command: Command::Watch(w),
                    ..
                }) => w.await_status,
                other => panic!("{name}: {other:?}"),
            };
        assert_eq!(
            awaited("requires_action"),
            Some(TransactionStatus::RequiresAction)
        );
        assert_eq!(awaited("refunded"), Some(TransactionStatus::Refunded));
        let help = Cli::try_parse_from(["payments-cli", "watch", "--help"]).expect_err("help");
        assert!(
            help.to_string()
                .contains("created, pending, requires_action"),
            "{help}"
        );
    }
}
