//! The benchmark's sizes, read once from flags (which win) and `BENCH_*` variables
//! (clap). `--quick` shrinks everything to a two-minute smoke run.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{
    CommandFactory, FromArgMatches, Parser, ValueEnum, builder::BoolishValueParser,
    error::ErrorKind,
};

/// The command line; each option can also come from `BENCH_<NAME>` (the flag wins).
/// Sizes left unset take the full run's or `--quick`'s default in [`Settings::from_args`].
#[derive(Debug, Parser)]
#[command(
    name = "payments-bench",
    about = "Benchmarks the real services (built in release mode, started as processes) against a \
             fresh database on the local PostgreSQL, and writes BENCHMARKS.md.",
    override_usage = "cargo run --release -p payments-bench -- [--quick] [OPTIONS]",
    after_help = "Every option can also be given as BENCH_<NAME> (e.g. BENCH_WATCHERS=2000)."
)]
struct Flags {
    /// A smoke run of about two minutes (one run per figure, small sizes); writes
    /// target/bench/BENCHMARKS-quick.md unless --output is given
    #[arg(long, env = "BENCH_QUICK", value_parser = BoolishValueParser::new())]
    quick: bool,
    /// Repetitions per figure; the report shows medians [default: 3; --quick: 1]
    #[arg(long, env = "BENCH_RUNS", value_name = "N")]
    runs: Option<usize>,
    /// Phases to run [default: all]
    #[arg(long, env = "BENCH_ONLY", value_name = "LIST", value_delimiter = ',')]
    only: Vec<Phase>,
    /// Concurrent webhook senders [default: 1,4,16,64; --quick: 1,16]
    #[arg(
        long,
        env = "BENCH_SENDERS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    senders: Vec<usize>,
    /// Measured seconds per ingest / pgbench run [default: 8; --quick: 3]
    #[arg(long, env = "BENCH_INGEST_SECS", value_name = "S", value_parser = seconds)]
    ingest_secs: Option<Duration>,
    /// Senders (and pgbench clients) of the side-by-side run against the fixed bar
    /// (bench/anchor/) [default: 1,4,16,64, also with --quick]
    #[arg(
        long,
        env = "BENCH_ANCHOR_SENDERS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    anchor_senders: Vec<usize>,
    /// pgbench clients of the candidate designs and the anchor beside them [default: 16]
    #[arg(
        long,
        env = "BENCH_DESIGN_CLIENTS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    design_clients: Vec<usize>,
    /// Events per database transaction for the group-commit bound [default: 4,16; --quick: 8]
    #[arg(
        long,
        env = "BENCH_BATCH_SIZES",
        value_name = "LIST",
        value_delimiter = ','
    )]
    batch_sizes: Vec<usize>,
    /// pgbench clients for the group-commit runs
    #[arg(
        long,
        env = "BENCH_BATCH_CLIENTS",
        value_name = "N",
        default_value_t = 16
    )]
    batch_clients: usize,
    /// Concurrent WatchTransaction streams [default: 10000; --quick: 2000]
    #[arg(long, env = "BENCH_WATCHERS", value_name = "N")]
    watchers: Option<usize>,
    /// Transaction changes per second during the watch
    #[arg(
        long,
        env = "BENCH_CHANGE_RATE",
        value_name = "R",
        default_value_t = 500.0
    )]
    change_rate: f64,
    /// Measured seconds of changes per watch run [default: 15; --quick: 5]
    #[arg(long, env = "BENCH_WATCH_SECS", value_name = "S", value_parser = seconds)]
    watch_secs: Option<Duration>,
    /// Measured seconds per scaling point [default: 10; --quick: 4]
    #[arg(long, env = "BENCH_SCALING_SECS", value_name = "S", value_parser = seconds)]
    scaling_secs: Option<Duration>,
    /// HTTP/2 connections the streams are spread over
    #[arg(long, env = "BENCH_CHANNELS", value_name = "N", default_value_t = 50)]
    channels: usize,
    /// The polling baseline's interval
    #[arg(
        long,
        env = "BENCH_POLL_INTERVAL_MS",
        value_name = "MS",
        default_value_t = 500
    )]
    poll_interval_ms: u64,
    /// The polling baseline's connection pool
    #[arg(long, env = "BENCH_POLL_POOL", value_name = "N", default_value_t = 20)]
    poll_pool: u32,
    /// WATCHERS@RATE points for the watch curves: streams doubling at a fixed rate, then
    /// the rate doubling at a fixed number of streams [default:
    /// 1250@250,2500@250,5000@250,10000@250,10000@125,10000@500,10000@1000; --quick:
    /// 500@125,1000@125,1000@250]
    #[arg(long, env = "BENCH_SCALING", value_name = "LIST", value_delimiter = ',', value_parser = parse_point)]
    scaling: Vec<(usize, f64)>,
    /// Concurrent users in the end-to-end flow
    #[arg(long, env = "BENCH_E2E_USERS", value_name = "N", default_value_t = 50)]
    e2e_users: usize,
    /// Measured seconds of the end-to-end flow [default: 10; --quick: 4]
    #[arg(long, env = "BENCH_E2E_SECS", value_name = "S", value_parser = seconds)]
    e2e_secs: Option<Duration>,
    /// One more end-to-end run with stripe-sim answering this late (a realistic Stripe
    /// latency; 0 skips it)
    #[arg(
        long,
        env = "BENCH_STRIPE_LATENCY_MS",
        value_name = "MS",
        default_value_t = 300
    )]
    stripe_latency_ms: u64,
    /// INGESTOR_DB_MAX_CONNECTIONS (10 is the service default)
    #[arg(
        long,
        env = "BENCH_INGESTOR_POOL",
        value_name = "N",
        default_value_t = 10
    )]
    ingestor_pool: u32,
    /// PAYMENTS_DB_MAX_CONNECTIONS (10 is the service default)
    #[arg(long, env = "BENCH_API_POOL", value_name = "N", default_value_t = 10)]
    api_pool: u32,
    /// RUST_LOG of the services (info is their default)
    #[arg(
        long,
        env = "BENCH_SERVICE_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    service_log: String,
    /// Server to create the benchmark database on [default: $DATABASE_URL or
    /// postgres://postgres@127.0.0.1:5432/postgres]
    #[arg(long, env = "BENCH_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Where to write the report [default: BENCHMARKS.md]
    #[arg(long, env = "BENCH_OUTPUT", value_name = "PATH")]
    output: Option<PathBuf>,
    /// Write the report from a saved target/bench/results.json instead of measuring (give
    /// the same sizes as the run that saved it)
    #[arg(long, env = "BENCH_RENDER", value_name = "PATH")]
    render: Option<PathBuf>,
    /// Do not run cargo build --release for the services first
    #[arg(long, env = "BENCH_NO_BUILD", value_parser = BoolishValueParser::new())]
    no_build: bool,
    /// Keep the benchmark database afterwards
    #[arg(long, env = "BENCH_KEEP_DB", value_parser = BoolishValueParser::new())]
    keep_db: bool,
}

