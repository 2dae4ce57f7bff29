//! The real services, built in release mode and started as separate processes: stripe-sim,
//! webhook-ingestor and payments-api (the last through the counting proxy). Each child is
//! killed when its handle drops, so an error or Ctrl-C never leaves one behind; the normal
//! path stops them with SIGTERM first.

use std::{
    net::TcpListener as StdListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::{db::DbUrl, proxy::CountingProxy};

pub const WEBHOOK_SECRET: &str = "whsec_bench";
pub const JWT_SECRET: &str = "bench-jwt-secret-not-for-production";

/// Signs the benchmark's tokens with payments-api's secret.
pub fn signing_key() -> payments_client::SigningKey {
    payments_client::SigningKey::hs256(JWT_SECRET)
}
const STRIPE_KEY: &str = "sk_test_bench";
const BINARIES: [&str; 3] = ["payments-api", "webhook-ingestor", "stripe-sim"];

/// `cargo build --release` for the services (a no-op when they are fresh).
pub async fn build(root: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--release"]);
    for bin in BINARIES {
        cmd.args(["-p", bin]);
    }
    let status = cmd.status().await.context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release of the services failed ({status})");
    }
    Ok(())
}

/// Where the release binaries are.
pub fn release_dir(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("release")
}

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackSpec {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub db: DbUrl,
    pub ingestor_pool: u32,
    pub api_pool: u32,
    pub service_log: String,
}

/// One running child process.
pub struct Service {
    name: &'static str,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Service {
    fn spawn(
        spec: &StackSpec,
        name: &'static str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let log = spec.log_dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {log:?}"))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(spec.bin_dir.join(name));
        cmd.args(args)
            .env("RUST_LOG", &spec.service_log)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} from {:?}", spec.bin_dir))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Service {
            name,
            child,
            pid,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until `port` accepts connections, failing early if the process exits.
    async fn ready(&mut self, port: u16) -> anyhow::Result<()> {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before listening; see {:?}",
                    self.name,
                    self.log
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} did not listen on {port} within 30 s", self.name)
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("{} exited ({status}); see {:?}", self.name, self.log),
            None => Ok(()),
        }
    }

    /// SIGTERM, then SIGKILL if it is still running after ten seconds.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A free loopback port (released again; the service binds it a moment later), below
/// the kernel's range of ephemeral ports: a port from that range (what binding port 0
/// gives) can be taken meanwhile as the local end of any outgoing connection, and the
/// service then fails to start.
fn free_port() -> anyhow::Result<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let low = 10_000u16.min(ephemeral_low / 2);
    let span = u32::from(ephemeral_low - low);
    // Start somewhere different each call (the process id and the clock), then walk.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    // Never the same port twice in a run: one handed out may not be bound yet.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for i in 0..span {
        let port = low + ((seed.wrapping_add(i)) % span) as u16;
        if !given.contains(&port) && StdListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The three services and how to reach them.
pub struct Stack {
    pub sim: Service,
    pub ingestor: Service,
    /// A second ingestor on the same database with group commit on; only measured in
    /// the group-commit runs (stripe-sim delivers to the first one).
    pub grouped: Service,
    pub grouped_webhook_url: String,
    /// Only empty while it restarts.
    api: Option<Service>,
    pub proxy: CountingProxy,
    pub webhook_url: String,
    pub api_url: String,
    sim_url: String,
    api_ports: ApiPorts,
    http: reqwest::Client,
    spec: StackSpec,
}

