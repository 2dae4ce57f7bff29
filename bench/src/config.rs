//! The benchmark's sizes, read once from flags (which win) and `BENCH_*` variables.
//! `--quick` shrinks everything to a two-minute smoke run.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::{Context, bail};

pub const HELP: &str = "\
payments-bench: benchmarks the real services (built in release mode, started as processes)
against a fresh database on the local PostgreSQL, and writes BENCHMARKS.md.

usage: cargo run --release -p payments-bench -- [--quick] [options]

  --quick                  a smoke run of about two minutes (one run per figure, small sizes);
                           writes target/bench/BENCHMARKS-quick.md unless --output is given
  --runs N                 repetitions per figure; the report shows medians   [3]
  --only LIST              phases to run: ingest,watch,e2e,scaling           [all]
  --senders LIST           concurrent webhook senders                        [1,4,16,64]
  --ingest-secs S          measured seconds per ingest / pgbench run         [8]
  --batch-sizes LIST       events per database transaction for the group-commit bound [4,16]
  --batch-clients N        pgbench clients for the group-commit runs         [16]
  --watchers N             concurrent WatchTransaction streams              [10000]
  --change-rate R          transaction changes per second during the watch   [500]
  --watch-secs S           measured seconds of changes per watch run         [15]
  --scaling-secs S         measured seconds per scaling point                [10]
  --channels N             HTTP/2 connections the streams are spread over    [50]
  --poll-interval-ms MS    the polling baseline's interval                   [500]
  --poll-pool N            the polling baseline's connection pool            [20]
  --scaling LIST           watchers@rate points for the watch curves: streams doubling at
                           a fixed rate, then the rate doubling at a fixed number of streams
                           [1250@250,2500@250,5000@250,10000@250,10000@125,10000@500,10000@1000]
  --e2e-users N            concurrent users in the end-to-end flow          [50]
  --e2e-secs S             measured seconds of the end-to-end flow          [10]
  --stripe-latency-ms MS   one more end-to-end run with stripe-sim answering this late
                           (a realistic Stripe latency; 0 skips it)          [300]
  --ingestor-pool N        INGESTOR_DB_MAX_CONNECTIONS                      [10, the service default]
  --api-pool N             PAYMENTS_DB_MAX_CONNECTIONS                      [10, the service default]
  --service-log FILTER     RUST_LOG of the services                          [info, their default]
  --database-url URL       server to create the benchmark database on
                           [$DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres]
  --output PATH            where to write the report                        [BENCHMARKS.md]
  --render PATH            write the report from a saved target/bench/results.json instead of
                           measuring (give the same sizes as the run that saved it)
  --no-build               do not run cargo build --release for the services first
  --keep-db                keep the benchmark database afterwards

Every option can also be given as BENCH_<NAME> (e.g. BENCH_WATCHERS=2000).";

/// What the run measures and how big it is.
#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub runs: usize,
    pub phases: Vec<Phase>,
    pub senders: Vec<usize>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Ingest,
    Watch,
    E2e,
    Scaling,
}

impl Phase {
    fn parse(s: &str) -> anyhow::Result<Phase> {
        Ok(match s {
            "ingest" => Phase::Ingest,
            "watch" => Phase::Watch,
            "e2e" => Phase::E2e,
            "scaling" => Phase::Scaling,
            other => bail!("unknown phase {other:?} (ingest, watch, e2e, scaling)"),
        })
    }
}

/// Parsed `--name value` pairs and bare flags; the environment fills what is missing.
struct Args {
    values: HashMap<String, String>,
}

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        const FLAGS: [&str; 4] = ["quick", "no-build", "keep-db", "help"];
        let mut values = HashMap::new();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                bail!("unexpected argument {arg:?}");
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (name.to_owned(), None),
            };
            let value = match (inline, FLAGS.contains(&name.as_str())) {
                (Some(v), _) => v,
                (None, true) => "true".to_owned(),
                (None, false) => args
                    .next()
                    .with_context(|| format!("--{name} needs a value"))?,
            };
            values.insert(name, value);
        }
        Ok(Args { values })
    }

    fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned().or_else(|| {
            let env = format!("BENCH_{}", name.to_uppercase().replace('-', "_"));
            std::env::var(env).ok().filter(|v| !v.trim().is_empty())
        })
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| matches!(v.as_str(), "true" | "1" | "yes"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .ok()
                .with_context(|| format!("--{name}: cannot parse {raw:?}")),
        }
    }

    fn secs(&self, name: &str, default: f64) -> anyhow::Result<Duration> {
        let secs: f64 = self.num(name, default)?;
        Duration::try_from_secs_f64(secs).with_context(|| format!("--{name}: {secs} seconds"))
    }

    fn list<T: std::str::FromStr + Clone>(
        &self,
        name: &str,
        default: &[T],
    ) -> anyhow::Result<Vec<T>> {
        let Some(raw) = self.get(name) else {
            return Ok(default.to_vec());
        };
        raw.split(',')
            .map(|item| {
                item.trim()
                    .parse()
                    .ok()
                    .with_context(|| format!("--{name}: cannot parse {item:?}"))
            })
            .collect()
    }
}

