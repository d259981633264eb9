//! What a process costs, read from the kernel by pid: resident memory (`/proc/<pid>/status`)
//! and CPU time (`/proc/<pid>/stat`). For the memory tests, `just soak` and benchmarks, which
//! sample every process of a run (stages, nats-server, influxd) the same way.

use std::time::Duration;

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss: u64,
    /// The most it has been resident at any time (`VmHWM`).
    pub peak_rss: u64,
}

/// One reading of a process: its memory and the CPU time it has used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    pub memory: Memory,
    /// User and system time together (`utime` + `stime`), since the process started.
    pub cpu: Duration,
}

/// Memory of process `pid`; `None` if it does not exist (any more) or `/proc` cannot say.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Memory {
        rss: status_kib(&status, "VmRSS:")? * 1024,
        peak_rss: status_kib(&status, "VmHWM:")? * 1024,
    })
}

/// CPU time (user + system) process `pid` has used; `None` if it does not exist (any more).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_ticks(&stat)?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / per_second,
    ))
}

/// Memory and CPU time of process `pid`, read one after the other.
pub fn sample(pid: u32) -> Option<ProcSample> {
    Some(ProcSample {
        memory: memory(pid)?,
        cpu: cpu_time(pid)?,
    })
}

/// The value of a `Key:     12345 kB` line of `/proc/<pid>/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `utime` + `stime` (clock ticks) of a `/proc/<pid>/stat` line. The command name, the second
/// field, is in parentheses and may hold blanks and parentheses itself: count from the last
/// `)`. After it come field 3 (`state`) onwards; `utime` and `stime` are fields 14 and 15.
fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let me = std::process::id();
        let sample = sample(me).expect("this process is in /proc");
        assert!(sample.memory.rss > 0 && sample.memory.peak_rss >= sample.memory.rss);
        // Burn a little CPU so the count moves past zero ticks.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time(me).expect("cpu time") > Duration::ZERO);
        assert_eq!(sample_of_nobody(), None);
    }

    fn sample_of_nobody() -> Option<ProcSample> {
        // Above the kernel's largest pid (4194304): no such process.
        sample(u32::MAX)
    }

    #[test]
    fn the_stat_line_is_read_past_a_command_name_with_parentheses() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 9 0 0";
        assert_eq!(stat_ticks(line), Some(10));
        assert_eq!(stat_ticks("42 (x) S 1"), None);
        let status = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }
}
