//! Where the figures were measured: the machine, the PostgreSQL server and its settings,
//! the date and the commit.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// Settings that decide commit and read cost.
const PG_SETTINGS: [&str; 12] = [
    "shared_buffers",
    "max_connections",
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "full_page_writes",
    "wal_level",
    "commit_delay",
    "max_wal_size",
    "checkpoint_timeout",
    "work_mem",
    "shared_preload_libraries",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub load_at_start: String,
    pub postgres_version: String,
    pub postgres_settings: Vec<(String, String)>,
    pub date: String,
    pub commit: String,
}

impl Machine {
    pub async fn describe(pool: &PgPool, root: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
                .unwrap_or_else(|| "unknown".to_owned()),
            memory_gib: mem_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            load_at_start: load_average(),
            postgres_version: sqlx::query_scalar("SELECT version()")
                .fetch_one(pool)
                .await
                .unwrap_or_else(|_| "unknown".to_owned()),
            postgres_settings: settings(pool).await,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit: commit(root),
        }
    }
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn settings(pool: &PgPool) -> Vec<(String, String)> {
    let names: Vec<String> = PG_SETTINGS.iter().map(|s| (*s).to_owned()).collect();
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1) ORDER BY name",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    rows.into_iter()
        .map(|(name, setting, unit)| (name, human(&setting, unit.as_deref())))
        .collect()
}

/// `16384` in `8kB` pages → `128 MB`.
fn human(setting: &str, unit: Option<&str>) -> String {
    let bytes_per = match unit {
        Some("8kB") => 8.0 * 1024.0,
        Some("kB") => 1024.0,
        Some("MB") => 1024.0 * 1024.0,
        _ => {
            return format!(
                "{setting}{}",
                unit.map(|u| format!(" {u}")).unwrap_or_default()
            );
        }
    };
    match setting.parse::<f64>() {
        Ok(v) => format!("{:.0} MB", v * bytes_per / 1024.0 / 1024.0),
        Err(_) => setting.to_owned(),
    }
}

/// The commit, marked when the working tree differs from it (read-only git calls).
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown (not a git checkout)".to_owned();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{head} (with uncommitted changes)"),
        _ => head,
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_are_shown_in_megabytes() {
        assert_eq!(human("16384", Some("8kB")), "128 MB");
        assert_eq!(human("4096", Some("kB")), "4 MB");
        assert_eq!(human("on", None), "on");
        assert_eq!(human("300", Some("s")), "300 s");
    }
}