/// The command line, where a `BENCH_*` variable that is empty (or blank) counts as unset.
fn command() -> clap::Command {
    let mut command = Flags::command();
    // The derived arguments are added when the command is built.
    command.build();
    command.mut_args(|arg| {
        let blank = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.to_string_lossy().trim().is_empty());
        if blank { arg.env(None) } else { arg }
    })
}

/// The help text (`--help`).
pub fn help() -> String {
    command().render_help().to_string()
}

/// What the run measures and how big it is.
#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub runs: usize,
    pub phases: Vec<Phase>,
    pub senders: Vec<usize>,
    pub anchor_senders: Vec<usize>,
    pub design_clients: Vec<usize>,
    pub ingest_secs: Duration,
    pub batch_sizes: Vec<usize>,
    pub batch_clients: usize,
    pub watchers: usize,
    pub change_rate: f64,
    pub watch_secs: Duration,
    pub channels: usize,
    pub poll_interval: Duration,
    pub poll_pool: u32,
    /// (watchers, changes per second) points of the watch scaling curve.
    pub scaling: Vec<(usize, f64)>,
    pub scaling_secs: Duration,
    pub e2e_users: usize,
    pub e2e_secs: Duration,
    pub stripe_latency_ms: u64,
    pub ingestor_pool: u32,
    pub api_pool: u32,
    pub service_log: String,
    pub database_url: String,
    pub output: PathBuf,
    pub build: bool,
    pub keep_db: bool,
    pub render: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// The ingestor side by side with the fixed bar (bench/anchor/), with per-event work.
    Anchor,
    /// Candidate per-event transactions as pgbench scripts against the real schema.
    Designs,
    Ingest,
    Watch,
    E2e,
    Scaling,
}

