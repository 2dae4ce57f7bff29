//! Hand-rolled argument parsing: a handful of commands with `--name value` options.

use std::collections::HashMap;

pub const HELP: &str = "\
usage: payments-cli [--api URL] [--admin URL] [--token JWT | --jwt-secret SECRET] COMMAND [OPTIONS]

Connection (also from the environment):
  --api URL            payments-api address       PAYMENTS_API_URL   (http://127.0.0.1:50051)
  --admin URL          its admin port             PAYMENTS_ADMIN_URL (http://127.0.0.1:50052)
  --token JWT          bearer token to send       PAYMENTS_TOKEN
  --jwt-secret SECRET  mint tokens (development)  PAYMENTS_JWT_SECRET

Commands:
  token --user U [--service]                      print a development token
  attach --user U --pm PM                         attach a card (pm_… or a test token)
  cards --user U                                  list the user's cards
  pay --user U --pm PM --amount N [--currency C] [--key K]
  coupon --user U --code CODE [--key K]
  validate --user U --pm PM
  trial --user U --pm PM
  get TRANSACTION_ID
  list --user U [--page-size N] [--page-token T]
  watch TRANSACTION_ID [--await STATUS]           stream changes until settled
  wallet --user U
  dead-events [--page-size N]                     (service token)
  replay EVENT_ID                                 (service token)
  reconcile TRANSACTION_ID                        (service token)
  ledger-check                                    (service token)
  demo --sim URL                                  scripted demo against stripe-sim
";

#[derive(Debug)]
pub struct Parsed {
    pub api: String,
    /// PaymentsAdmin's address (the operators' port).
    pub admin: String,
    pub token: Option<String>,
    pub jwt_secret: Option<String>,
    pub command: String,
    pub positional: Vec<String>,
    pub options: HashMap<String, String>,
    pub flags: Vec<String>,
}

impl Parsed {
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    pub fn required(&self, name: &str) -> anyhow::Result<&str> {
        self.opt(name)
            .ok_or_else(|| anyhow::anyhow!("{} needs --{name}", self.command))
    }

    pub fn first(&self, what: &str) -> anyhow::Result<&str> {
        self.positional
            .first()
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("{} needs {what}", self.command))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

const FLAGS: &[&str] = &["service", "help"];

pub fn parse(args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut options = HashMap::new();
    let mut flags = Vec::new();
    let mut positional = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--") {
            Some(name) if FLAGS.contains(&name) => flags.push(name.to_owned()),
            Some(name) => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                options.insert(name.to_owned(), value);
            }
            None => positional.push(arg),
        }
    }
    if flags.iter().any(|f| f == "help") || positional.is_empty() {
        return Err("no command given".into());
    }
    let command = positional.remove(0);
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Ok(Parsed {
        api: options
            .remove("api")
            .or_else(|| env("PAYMENTS_API_URL"))
            .unwrap_or_else(|| "http://127.0.0.1:50051".into()),
        admin: options
            .remove("admin")
            .or_else(|| env("PAYMENTS_ADMIN_URL"))
            .unwrap_or_else(|| "http://127.0.0.1:50052".into()),
        token: options.remove("token").or_else(|| env("PAYMENTS_TOKEN")),
        jwt_secret: options
            .remove("jwt-secret")
            .or_else(|| env("PAYMENTS_JWT_SECRET")),
        command,
        positional,
        options,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn options_flags_and_positionals_are_separated() {
        let p = parse(args("--api http://x:1 watch abc --await succeeded")).expect("parses");
        assert_eq!(p.api, "http://x:1");
        assert_eq!(p.command, "watch");
        assert_eq!(p.positional, vec!["abc"]);
        assert_eq!(p.opt("await"), Some("succeeded"));
        let p = parse(args("token --user u --service")).expect("parses");
        assert!(p.flag("service"));
    }

    #[test]
    fn an_option_without_value_or_no_command_is_an_error() {
        assert!(parse(args("pay --amount")).is_err());
        assert!(parse(args("")).is_err());
    }
}
