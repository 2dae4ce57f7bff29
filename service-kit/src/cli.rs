//! The command line both services take, `serve` (the default) or `migrate`, and what
//! each does. Their settings come from the environment, never from flags.

use std::future::Future;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::env::FromEnv;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Subcommand)]
pub enum Command {
    /// Serve until SIGTERM or SIGINT (the default)
    #[default]
    Serve,
    /// Apply the database migrations and exit (reads only DATABASE_URL)
    Migrate,
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// The command given to the process `name`; `--help` describes it with `about`. A
/// wrong command line prints clap's message and exits with status 2.
pub fn command(name: &'static str, about: &'static str) -> Command {
    parse(name, about, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

fn parse(
    name: &'static str,
    about: &'static str,
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<Command, clap::Error> {
    let matches = Cli::command()
        .name(name)
        .about(about)
        .try_get_matches_from(args)?;
    Ok(Cli::from_arg_matches(&matches)?.command.unwrap_or_default())
}

/// Runs `command`. `serve` reads the configuration `C` from the environment (its
/// problems printed and the process ended with status 2 when it cannot) and calls
/// `serve` with a token that SIGTERM or SIGINT cancels. `migrate` calls `migrate` with
/// `DATABASE_URL` and reads nothing else, so it runs with the schema owner's URL alone.
pub async fn run<C, S, M, E>(
    command: Command,
    serve: impl FnOnce(C, CancellationToken) -> S,
    migrate: impl FnOnce(String) -> M,
) -> anyhow::Result<()>
where
    C: FromEnv,
    S: Future<Output = anyhow::Result<()>>,
    M: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    match command {
        Command::Serve => {
            let config = C::from_env().unwrap_or_else(|e| e.exit());
            serve(config, crate::shutdown_on_signal()).await
        }
        Command::Migrate => {
            let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
            migrate(url).await.context("applying migrations")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Command, clap::Error> {
        parse("svc", "A service.", args.iter().copied())
    }

    #[test]
    fn serve_is_the_default_and_migrate_is_the_other_command() {
        assert_eq!(parsed(&["svc"]).ok(), Some(Command::Serve));
        assert_eq!(parsed(&["svc", "serve"]).ok(), Some(Command::Serve));
        assert_eq!(parsed(&["svc", "migrate"]).ok(), Some(Command::Migrate));
        let wrong = parsed(&["svc", "migrat"]).expect_err("unknown");
        assert_eq!(wrong.exit_code(), 2);
        let help = parsed(&["svc", "--help"]).expect_err("help").to_string();
        assert!(help.contains("A service."), "{help}");
    }
}
