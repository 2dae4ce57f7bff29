//! What `/proc` says about a process and the machine: resident memory and CPU time.

use std::time::Instant;

/// Clock ticks per second of `/proc/*/stat` CPU fields (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// `VmRSS` of a process in KiB (None if it is gone).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU seconds a process has used.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_ticks(&stat).map(|t| t / ticks_per_sec())
}

/// Fields 14 and 15 (utime, stime), counted after the `(comm)` that may hold spaces.
fn stat_cpu_ticks(stat: &str) -> Option<f64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds of every process named `postgres` (all databases on the server).
pub fn postgres_cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let ticks: f64 = dir
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .filter_map(|stat| stat_cpu_ticks(&stat))
        .sum();
    ticks / ticks_per_sec()
}

/// Busy, total and stolen jiffies of the whole machine (`/proc/stat`, first line).
fn machine_jiffies() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().sum();
    // idle and iowait are the 4th and 5th values.
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    // steal (8th): time the hypervisor gave this machine's CPUs to someone else.
    let steal = values.get(7).copied().unwrap_or(0.0);
    Some((total - idle, total, steal))
}

/// CPU use between two moments: the machine's, and that of the named processes.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    started: Instant,
    machine: Option<(f64, f64, f64)>,
    processes: Vec<(u32, f64)>,
    postgres: f64,
    own: f64,
}

/// Shares of one core (1.0 = one core fully busy) over the measured interval.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CpuUse {
    /// Fraction of all cores busy (0..1), stolen time included.
    pub machine_busy: f64,
    /// Fraction of all cores' time the hypervisor gave to other machines (0..1): work
    /// that waited without any process here running.
    #[serde(default)]
    pub machine_stolen: f64,
    /// Cores used by each named process, in the order given.
    pub processes: Vec<f64>,
    /// Cores used by all PostgreSQL processes.
    pub postgres: f64,
    /// Cores used by this benchmark process: the load generator, where it is one.
    #[serde(default)]
    pub own: f64,
    pub secs: f64,
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            started: Instant::now(),
            machine: machine_jiffies(),
            processes: pids
                .iter()
                .map(|p| (*p, cpu_secs(*p).unwrap_or(0.0)))
                .collect(),
            postgres: postgres_cpu_secs(),
            own: cpu_secs(std::process::id()).unwrap_or(0.0),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let (machine_busy, machine_stolen) = match (self.machine, machine_jiffies()) {
            (Some((b0, t0, s0)), Some((b1, t1, s1))) if t1 > t0 => {
                ((b1 - b0) / (t1 - t0), (s1 - s0) / (t1 - t0))
            }
            _ => (f64::NAN, f64::NAN),
        };
        CpuUse {
            machine_busy,
            machine_stolen,
            processes: self
                .processes
                .iter()
                .map(|(pid, before)| (cpu_secs(*pid).unwrap_or(*before) - before) / secs)
                .collect(),
            postgres: (postgres_cpu_secs() - self.postgres) / secs,
            own: (cpu_secs(std::process::id()).unwrap_or(self.own) - self.own) / secs,
            secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_fields_are_found_after_a_command_with_spaces() {
        let stat = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(stat_cpu_ticks(stat), Some(300.0));
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(vm_rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