impl Settings {
    /// `Ok(None)` when help was asked for. A malformed command line is a
    /// [`clap::Error`] (print it with `exit()`).
    pub fn from_args(
        args: impl Iterator<Item = String>,
        root: &std::path::Path,
    ) -> anyhow::Result<Option<Settings>> {
        let parsed = command()
            .try_get_matches_from(std::iter::once("payments-bench".to_owned()).chain(args))
            .and_then(|matches| Flags::from_arg_matches(&matches));
        let flags = match parsed {
            Ok(flags) => flags,
            Err(e) if e.kind() == ErrorKind::DisplayHelp => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let quick = flags.quick;
        let pick =
            |full: f64, smoke: f64| Duration::from_secs_f64(if quick { smoke } else { full });
        let or = |given: Vec<usize>, full: &[usize], smoke: &[usize]| {
            if !given.is_empty() {
                given
            } else if quick {
                smoke.to_vec()
            } else {
                full.to_vec()
            }
        };
        let scaling = if !flags.scaling.is_empty() {
            flags.scaling
        } else if quick {
            vec![(500, 125.0), (1_000, 125.0), (1_000, 250.0)]
        } else {
            vec![
                (1_250, 250.0),
                (2_500, 250.0),
                (5_000, 250.0),
                (10_000, 250.0),
                (10_000, 125.0),
                (10_000, 500.0),
                (10_000, 1_000.0),
            ]
        };
        let phases = if flags.only.is_empty() {
            vec![
                Phase::Anchor,
                Phase::Designs,
                Phase::Ingest,
                Phase::Watch,
                Phase::E2e,
                Phase::Scaling,
            ]
        } else {
            flags.only
        };
        let default_output = if quick {
            root.join("target/bench/BENCHMARKS-quick.md")
        } else {
            root.join("BENCHMARKS.md")
        };
        let settings = Settings {
            quick,
            runs: flags.runs.unwrap_or(if quick { 1 } else { 3 }),
            phases,
            senders: or(flags.senders, &[1, 4, 16, 64], &[1, 16]),
            anchor_senders: or(flags.anchor_senders, &[1, 4, 16, 64], &[1, 4, 16, 64]),
            design_clients: or(flags.design_clients, &[16], &[16]),
            ingest_secs: flags.ingest_secs.unwrap_or(pick(8.0, 3.0)),
            batch_sizes: or(flags.batch_sizes, &[4, 16], &[8]),
            batch_clients: flags.batch_clients,
            watchers: flags.watchers.unwrap_or(if quick { 2_000 } else { 10_000 }),
            change_rate: flags.change_rate,
            watch_secs: flags.watch_secs.unwrap_or(pick(15.0, 5.0)),
            channels: flags.channels,
            poll_interval: Duration::from_millis(flags.poll_interval_ms),
            poll_pool: flags.poll_pool,
            scaling,
            scaling_secs: flags.scaling_secs.unwrap_or(pick(10.0, 4.0)),
            e2e_users: flags.e2e_users,
            e2e_secs: flags.e2e_secs.unwrap_or(pick(10.0, 4.0)),
            stripe_latency_ms: flags.stripe_latency_ms,
            ingestor_pool: flags.ingestor_pool,
            api_pool: flags.api_pool,
            service_log: flags.service_log,
            database_url: flags
                .database_url
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            output: flags.output.unwrap_or(default_output),
            build: !flags.no_build,
            keep_db: flags.keep_db,
            render: flags.render,
        };
        settings.check()?;
        Ok(Some(settings))
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.runs == 0 || self.channels == 0 || self.watchers == 0 || self.e2e_users == 0 {
            bail!("--runs, --channels, --watchers and --e2e-users must be positive");
        }
        if self.senders.contains(&0)
            || self.anchor_senders.contains(&0)
            || self.design_clients.contains(&0)
            || self.batch_sizes.contains(&0)
            || self.batch_clients == 0
        {
            bail!("sender counts and batch sizes must be positive");
        }
        let positive = |r: f64| r > 0.0 && r.is_finite();
        if !positive(self.change_rate) || self.scaling.iter().any(|(w, r)| *w == 0 || !positive(*r))
        {
            bail!("change rates and watcher counts must be positive");
        }
        Ok(())
    }

    pub fn runs_phase(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

/// Seconds, fractions allowed.
fn seconds(raw: &str) -> Result<Duration, String> {
    let secs: f64 = raw.trim().parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{secs} seconds: {e}"))
}

/// `10000@500`: watchers at changes per second.
fn parse_point(raw: &str) -> anyhow::Result<(usize, f64)> {
    let (w, r) = raw
        .trim()
        .split_once('@')
        .with_context(|| format!("{raw:?} is not WATCHERS@RATE"))?;
    let w = w.parse().with_context(|| format!("{w:?}"))?;
    let r = r.parse().with_context(|| format!("{r:?}"))?;
    Ok((w, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Settings {
        let args = line.split_whitespace().map(str::to_owned);
        Settings::from_args(args, std::path::Path::new("/repo"))
            .expect("valid")
            .expect("not help")
    }

    #[test]
    fn quick_mode_shrinks_the_run_and_writes_elsewhere() {
        let s = parse("--quick");
        assert_eq!((s.runs, s.senders.clone()), (1, vec![1, 16]));
        assert_eq!(
            s.output,
            PathBuf::from("/repo/target/bench/BENCHMARKS-quick.md")
        );
        let full = parse("");
        assert_eq!(full.watchers, 10_000);
        assert_eq!(full.output, PathBuf::from("/repo/BENCHMARKS.md"));
    }

    #[test]
    fn flags_override_and_lists_parse() {
        let s = parse(
            "--senders 2,8 --scaling=100@10,200@20 --only ingest --no-build --anchor-senders 4",
        );
        assert_eq!(s.senders, vec![2, 8]);
        assert_eq!(s.anchor_senders, vec![4]);
        let anchor = parse("--quick --only anchor,designs");
        assert_eq!(anchor.phases, vec![Phase::Anchor, Phase::Designs]);
        assert_eq!(anchor.anchor_senders, vec![1, 4, 16, 64]);
        assert_eq!(s.scaling, vec![(100, 10.0), (200, 20.0)]);
        assert_eq!(s.phases, vec![Phase::Ingest]);
        assert!(!s.build);
    }

    #[test]
    fn help_names_every_option_and_its_variable() {
        let help = help();
        for name in [
            "--quick",
            "--watchers",
            "BENCH_WATCHERS",
            "--scaling",
            "--keep-db",
        ] {
            assert!(help.contains(name), "{name} missing from:\n{help}");
        }
        let root = std::path::Path::new("/repo");
        let asked = Settings::from_args(["--help".to_owned()].into_iter(), root);
        assert!(matches!(asked, Ok(None)));
    }

    #[test]
    fn bad_values_are_refused() {
        let root = std::path::Path::new("/repo");
        let bad = |line: &str| {
            Settings::from_args(line.split_whitespace().map(str::to_owned), root).is_err()
        };
        assert!(bad("--senders 0"));
        assert!(bad("--watchers x"));
        assert!(bad("--only everything"));
        assert!(bad("stray"));
        assert!(bad("--runs"));
    }
}