impl Settings {
    /// `Ok(None)` when help was asked for.
    pub fn from_args(
        args: impl Iterator<Item = String>,
        root: &std::path::Path,
    ) -> anyhow::Result<Option<Settings>> {
        let a = Args::parse(args)?;
        if a.flag("help") {
            return Ok(None);
        }
        let quick = a.flag("quick");
        let pick = |full: f64, smoke: f64| if quick { smoke } else { full };
        let scaling_default: &[&str] = if quick {
            &["500@125", "1000@125", "1000@250"]
        } else {
            &[
                "1250@250",
                "2500@250",
                "5000@250",
                "10000@250",
                "10000@125",
                "10000@500",
                "10000@1000",
            ]
        };
        let scaling = match a.get("scaling") {
            Some(raw) => raw.split(',').map(parse_point).collect::<Result<_, _>>()?,
            None => scaling_default
                .iter()
                .map(|p| parse_point(p))
                .collect::<Result<_, _>>()?,
        };
        let phases = match a.get("only") {
            Some(raw) => raw
                .split(',')
                .map(|p| Phase::parse(p.trim()))
                .collect::<Result<_, _>>()?,
            None => vec![Phase::Ingest, Phase::Watch, Phase::E2e, Phase::Scaling],
        };
        let default_output = if quick {
            root.join("target/bench/BENCHMARKS-quick.md")
        } else {
            root.join("BENCHMARKS.md")
        };
        let settings = Settings {
            quick,
            runs: a.num("runs", if quick { 1 } else { 3 })?,
            phases,
            senders: a.list("senders", if quick { &[1, 16] } else { &[1, 4, 16, 64] })?,
            ingest_secs: a.secs("ingest-secs", pick(8.0, 3.0))?,
            batch_sizes: a.list("batch-sizes", if quick { &[8] } else { &[4, 16] })?,
            batch_clients: a.num("batch-clients", 16)?,
            watchers: a.num("watchers", if quick { 2_000 } else { 10_000 })?,
            change_rate: a.num("change-rate", 500.0)?,
            watch_secs: a.secs("watch-secs", pick(15.0, 5.0))?,
            channels: a.num("channels", 50)?,
            poll_interval: Duration::from_millis(a.num("poll-interval-ms", 500)?),
            poll_pool: a.num("poll-pool", 20)?,
            scaling,
            scaling_secs: a.secs("scaling-secs", pick(10.0, 4.0))?,
            e2e_users: a.num("e2e-users", 50)?,
            e2e_secs: a.secs("e2e-secs", pick(10.0, 4.0))?,
            stripe_latency_ms: a.num("stripe-latency-ms", 300)?,
            ingestor_pool: a.num("ingestor-pool", 10)?,
            api_pool: a.num("api-pool", 10)?,
            service_log: a.get("service-log").unwrap_or_else(|| "info".to_owned()),
            database_url: a
                .get("database-url")
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            output: a.get("output").map(PathBuf::from).unwrap_or(default_output),
            build: !a.flag("no-build"),
            keep_db: a.flag("keep-db"),
            render: a.get("render").map(PathBuf::from),
        };
        settings.check()?;
        Ok(Some(settings))
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.runs == 0 || self.channels == 0 || self.watchers == 0 || self.e2e_users == 0 {
            bail!("--runs, --channels, --watchers and --e2e-users must be positive");
        }
        if self.senders.contains(&0) || self.batch_sizes.contains(&0) || self.batch_clients == 0 {
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

/// `10000@500`: watchers at changes per second.
fn parse_point(raw: &str) -> anyhow::Result<(usize, f64)> {
    let (w, r) = raw
        .trim()
        .split_once('@')
        .with_context(|| format!("--scaling: {raw:?} is not WATCHERS@RATE"))?;
    let w = w.parse().with_context(|| format!("--scaling: {w:?}"))?;
    let r = r.parse().with_context(|| format!("--scaling: {r:?}"))?;
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
        let s = parse("--senders 2,8 --scaling=100@10,200@20 --only ingest --no-build");
        assert_eq!(s.senders, vec![2, 8]);
        assert_eq!(s.scaling, vec![(100, 10.0), (200, 20.0)]);
        assert_eq!(s.phases, vec![Phase::Ingest]);
        assert!(!s.build);
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