impl Stack {
    /// Migrates the database with `payments-api migrate`, then starts stripe-sim (delivering
    /// to the ingestor), the ingestor and payments-api.
    pub async fn start(spec: StackSpec) -> anyhow::Result<Stack> {
        std::fs::create_dir_all(&spec.log_dir)?;
        let db_url = spec.db.url();
        let (sim_port, ingest_port, grouped_port) = (free_port()?, free_port()?, free_port()?);
        let api_ports = ApiPorts {
            grpc: free_port()?,
            metrics: free_port()?,
        };
        let sim_url = format!("http://127.0.0.1:{sim_port}");
        let webhook_url = format!("http://127.0.0.1:{ingest_port}/v1/stripe-webhook");

        let migrate = Service::spawn(
            &spec,
            "payments-api",
            &["migrate"],
            &api_env(&spec, &db_url, &sim_url, api_ports),
        )?;
        let status = migrate.child.wait_with_output().await?.status;
        if !status.success() {
            bail!("payments-api migrate failed ({status})");
        }

        let sim_args = [
            "--addr",
            &format!("127.0.0.1:{sim_port}"),
            "--webhook-url",
            &webhook_url,
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--seed",
            "42",
        ];
        let mut sim = Service::spawn(&spec, "stripe-sim", &sim_args, &[])?;
        let ingestor_env = [
            ("DATABASE_URL", db_url.clone()),
            ("INGESTOR_ADDR", format!("127.0.0.1:{ingest_port}")),
            (
                "INGESTOR_DB_MAX_CONNECTIONS",
                spec.ingestor_pool.to_string(),
            ),
            ("STRIPE_API_BASE", sim_url.clone()),
            ("STRIPE_SECRET_KEY", STRIPE_KEY.to_owned()),
            ("STRIPE_WEBHOOK_SECRETS", WEBHOOK_SECRET.to_owned()),
            // Background sweeps that call Stripe are off: they are not on the measured
            // paths and would only add noise (the retry worker and outbox stay on).
            ("INGESTOR_RECONCILE_INTERVAL_SECS", "0".to_owned()),
            ("INGESTOR_CATCH_UP_INTERVAL_SECS", "0".to_owned()),
            // One commit per event here; the second ingestor below groups them.
            ("INGESTOR_GROUP_COMMIT_MAX_EVENTS", "1".to_owned()),
        ];
        let mut ingestor = Service::spawn(&spec, "webhook-ingestor", &[], &ingestor_env)?;
        let mut grouped_env: Vec<(&str, String)> = ingestor_env
            .iter()
            .filter(|(name, _)| *name != "INGESTOR_GROUP_COMMIT_MAX_EVENTS")
            .cloned()
            .collect();
        grouped_env[1].1 = format!("127.0.0.1:{grouped_port}");
        grouped_env.push((
            "INGESTOR_GROUP_COMMIT_MAX_EVENTS",
            GROUP_COMMIT_MAX_EVENTS.to_string(),
        ));
        grouped_env.push((
            "INGESTOR_GROUP_COMMIT_COMMITTERS",
            GROUP_COMMIT_COMMITTERS.to_string(),
        ));
        let mut grouped = Service::spawn(&spec, "webhook-ingestor", &[], &grouped_env)?;
        let proxy = CountingProxy::start(format!("{}:{}", spec.db.host, spec.db.port)).await?;
        let mut api = start_api(&spec, &proxy, &sim_url, api_ports)?;
        sim.ready(sim_port).await?;
        ingestor.ready(ingest_port).await?;
        grouped.ready(grouped_port).await?;
        api.ready(api_ports.grpc).await?;
        Ok(Stack {
            sim,
            ingestor,
            grouped,
            grouped_webhook_url: format!("http://127.0.0.1:{grouped_port}/v1/stripe-webhook"),
            api: Some(api),
            proxy,
            webhook_url,
            api_url: format!("http://127.0.0.1:{}", api_ports.grpc),
            sim_url,
            api_ports,
            http: reqwest::Client::new(),
            spec,
        })
    }

    /// A fresh payments-api process on the same port (memory figures start clean).
    pub async fn restart_api(&mut self) -> anyhow::Result<()> {
        if let Some(old) = self.api.take() {
            old.stop().await;
        }
        let mut fresh = start_api(&self.spec, &self.proxy, &self.sim_url, self.api_ports)?;
        fresh.ready(self.api_ports.grpc).await?;
        self.api = Some(fresh);
        Ok(())
    }

