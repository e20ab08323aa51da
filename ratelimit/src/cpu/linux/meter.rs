//! Cumulative CPU counters: a cgroup's usage file (v2 `cpu.stat`, v1 `cpuacct.usage`) or the
//! host's aggregate `cpu` line of `/proc/stat`, and the utilisation between two reads.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::CpuError;

/// A cumulative counter and its last reading.
#[derive(Debug)]
pub(super) enum Meter {
    /// A cgroup's usage in nanoseconds.
    Cgroup {
        usage: PathBuf,
        format: UsageFormat,
        last_nanos: u64,
    },
    /// The host's busy and total jiffies.
    Host {
        stat: PathBuf,
        last_busy: u64,
        last_total: u64,
    },
}

/// How a cgroup's usage file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UsageFormat {
    /// v2 `cpu.stat`: a `usage_usec <microseconds>` line.
    CpuStat,
    /// v1 `cpuacct.usage`: nanoseconds alone.
    CpuacctUsage,
}

impl Meter {
    /// A meter of the cgroup usage file `usage`, read once to check it.
    pub(super) fn cgroup(usage: PathBuf, format: UsageFormat) -> Result<Self, String> {
        let last_nanos = read_usage_nanos(&usage, format).map_err(|err| err.reason().to_owned())?;
        Ok(Self::Cgroup {
            usage,
            format,
            last_nanos,
        })
    }

    /// A meter of the host's `/proc/stat`, read once to check it.
    pub(super) fn host(stat: PathBuf) -> Result<Self, String> {
        let (last_busy, last_total) = read_host(&stat).map_err(|err| err.reason().to_owned())?;
        Ok(Self::Host {
            stat,
            last_busy,
            last_total,
        })
    }

    /// The file it reads.
    pub(super) fn file(&self) -> &Path {
        match self {
            Self::Cgroup { usage, .. } => usage,
            Self::Host { stat, .. } => stat,
        }
    }

    /// The utilisation since the previous read: a cgroup's usage over `elapsed` × `cores`; the
    /// host's busy share of its own jiffies.
    pub(super) fn sample(&mut self, elapsed: Duration, cores: f64) -> Result<f64, CpuError> {
        match self {
            Self::Cgroup {
                usage,
                format,
                last_nanos,
            } => {
                let nanos = read_usage_nanos(usage, *format)?;
                let used = nanos.saturating_sub(*last_nanos) as f64;
                *last_nanos = nanos;
                let available = elapsed.as_nanos() as f64 * cores;
                Ok(if available > 0.0 {
                    (used / available).clamp(0.0, 1.0)
                } else {
                    0.0
                })
            }
            Self::Host {
                stat,
                last_busy,
                last_total,
            } => {
                let (busy, total) = read_host(stat)?;
                let (busy_delta, total_delta) = (
                    busy.saturating_sub(*last_busy),
                    total.saturating_sub(*last_total),
                );
                (*last_busy, *last_total) = (busy, total);
                Ok(if total_delta > 0 {
                    (busy_delta as f64 / total_delta as f64).clamp(0.0, 1.0)
                } else {
                    0.0
                })
            }
        }
    }
}

/// Cumulative usage in nanoseconds.
fn read_usage_nanos(path: &Path, format: UsageFormat) -> Result<u64, CpuError> {
    let text = fs::read_to_string(path)
        .map_err(|err| CpuError::new(format!("{}: {err}", path.display())))?;
    let parsed = match format {
        UsageFormat::CpuStat => text.lines().find_map(|line| {
            let micros = line.strip_prefix("usage_usec ")?;
            micros
                .trim()
                .parse::<u64>()
                .ok()
                .map(|micros| micros.saturating_mul(1_000))
        }),
        UsageFormat::CpuacctUsage => text.trim().parse::<u64>().ok(),
    };
    parsed.ok_or_else(|| CpuError::new(format!("{}: no usage in it", path.display())))
}

/// `(busy, total)` jiffies of the aggregate `cpu` line of `/proc/stat`; idle and iowait are
/// not busy.
fn read_host(path: &Path) -> Result<(u64, u64), CpuError> {
    let text = fs::read_to_string(path)
        .map_err(|err| CpuError::new(format!("{}: {err}", path.display())))?;
    let line = text
        .lines()
        .find(|line| line.starts_with("cpu "))
        .ok_or_else(|| CpuError::new(format!("{}: no aggregate `cpu` line", path.display())))?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let fields = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse::<u64>)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|fields| fields.len() >= 4)
        .ok_or_else(|| CpuError::new(format!("{}: malformed `cpu` line", path.display())))?;
    let total = fields.iter().fold(0_u64, |sum, f| sum.saturating_add(*f));
    let idle = fields[3].saturating_add(fields.get(4).copied().unwrap_or(0));
    Ok((total.saturating_sub(idle), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("rampart-meter-{name}-{}", std::process::id()));
        fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn garbage_counters_are_errors_not_panics() {
        let cases = [
            ("cpu  x y z w\n", "malformed"),
            ("cpu  1 2\n", "malformed"),
            ("intr 1\n", "no aggregate"),
        ];
        for (text, reason) in cases {
            let path = file("garbage", text);
            let err = read_host(&path).unwrap_err();
            assert!(err.reason().contains(reason), "{text:?}: {err}");
            fs::remove_file(path).expect("rm");
        }
        let path = file("usage", "usage_usec lots\n");
        let err = read_usage_nanos(&path, UsageFormat::CpuStat).unwrap_err();
        assert!(err.reason().contains("no usage"), "{err}");
        fs::remove_file(path).expect("rm");
    }

    #[test]
    fn huge_host_counters_saturate() {
        let max = u64::MAX;
        let path = file("huge", &format!("cpu  {max} {max} 0 {max} {max}\n"));
        assert_eq!(read_host(&path).expect("parsed"), (0, max));
        fs::remove_file(path).expect("rm");
    }
}
