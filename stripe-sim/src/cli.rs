//! The binary's flags (clap), each also readable from `STRIPE_SIM_<NAME>` (the flag wins;
//! lists in the environment are comma-separated). Parsing is a pure function of the
//! arguments and an environment lookup, so tests never touch the process environment:
//! a variable is read only for a flag not on the command line, and handed to clap as
//! if it had been given, so both are checked by the same parsers.

use std::{net::SocketAddr, time::Duration};

use clap::{
    ArgAction, CommandFactory, FromArgMatches, Parser, error::ErrorKind, parser::ValueSource,
};

use crate::config::{Config, WebhookSecret};

/// The command line. Unset values keep [`Config::for_binary`]'s defaults. The flag
/// names are spelt out: `STRIPE_SIM_<FLAG>` is derived from them, and the deployment
/// checks look for them.
#[derive(Debug, Parser)]
#[command(
    name = "stripe-sim",
    about = "A stateful local Stripe for tests, benchmarks and demos",
    after_help = "Each flag can also be read from STRIPE_SIM_<FLAG> (STRIPE_SIM_ADDR, \
                  STRIPE_SIM_WEBHOOK_URL, …); a flag wins, and lists in the environment are \
                  comma-separated."
)]
struct Flags {
    /// Listen address [default: 127.0.0.1:12111]
    #[arg(long = "addr", value_name = "ADDR")]
    addr: Option<SocketAddr>,
    /// A webhook endpoint; repeat for more
    #[arg(long = "webhook-url", value_name = "URL")]
    webhook_url: Vec<String>,
    /// A signing secret; repeat for more (a random whsec_ is generated and printed when
    /// none is given)
    #[arg(long = "webhook-secret", value_name = "SECRET")]
    webhook_secret: Vec<String>,
    /// Seed for ids and chaos [default: random]
    #[arg(long = "seed", value_name = "N")]
    seed: Option<u64>,
    /// 0..1: deliver an event twice [default: 0]
    #[arg(long = "duplicate-rate", value_name = "R")]
    duplicate_rate: Option<f64>,
    /// 0..1: never deliver an event [default: 0]
    #[arg(long = "drop-rate", value_name = "R")]
    drop_rate: Option<f64>,
    /// Random hold per delivery [default: 0]
    #[arg(long = "reorder-window-ms", value_name = "MS", value_parser = millis)]
    reorder_window_ms: Option<Duration>,
    /// Fixed hold per delivery [default: 0]
    #[arg(long = "delay-ms", value_name = "MS", value_parser = millis)]
    delay_ms: Option<Duration>,
    /// Waits between delivery attempts [default: 1000 doubling, 10 attempts]
    #[arg(long = "retry-schedule-ms", value_name = "A,B,..", value_parser = schedule)]
    retry_schedule_ms: Option<Schedule>,
    /// Per-attempt timeout of a delivery [default: 10000]
    #[arg(long = "webhook-timeout-ms", value_name = "MS", value_parser = millis)]
    webhook_timeout_ms: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Schedule(Vec<Duration>);

/// The help text (`--help`).
pub fn help() -> String {
    Flags::command().render_help().to_string()
}

/// What the binary should do.
#[derive(Debug, Clone)]
pub enum Command {
    Run(Config),
    Help,
}

/// What is wrong with the arguments and environment: clap's message for a malformed
/// command line, or every configuration problem at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct CliError(pub Vec<String>);

/// Parses `args` (without the program name), falling back to `env("STRIPE_SIM_…")`.
pub fn parse<I, E>(args: I, env: E) -> Result<Command, CliError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let args: Vec<String> = args.into_iter().collect();
    let usage = |e: clap::Error| CliError(vec![e.render().to_string().trim_end().to_owned()]);
    let given = match matches(args.clone()) {
        Ok(given) => given,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => return Ok(Command::Help),
        Err(e) => return Err(usage(e)),
    };
    let mut command = Flags::command();
    command.build();
    let mut from_env = Vec::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help"
            || given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        {
            continue;
        }
        let Some(value) = env(&format!(
            "STRIPE_SIM_{}",
            long.to_uppercase().replace('-', "_")
        )) else {
            continue;
        };
        let values: Vec<&str> = if matches!(arg.get_action(), ArgAction::Append) {
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect()
        } else {
            vec![value.as_str()]
        };
        from_env.extend(values.into_iter().map(|v| format!("--{long}={v}")));
    }
    let flags = matches(from_env.into_iter().chain(args).collect())
        .and_then(|all| Flags::from_arg_matches(&all))
        .map_err(usage)?;
    let config = flags.config();
    config.validate().map_err(|error| CliError(error.0))?;
    Ok(Command::Run(config))
}