    /// One sample from payments-api's `GET /metrics` (None if it cannot be read).
    pub async fn api_metric(&self, name: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.api_ports.metrics);
        let text = self.http.get(url).send().await.ok()?.text().await.ok()?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn api_pid(&self) -> u32 {
        self.api.as_ref().map_or(0, Service::pid)
    }

    /// Makes stripe-sim hold every API answer `ms` after running the request (0 clears).
    pub async fn set_stripe_latency(&self, ms: u64) -> anyhow::Result<()> {
        let url = format!("{}/test/faults", self.sim_url);
        let request = match ms {
            0 => self.http.delete(url),
            ms => self
                .http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("action=delay_all&delay_ms={ms}")),
        };
        let response = request
            .send()
            .await
            .context("setting stripe-sim's latency")?;
        if !response.status().is_success() {
            bail!(
                "stripe-sim refused the latency fault: {}",
                response.status()
            );
        }
        Ok(())
    }

    pub fn sim_pid(&self) -> u32 {
        self.sim.pid()
    }

    pub fn ingestor_pid(&self) -> u32 {
        self.ingestor.pid()
    }

    pub fn grouped_pid(&self) -> u32 {
        self.grouped.pid()
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.sim.check_alive()?;
        self.ingestor.check_alive()?;
        self.grouped.check_alive()?;
        match &mut self.api {
            Some(api) => api.check_alive(),
            None => bail!("payments-api is not running"),
        }
    }

    pub async fn stop(self) {
        if let Some(api) = self.api {
            api.stop().await;
        }
        self.ingestor.stop().await;
        self.grouped.stop().await;
        self.sim.stop().await;
    }
}

/// The grouped ingestor's settings: at most this many events per commit, this many
/// database transactions filling or committing at once. They are webhook-ingestor's
/// defaults (`GroupCommitConfig::DEFAULT`, a crate the bench does not build against),
/// passed explicitly so the report can name them; change both together.
pub const GROUP_COMMIT_MAX_EVENTS: usize = 32;
pub const GROUP_COMMIT_COMMITTERS: usize = 2;

/// payments-api's two listening ports.
#[derive(Debug, Clone, Copy)]
struct ApiPorts {
    grpc: u16,
    metrics: u16,
}

fn api_env(
    spec: &StackSpec,
    db_url: &str,
    sim_url: &str,
    ports: ApiPorts,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db_url.to_owned()),
        ("PAYMENTS_API_ADDR", format!("127.0.0.1:{}", ports.grpc)),
        (
            "PAYMENTS_METRICS_ADDR",
            format!("127.0.0.1:{}", ports.metrics),
        ),
        // PaymentsAdmin and reflection are not benchmarked: any free port.
        ("PAYMENTS_ADMIN_ADDR", "127.0.0.1:0".to_owned()),
        ("PAYMENTS_DB_MAX_CONNECTIONS", spec.api_pool.to_string()),
        ("PAYMENTS_JWT_SECRET", JWT_SECRET.to_owned()),
        // The end-to-end users pay in a tight loop, far above a person's rate.
        ("PAYMENTS_RATE_LIMIT_PER_SEC", "0".to_owned()),
        ("STRIPE_API_BASE", sim_url.to_owned()),
        ("STRIPE_SECRET_KEY", STRIPE_KEY.to_owned()),
    ]
}

fn start_api(
    spec: &StackSpec,
    proxy: &CountingProxy,
    sim_url: &str,
    ports: ApiPorts,
) -> anyhow::Result<Service> {
    let via_proxy = spec.db.via("127.0.0.1", proxy.port).url();
    Service::spawn(
        spec,
        "payments-api",
        &[],
        &api_env(spec, &via_proxy, sim_url, ports),
    )
}
