//! The standard process metrics, read from `/proc` at scrape time (Linux; elsewhere
//! none are reported): `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds` and
//! `process_start_time_seconds`, as every Prometheus client names them.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

/// `/proc/*/stat` counts CPU time and the start time in USER_HZ ticks, which Linux
/// fixes at 100 per second on every architecture for user space.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub struct ProcessCollector {
    /// Seconds since the epoch; `None` where `/proc` cannot tell.
    start_time: Option<f64>,
}

impl ProcessCollector {
    pub fn new() -> Self {
        let start_ticks = read("/proc/self/stat").and_then(|s| parse_stat(&s).map(|s| s.start));
        let boot_time = read("/proc/stat").and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        ProcessCollector {
            start_time: start_ticks
                .zip(boot_time)
                .map(|(ticks, boot)| boot + ticks / TICKS_PER_SECOND),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/proc/<pid>/stat` says about CPU time and the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// User + system time, in ticks.
    pub cpu: f64,
    /// Ticks after boot at which the process started.
    pub start: f64,
}

impl Stat {
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu / TICKS_PER_SECOND
    }
}

/// Parses `/proc/<pid>/stat`: fields 14 and 15 (utime, stime) and 22 (starttime),
/// counted after the `(comm)` that may hold spaces and parentheses.
pub fn parse_stat(stat: &str) -> Option<Stat> {
    let after_comm = stat.get(stat.rfind(')')? + 1..)?;
    // Field 3 (state) is the first after the command name.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(Stat {
        cpu: field(14)? + field(15)?,
        start: field(22)?,
    })
}

/// A `Name:   123 kB` line of `/proc/<pid>/status`, in bytes.
pub fn status_bytes(status: &str, name: &str) -> Option<u64> {
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?;
    let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(stat) = read("/proc/self/stat").and_then(|s| parse_stat(&s)) {
            let cpu = ConstCounter::new(stat.cpu_seconds());
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
        }
        if let Some(status) = read("/proc/self/status") {
            if let Some(rss) = status_bytes(&status, "VmRSS") {
                let help = "Resident memory size in bytes";
                gauge(
                    &mut encoder,
                    "process_resident_memory_bytes",
                    help,
                    rss as f64,
                )?;
            }
            if let Some(size) = status_bytes(&status, "VmSize") {
                let help = "Virtual memory size in bytes";
                gauge(
                    &mut encoder,
                    "process_virtual_memory_bytes",
                    help,
                    size as f64,
                )?;
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let open = i64::try_from(fds.count()).unwrap_or(i64::MAX);
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                open,
            )?;
        }
        if let Some(max) = read("/proc/self/limits").and_then(|l| max_open_files(&l)) {
            let help = "Maximum number of open file descriptors";
            gauge(&mut encoder, "process_max_fds", help, max as f64)?;
        }
        if let Some(start) = self.start_time {
            let help = "Start time of the process since unix epoch in seconds";
            gauge(&mut encoder, "process_start_time_seconds", help, start)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 \
                    9 0 123456 104857600 2560 18446744073709551615";
        let parsed = parse_stat(stat).expect("parses");
        assert_eq!(parsed.cpu, 300.0);
        assert_eq!(parsed.cpu_seconds(), 3.0);
        assert_eq!(parsed.start, 123_456.0);
        assert_eq!(parse_stat("12 (truncated"), None);
    }

    #[test]
    fn status_and_limits_lines_are_read_in_bytes_and_the_soft_limit() {
        let status = "Name:\tpayments-api\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_bytes(status, "VmRSS"), Some(10 * 1024 * 1024));
        assert_eq!(status_bytes(status, "VmSize"), Some(200 * 1024 * 1024));
        assert_eq!(status_bytes(status, "VmSwap"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }
}
