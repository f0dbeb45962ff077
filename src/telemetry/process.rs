//! The process's own figures, read from `/proc` when a scrape or a push asks: CPU time,
//! memory, descriptors, start time, under the names of Prometheus's process collector and of
//! OTel's process metrics, as the Go image exports them.

use std::fmt::{self, Write as _};

use super::otlp::{data, int_point, metric, number_point, otlp_metric};
use super::protobuf::Message;

/// The process's figures at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Process {
    pub cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

impl Process {
    /// Reads `/proc/self`; a figure that cannot be read is 0 (or absent, for the optional ones).
    pub fn read() -> Process {
        let ticks = crate::sys::clock_ticks_per_second() as f64;
        let page = crate::sys::page_size();
        let mut process = Process {
            max_fds: crate::sys::max_open_files(),
            ..Process::default()
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
            let cpu = field(14).unwrap_or(0) + field(15).unwrap_or(0);
            process.cpu_seconds = cpu as f64 / ticks;
            process.virtual_bytes = field(23).unwrap_or(0);
            process.resident_bytes = field(24).unwrap_or(0) * page;
            process.start_time_seconds = field(22)
                .zip(boot_time())
                .map(|(start, boot)| boot as f64 + start as f64 / ticks);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            process.open_fds = entries.count() as u64;
        }
        process
    }
}

/// `btime` of `/proc/stat`: when the machine booted, Unix seconds.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}

impl Process {
    /// The figures as Prometheus text.
    pub fn write_prometheus(&self, out: &mut String) -> fmt::Result {
        let p = self;
        let mut family = |name: &str, kind: &str, help: &str, value: String| {
            writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            )
        };
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds.to_string(),
        )?;
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_bytes.to_string(),
        )?;
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            p.virtual_bytes.to_string(),
        )?;
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            p.open_fds.to_string(),
        )?;
        if let Some(max) = p.max_fds {
            family(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max.to_string(),
            )?;
        }
        if let Some(start) = p.start_time_seconds {
            family(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                start.to_string(),
            )?;
        }
        Ok(())
    }

    /// The figures as OTel's process metrics.
    /// The process metrics as OTLP; the CPU time as a delta from `since` (the last push's time
    /// and CPU seconds) when given.
    pub fn write_otlp(
        &self,
        scope_metrics: &mut Message,
        start: u64,
        now: u64,
        since: Option<(u64, f64)>,
    ) {
        let cpu = "process.cpu.time";
        otlp_metric(scope_metrics, cpu, "", "s", metric::SUM, |sum| {
            let (from, seconds, temporality) = match since {
                Some((at, then)) => (at, self.cpu_seconds - then, data::DELTA),
                None => (start, self.cpu_seconds, data::CUMULATIVE),
            };
            sum.message(data::DATA_POINTS, |point| {
                point
                    .fixed64(number_point::START_TIME_UNIX_NANO, from)
                    .fixed64(number_point::TIME_UNIX_NANO, now)
                    .double(number_point::AS_DOUBLE, seconds);
            });
            super::otlp::monotonic(sum, temporality);
        });
        let gauges = [
            ("process.memory.usage", "By", self.resident_bytes),
            (
                "process.unix.file_descriptor.count",
                "{file_descriptor}",
                self.open_fds,
            ),
        ];
        for (name, unit, value) in gauges {
            otlp_metric(scope_metrics, name, "", unit, metric::GAUGE, |gauge| {
                gauge.message(data::DATA_POINTS, |point| {
                    int_point(point, start, now, value);
                });
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::metrics::unix_seconds;
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn the_process_is_read_from_proc() {
        let p = Process::read();
        assert!(
            p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes,
            "{p:?}"
        );
        assert!(p.open_fds >= 3, "{p:?}");
        let start = p.start_time_seconds.unwrap();
        let now = unix_seconds(SystemTime::now());
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{p:?}"
        );
    }
}
