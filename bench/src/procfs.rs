//! What the load tool reads about the hub (and itself) from `/proc`: resident
//! memory (`VmRSS`) and CPU time (`utime + stime`, all threads).

use std::time::Duration;

use anyhow::{Context, bail};

/// A process watched through `/proc/<pid>`.
#[derive(Debug, Clone, Copy)]
pub struct Proc {
    pid: u32,
    ticks_per_sec: u64,
}

impl Proc {
    /// Watches `pid`, checking that it exists.
    pub fn new(pid: u32) -> anyhow::Result<Self> {
        let p = Self {
            pid,
            ticks_per_sec: clock_ticks(),
        };
        p.rss_kib()
            .with_context(|| format!("cannot read /proc/{pid}/status"))?;
        Ok(p)
    }

    /// This process.
    pub fn current() -> anyhow::Result<Self> {
        Self::new(std::process::id())
    }

    /// Resident set size in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        parse_vmrss(&status).context("no VmRSS line")
    }

    /// CPU time used so far by all threads, user plus system.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        let ticks = parse_cpu_ticks(&stat)?;
        Ok(Duration::from_micros(
            ticks * 1_000_000 / self.ticks_per_sec,
        ))
    }
}

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB.
fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name may hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("unreadable stat line");
    };
    // After ")" come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("stat field {n} missing"))
    };
    Ok(field(14)? + field(15)?)
}

/// `sysconf(_SC_CLK_TCK)` through `getconf` (no unsafe code here); Linux
/// reports 100 on every common architecture, the fallback.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vmrss() {
        let status = "Name:\tscanlogin\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(parse_vmrss(status), Some(12345));
        assert_eq!(parse_vmrss("Name:\tx\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_odd_names() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat).expect("parsed"), 325);
        assert!(parse_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn reads_itself() {
        let me = Proc::current().expect("own /proc entry");
        assert!(me.rss_kib().expect("rss") > 0);
        assert!(me.cpu().is_ok());
    }
}
