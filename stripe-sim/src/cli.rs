//! The binary's flags, each also readable from `STRIPE_SIM_<NAME>` (the flag wins; lists in the
//! environment are comma-separated). Parsing is a pure function of the arguments and an
//! environment lookup, so tests never touch the process environment.

use std::time::Duration;

use crate::config::{Config, WebhookSecret};

pub const HELP: &str = "\
stripe-sim: a stateful local Stripe for tests, benchmarks and demos

USAGE: stripe-sim [OPTIONS]

OPTIONS (each also read from the environment variable shown; a flag wins):
  --addr ADDR                 listen address            STRIPE_SIM_ADDR            [127.0.0.1:12111]
  --webhook-url URL           webhook endpoint, repeat  STRIPE_SIM_WEBHOOK_URL     (comma-separated)
  --webhook-secret SECRET     signing secret, repeat    STRIPE_SIM_WEBHOOK_SECRET  (comma-separated;
                              a random whsec_ is generated and printed when none is given)
  --seed N                    seed for ids and chaos    STRIPE_SIM_SEED            [random]
  --duplicate-rate R          0..1, deliver twice       STRIPE_SIM_DUPLICATE_RATE  [0]
  --drop-rate R               0..1, never deliver       STRIPE_SIM_DROP_RATE       [0]
  --reorder-window-ms MS      random hold per delivery  STRIPE_SIM_REORDER_WINDOW_MS [0]
  --delay-ms MS               fixed hold per delivery   STRIPE_SIM_DELAY_MS        [0]
  --retry-schedule-ms A,B,..  waits between attempts    STRIPE_SIM_RETRY_SCHEDULE_MS [1000 doubling, 10 attempts]
  --webhook-timeout-ms MS     per-attempt timeout       STRIPE_SIM_WEBHOOK_TIMEOUT_MS [10000]
  --livemode true|false       accept sk_live_ keys      STRIPE_SIM_LIVEMODE        [false]
                              (a live-mode account: its objects and events say livemode: true)
  -h, --help                  print this help
";

/// What the binary should do.
#[derive(Debug, Clone)]
pub enum Command {
    Run(Config),
    Help,
}

/// Every problem found in the arguments and environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct CliError(pub Vec<String>);

const FLAGS: &[&str] = &[
    "addr",
    "webhook-url",
    "webhook-secret",
    "seed",
    "duplicate-rate",
    "drop-rate",
    "reorder-window-ms",
    "delay-ms",
    "retry-schedule-ms",
    "webhook-timeout-ms",
    "livemode",
];

/// Parses `args` (without the program name), falling back to `env("STRIPE_SIM_…")`.
pub fn parse<I, E>(args: I, env: E) -> Result<Command, CliError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let mut problems = Vec::new();
    let mut given: Vec<(String, String)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            problems.push(format!("unexpected argument {arg:?}"));
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag.to_owned(), None),
        };
        if !FLAGS.contains(&name.as_str()) {
            problems.push(format!("unknown flag --{name}"));
            continue;
        }
        match inline.or_else(|| args.next()) {
            Some(value) => given.push((name, value)),
            None => problems.push(format!("--{name} needs a value")),
        }
    }
    // Flag values, else the environment's (split on commas for the repeatable ones).
    let values = |name: &str, repeatable: bool| -> Vec<String> {
        let from_flags: Vec<String> = given
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect();
        if !from_flags.is_empty() {
            return from_flags;
        }
        let variable = format!("STRIPE_SIM_{}", name.to_uppercase().replace('-', "_"));
        match env(&variable) {
            Some(value) if repeatable => value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(value) => vec![value],
            None => Vec::new(),
        }
    };
    let mut config = Config::for_binary();
    let mut single = |name: &str| -> Option<String> {
        let mut found = values(name, false);
        if found.len() > 1 {
            problems.push(format!("--{name} given more than once"));
        }
        found.pop()
    };
    let addr = single("addr");
    let seed = single("seed");
    let duplicate_rate = single("duplicate-rate");
    let drop_rate = single("drop-rate");
    let reorder = single("reorder-window-ms");
    let delay = single("delay-ms");
    let schedule = single("retry-schedule-ms");
    let timeout = single("webhook-timeout-ms");
    let livemode = single("livemode");

    let mut parse_into =
        |name: &str, raw: Option<String>, apply: &mut dyn FnMut(&str) -> Result<(), String>| {
            if let Some(raw) = raw
                && let Err(problem) = apply(&raw)
            {
                problems.push(format!("--{name} {raw:?}: {problem}"));
            }
        };
    parse_into("addr", addr, &mut |v| {
        v.parse()
            .map(|a| config.bind = a)
            .map_err(|e| format!("{e}"))
    });
    parse_into("seed", seed, &mut |v| {
        v.parse()
            .map(|s| config.seed = Some(s))
            .map_err(|e| format!("{e}"))
    });
    parse_into("duplicate-rate", duplicate_rate, &mut |v| {
        v.parse()
            .map(|r| config.chaos.duplicate_rate = r)
            .map_err(|e| format!("{e}"))
    });
    parse_into("drop-rate", drop_rate, &mut |v| {
        v.parse()
            .map(|r| config.chaos.drop_rate = r)
            .map_err(|e| format!("{e}"))
    });
    parse_into("reorder-window-ms", reorder, &mut |v| {
        millis(v).map(|d| config.chaos.reorder_window = d)
    });
    parse_into("delay-ms", delay, &mut |v| {
        millis(v).map(|d| config.chaos.delay = d)
    });
    parse_into("webhook-timeout-ms", timeout, &mut |v| {
        millis(v).map(|d| config.webhook_timeout = d)
    });
    parse_into("livemode", livemode, &mut |v| {
        v.parse()
            .map(|l| config.livemode = l)
            .map_err(|e| format!("{e}"))
    });
    parse_into("retry-schedule-ms", schedule, &mut |v| {
        v.split(',')
            .map(millis)
            .collect::<Result<Vec<_>, _>>()
            .map(|s| config.retry_schedule = s)
    });
    config.webhook_urls = values("webhook-url", true);
    config.webhook_secrets = values("webhook-secret", true)
        .into_iter()
        .map(WebhookSecret::new)
        .collect();
    if let Err(error) = config.validate() {
        problems.extend(error.0);
    }
    if problems.is_empty() {
        Ok(Command::Run(config))
    } else {
        Err(CliError(problems))
    }
}

fn millis(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("{e}"))
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
    fn every_problem_is_reported_at_once() {
        let error = run(
            &["--seed", "x", "--drop-rate", "3", "--bogus=1", "--addr"],
            &[],
        )
        .expect_err("invalid");
        assert_eq!(error.0.len(), 4, "{error}");
    }

    #[test]
    fn livemode_is_off_unless_asked_for() {
        assert!(!config(&[], &[]).livemode);
        assert!(config(&["--livemode", "true"], &[]).livemode);
        assert!(config(&[], &[("STRIPE_SIM_LIVEMODE", "true")]).livemode);
    }

    #[test]
    fn help_is_a_command() {
        assert!(matches!(run(&["--help"], &[]), Ok(Command::Help)));
    }
}
