//! CPU time and memory of processes, from `/proc` (Linux only; elsewhere every reading is
//! `None` and the figures that need them are reported as missing).

use std::collections::HashMap;
use std::sync::OnceLock;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// User plus system CPU time of one process so far, in milliseconds.
#[must_use]
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page, so utime (14) and stime (15) are 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000.0 / ticks_per_second())
}

/// Resident memory of one process, in bytes.
#[must_use]
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Busy and total CPU time of the whole machine so far (all cores), in milliseconds.
#[must_use]
pub fn machine_cpu_ms() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0.0);
    let scale = 1000.0 / ticks_per_second();
    Some(((total - idle) * scale, total * scale))
}

/// Processes whose command name (`/proc/<pid>/comm`) is `name`.
#[must_use]
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

/// CPU times of a set of processes at one instant.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot(pub HashMap<u32, f64>);

impl CpuSnapshot {
    #[must_use]
    pub fn take(pids: &[u32]) -> Self {
        Self(
            pids.iter()
                .filter_map(|pid| Some((*pid, cpu_ms(*pid)?)))
                .collect(),
        )
    }

    /// CPU milliseconds spent since `earlier` by the processes of this snapshot; a process
    /// absent from `earlier` started in between, so all its time counts.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> f64 {
        self.0
            .iter()
            .map(|(pid, now)| now - earlier.0.get(pid).copied().unwrap_or(0.0))
            .filter(|delta| *delta >= 0.0)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_ms(me).is_some());
            assert!(rss_bytes(me).is_some_and(|rss| rss > 0));
            assert!(machine_cpu_ms().is_some_and(|(busy, total)| busy <= total));
        }
    }
}
