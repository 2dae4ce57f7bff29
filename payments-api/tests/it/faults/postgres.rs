//! A private PostgreSQL cluster for one test, so the test can stop and start a server
//! without touching the shared one every other test uses. Stopped and removed on drop,
//! also when the test panics.
//!
//! PostgreSQL refuses to run as root: when the tests do, every `initdb` and `pg_ctl`
//! runs as the `postgres` user (`runuser`), in a directory that user owns.
//!
//! [`PrivatePostgres::start_tls`] starts it with `ssl=on`, a server certificate from
//! [`TestCa`], and a `pg_hba.conf` that refuses every TCP connection without TLS.

use std::{
    net::TcpListener,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
};

pub use payments_testkit::{ServerCertificate, TestCa};

use tempfile::TempDir;

/// How to run `pg_ctl` against the cluster; cheap to clone into a blocking task.
#[derive(Debug, Clone)]
struct Ctl {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    /// `-c ssl=on …` when the cluster serves TLS.
    tls_options: Option<String>,
}

pub struct PrivatePostgres {
    ctl: Ctl,
    // Dropped after `Drop::drop` has stopped the server.
    _dir: TempDir,
}

impl PrivatePostgres {
    /// Creates, configures and starts a cluster on a free loopback port, trust auth.
    pub async fn start() -> PrivatePostgres {
        tokio::task::spawn_blocking(|| Self::start_blocking(None))
            .await
            .expect("the cluster set-up does not panic")
    }

    /// [`start`](Self::start), serving TLS only, with `server` as its certificate.
    pub async fn start_tls(server: ServerCertificate) -> PrivatePostgres {
        tokio::task::spawn_blocking(|| Self::start_blocking(Some(server)))
            .await
            .expect("the cluster set-up does not panic")
    }

    fn start_blocking(tls: Option<ServerCertificate>) -> PrivatePostgres {
        let dir = TempDir::new().expect("a temporary directory");
        let as_postgres = running_as_root();
        if as_postgres {
            let (uid, gid) = (id("-u"), id("-g"));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the cluster directory to the postgres user");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut ctl = Ctl {
            bin: bin_dir(),
            dir: dir.path().to_owned(),
            port,
            as_postgres,
            tls_options: None,
        };
        let data = ctl.data();
        ctl.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        if let Some(server) = tls {
            ctl.tls_options = Some(ctl.install_tls(&server));
        }
        ctl.pg_ctl(&["start"]);
        PrivatePostgres { ctl, _dir: dir }
    }

    pub fn port(&self) -> u16 {
        self.ctl.port
    }

    /// Writes `contents` to `name` in the cluster's directory (a CA file for a client).
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.ctl.dir.join(name);
        std::fs::write(&path, contents).expect("write a file next to the cluster");
        path
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.ctl.port)
    }

    /// `pg_ctl stop -m fast`: sessions are ended, the server shuts down cleanly.
    pub async fn stop_fast(&self) {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.pg_ctl(&["stop", "-m", "fast"]))
            .await
            .expect("pg_ctl stop does not panic");
    }

    /// `pg_ctl start`, on the same port; returns once connections are accepted.
    pub async fn start_again(&self) {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.pg_ctl(&["start"]))
            .await
            .expect("pg_ctl start does not panic");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Whether it runs or not; failing here would hide the test's own panic.
        let _ = self
            .ctl
            .command(
                "pg_ctl",
                &["-D", &self.ctl.data(), "stop", "-m", "immediate"],
            )
            .output();
    }
}

impl Ctl {
    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Writes the certificate and key where the server reads them, allows only TLS over
    /// TCP, and returns the server options that turn TLS on.
    fn install_tls(&self, server: &ServerCertificate) -> String {
        let (cert, key) = (self.dir.join("server.crt"), self.dir.join("server.key"));
        std::fs::write(&cert, &server.cert_pem).expect("write the server certificate");
        std::fs::write(&key, &server.key_pem).expect("write the server key");
        // The server refuses a key others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("restrict the key");
        let hba = "local all all trust\n\
                   hostssl all all 127.0.0.1/32 trust\n\
                   hostnossl all all 0.0.0.0/0 reject\n";
        let hba_path = self.dir.join("data").join("pg_hba.conf");
        std::fs::write(&hba_path, hba).expect("write pg_hba.conf");
        if self.as_postgres {
            let (uid, gid) = (id("-u"), id("-g"));
            for path in [&cert, &key, &hba_path] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .expect("hand the TLS files to the postgres user");
            }
        }
        format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        )
    }

    /// `pg_ctl` with the server options; `-w` waits until the action is complete.
    fn pg_ctl(&self, action: &[&str]) {
        let data = self.data();
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200{}",
            self.port,
            self.dir.display(),
            self.tls_options.as_deref().unwrap_or_default()
        );
        let mut args = vec!["-D", &data, "-l", &log, "-w", "-t", "30", "-o", &options];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}{}\nserver log:\n{log}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the test's working directory.
        command.args(args).current_dir(&self.dir);
        command
    }
}

/// Whether this process runs as root (it owns `/proc/self` as its effective user).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `id -u postgres` or `id -g postgres`.
fn id(which: &str) -> u32 {
    let output = Command::new("id")
        .args([which, "postgres"])
        .output()
        .expect("run id");
    assert!(
        output.status.success(),
        "running as root needs a `postgres` user to run PostgreSQL as"
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `pg_ctl`.
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("pg_ctl").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin")
}