fn matches(args: Vec<String>) -> Result<clap::ArgMatches, clap::Error> {
    Flags::command().try_get_matches_from(std::iter::once("stripe-sim".to_owned()).chain(args))
}

impl Flags {
    fn config(self) -> Config {
        let mut config = Config::for_binary();
        if let Some(addr) = self.addr {
            config.bind = addr;
        }
        config.seed = self.seed.or(config.seed);
        if let Some(rate) = self.duplicate_rate {
            config.chaos.duplicate_rate = rate;
        }
        if let Some(rate) = self.drop_rate {
            config.chaos.drop_rate = rate;
        }
        if let Some(window) = self.reorder_window_ms {
            config.chaos.reorder_window = window;
        }
        if let Some(delay) = self.delay_ms {
            config.chaos.delay = delay;
        }
        if let Some(Schedule(schedule)) = self.retry_schedule_ms {
            config.retry_schedule = schedule;
        }
        if let Some(timeout) = self.webhook_timeout_ms {
            config.webhook_timeout = timeout;
        }
        config.webhook_urls = self.webhook_url;
        config.webhook_secrets = self
            .webhook_secret
            .into_iter()
            .map(WebhookSecret::new)
            .collect();
        config
    }
}

fn millis(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("{e}"))
}

fn schedule(value: &str) -> Result<Schedule, String> {
    value
        .split(',')
        .map(millis)
        .collect::<Result<_, _>>()
        .map(Schedule)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, CliError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(args.iter().map(|a| (*a).to_owned()), |name| {
            env.get(name).cloned()
        })
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match run(args, env) {
            Ok(Command::Run(config)) => config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_listen_on_12111() {
        assert_eq!(config(&[], &[]).bind.to_string(), "127.0.0.1:12111");
    }

    #[test]
    fn flags_win_over_the_environment() {
        let config = config(
            &["--seed", "7", "--webhook-url=http://a/x"],
            &[
                ("STRIPE_SIM_SEED", "9"),
                ("STRIPE_SIM_WEBHOOK_URL", "http://b/1,http://c/2"),
                ("STRIPE_SIM_DROP_RATE", "0.5"),
            ],
        );
        assert_eq!(config.seed, Some(7));
        assert_eq!(config.webhook_urls, ["http://a/x"]);
        assert_eq!(config.chaos.drop_rate, 0.5);
    }

    #[test]
    fn lists_in_the_environment_are_comma_separated() {
        let config = config(&[], &[("STRIPE_SIM_WEBHOOK_SECRET", "whsec_a, whsec_b")]);
        let secrets: Vec<&str> = config
            .webhook_secrets
            .iter()
            .map(WebhookSecret::expose)
            .collect();
        assert_eq!(secrets, ["whsec_a", "whsec_b"]);
    }

    #[test]
    fn repeated_flags_accumulate() {
        let config = config(
            &[
                "--webhook-secret",
                "whsec_1",
                "--webhook-secret",
                "whsec_2",
                "--delay-ms",
                "25",
            ],
            &[],
        );
        assert_eq!(config.webhook_secrets.len(), 2);
        assert_eq!(config.chaos.delay, Duration::from_millis(25));
    }

    #[test]
    fn a_malformed_command_line_is_refused_with_clap_s_message() {
        for (args, names) in [
            (&["--bogus=1"][..], "--bogus"),
            (&["--addr"][..], "--addr"),
            (&["--seed", "x"][..], "--seed"),
            (&["--seed", "1", "--seed", "2"][..], "--seed"),
        ] {
            let error = run(args, &[]).expect_err("invalid");
            assert!(error.to_string().contains(names), "{args:?}: {error}");
        }
        let from_env = run(&[], &[("STRIPE_SIM_DROP_RATE", "lots")]).expect_err("invalid");
        assert!(from_env.to_string().contains("--drop-rate"), "{from_env}");
    }

    #[test]
    fn every_configuration_problem_is_reported_at_once() {
        let error = run(
            &[
                "--drop-rate",
                "3",
                "--duplicate-rate",
                "2",
                "--webhook-url",
                "ftp://x",
            ],
            &[],
        )
        .expect_err("invalid");
        assert_eq!(error.0.len(), 3, "{error}");
    }

    #[test]
    fn help_is_a_command() {
        assert!(matches!(run(&["--help"], &[]), Ok(Command::Help)));
    }
}
