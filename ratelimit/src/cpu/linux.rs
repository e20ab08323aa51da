//! [`LinuxCpu`]: the process's CPU usage from its own cgroup (v2, then v1), or the host's
//! from `/proc/stat`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CpuError, CpuSource};

/// Which accounting a [`LinuxCpu`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The unified hierarchy: `cpu.stat`'s `usage_usec`, limited by `cpu.max`.
    V2,
    /// The legacy hierarchy: `cpuacct.usage`, limited by `cpu.cfs_quota_us`.
    V1,
    /// No usable cgroup: the whole host's busy time from `/proc/stat`.
    Host,
}

#[derive(Debug)]
enum Meter {
    /// A cgroup's cumulative usage file and how to read it.
    Cgroup {
        usage: PathBuf,
        version: CgroupVersion,
        last_nanos: u64,
    },
    /// The host's aggregate `cpu` line.
    Host {
        stat: PathBuf,
        last_busy: u64,
        last_total: u64,
    },
}

/// The CPU usage of this process's cgroup, as a fraction of the CPU it may use.
///
/// Detection, in order:
///
/// 1. **cgroup v2** at the process's own path (the `0::` line of `/proc/self/cgroup`):
///    `cpu.stat`'s `usage_usec` against the tightest `cpu.max` of the cgroup and its
///    ancestors, or else the CPUs in `cpuset.cpus.effective`, or else the host's CPUs.
/// 2. **cgroup v1** (`cpuacct` / `cpu` / `cpuset` controllers): `cpuacct.usage` against
///    `cpu.cfs_quota_us / cpu.cfs_period_us`, or `cpuset.cpus`, or the host's CPUs.
/// 3. **`/proc/stat`**: the whole host's busy fraction (no container view at all).
///
/// Each [`sample`](CpuSource::sample) is the usage since the previous one (or since
/// detection). [`detect_in`](Self::detect_in) reads from other roots than `/proc` and
/// `/sys/fs/cgroup`, for tests with fixture trees.
#[derive(Debug)]
pub struct LinuxCpu {
    meter: Meter,
    /// CPUs the process may use (a fraction under a CFS quota).
    cores: f64,
    last_read: Instant,
}

impl LinuxCpu {
    /// Detects the best source under `/proc` and `/sys/fs/cgroup`.
    ///
    /// # Errors
    ///
    /// When none of the sources can be read, with each one's reason.
    pub fn detect() -> Result<Self, CpuError> {
        Self::detect_in(Path::new("/proc"), Path::new("/sys/fs/cgroup"))
    }

    /// Detects the best source under the given `/proc` and cgroup mount roots.
    ///
    /// # Errors
    ///
    /// When none of the sources can be read, with each one's reason.
    pub fn detect_in(proc_root: &Path, cgroup_root: &Path) -> Result<Self, CpuError> {
        let host_cores = host_cores(proc_root);
        let memberships = fs::read_to_string(proc_root.join("self/cgroup")).unwrap_or_default();
        let v2 = v2(&memberships, cgroup_root, host_cores);
        let v1 = || v1(&memberships, cgroup_root, host_cores);
        let host = || host(proc_root);
        let (meter, cores) = match v2 {
            Ok(found) => found,
            Err(v2_reason) => match v1() {
                Ok(found) => found,
                Err(v1_reason) => match host() {
                    Ok(meter) => (meter, host_cores.unwrap_or(1.0)),
                    Err(host_reason) => {
                        return Err(CpuError::new(format!(
                            "cgroup v2: {v2_reason}; cgroup v1: {v1_reason}; /proc/stat: {host_reason}"
                        )));
                    }
                },
            },
        };
        Ok(Self {
            meter,
            cores,
            last_read: Instant::now(),
        })
    }

    /// Which accounting this source reads.
    pub fn version(&self) -> CgroupVersion {
        match &self.meter {
            Meter::Cgroup { version, .. } => *version,
            Meter::Host { .. } => CgroupVersion::Host,
        }
    }

    /// The CPUs the process may use: its quota, its CPU set, or the host's CPUs.
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// The usage over the last `elapsed` of wall time (cgroup sources; the host source
    /// measures its own interval). [`sample`](CpuSource::sample) passes the real elapsed time.
    ///
    /// # Errors
    ///
    /// If the usage file can no longer be read.
    pub fn sample_over(&mut self, elapsed: Duration) -> Result<f64, CpuError> {
        match &mut self.meter {
            Meter::Cgroup {
                usage,
                version,
                last_nanos,
            } => {
                let nanos = read_usage_nanos(usage, *version)?;
                let used = nanos.saturating_sub(*last_nanos) as f64;
                *last_nanos = nanos;
                let available = elapsed.as_nanos() as f64 * self.cores;
                Ok(if available > 0.0 {
                    (used / available).clamp(0.0, 1.0)
                } else {
                    0.0
                })
            }
            Meter::Host {
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
                    busy_delta as f64 / total_delta as f64
                } else {
                    0.0
                })
            }
        }
    }
}

impl CpuSource for LinuxCpu {
    fn sample(&mut self) -> Result<f64, CpuError> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last_read);
        self.last_read = now;
        self.sample_over(elapsed)
    }
}

/// The cgroup v2 source: the `0::` membership, its `cpu.stat`, and its limits.
fn v2(memberships: &str, root: &Path, host_cores: Option<f64>) -> Result<(Meter, f64), String> {
    let relative = memberships
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no `0::` line in /proc/self/cgroup")?;
    // The unified hierarchy is the mount itself, or `unified/` on hybrid hosts.
    let mount = [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|mount| mount.join("cgroup.controllers").exists())
        .ok_or_else(|| format!("no cgroup2 mount at {}", root.display()))?;
    let dir = own_dir(&mount, relative);
    let usage = dir.join("cpu.stat");
    let last_nanos =
        read_usage_nanos(&usage, CgroupVersion::V2).map_err(|err| err.reason().to_owned())?;
    // The tightest quota on the way up to the root applies.
    let quota = ancestors(&mount, &dir)
        .filter_map(|dir| fs::read_to_string(dir.join("cpu.max")).ok())
        .filter_map(|max| parse_cpu_max(&max))
        .reduce(f64::min);
    let cpuset = fs::read_to_string(dir.join("cpuset.cpus.effective"))
        .ok()
        .and_then(|cpus| count_cpus(&cpus));
    let cores = allowance(quota, cpuset, host_cores);
    Ok((
        Meter::Cgroup {
            usage,
            version: CgroupVersion::V2,
            last_nanos,
        },
        cores,
    ))
}

/// The cgroup v1 source: the `cpuacct` membership and the `cpu` / `cpuset` limits.
fn v1(memberships: &str, root: &Path, host_cores: Option<f64>) -> Result<(Meter, f64), String> {
    let path_of = |controller: &str| {
        memberships.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_owned())
        })
    };
    // `cpu` and `cpuacct` are usually co-mounted; `cpuset` always has its own mount.
    let mount_of = |controller: &str| {
        let combined: &[&str] = if controller == "cpuset" {
            &[]
        } else {
            &["cpu,cpuacct", "cpuacct,cpu"]
        };
        combined
            .iter()
            .chain(std::iter::once(&controller))
            .map(|name| root.join(name))
            .find(|mount| mount.is_dir())
    };
    let acct_path = path_of("cpuacct").ok_or("no `cpuacct` line in /proc/self/cgroup")?;
    let acct_mount =
        mount_of("cpuacct").ok_or_else(|| format!("no cpuacct mount under {}", root.display()))?;
    let usage = own_dir(&acct_mount, &acct_path).join("cpuacct.usage");
    let last_nanos =
        read_usage_nanos(&usage, CgroupVersion::V1).map_err(|err| err.reason().to_owned())?;
    let quota = path_of("cpu")
        .zip(mount_of("cpu"))
        .and_then(|(path, mount)| {
            let dir = own_dir(&mount, &path);
            let quota = read_number(&dir.join("cpu.cfs_quota_us"))?;
            let period = read_number(&dir.join("cpu.cfs_period_us"))?;
            (quota > 0.0 && period > 0.0).then(|| quota / period)
        });
    let cpuset = path_of("cpuset")
        .zip(mount_of("cpuset"))
        .and_then(|(path, mount)| {
            fs::read_to_string(own_dir(&mount, &path).join("cpuset.cpus")).ok()
        })
        .and_then(|cpus| count_cpus(&cpus));
    let cores = allowance(quota, cpuset, host_cores);
    Ok((
        Meter::Cgroup {
            usage,
            version: CgroupVersion::V1,
            last_nanos,
        },
        cores,
    ))
}

fn host(proc_root: &Path) -> Result<Meter, String> {
    let stat = proc_root.join("stat");
    let (last_busy, last_total) = read_host(&stat).map_err(|err| err.reason().to_owned())?;
    Ok(Meter::Host {
        stat,
        last_busy,
        last_total,
    })
}

/// The directory of the process's cgroup under `mount`, or the mount itself when the path
/// does not exist there (a container that sees the host's path but mounts only its own
/// cgroup).
fn own_dir(mount: &Path, relative: &str) -> PathBuf {
    let dir = mount.join(relative.trim_start_matches('/'));
    if dir.is_dir() {
        dir
    } else {
        mount.to_path_buf()
    }
}

/// `dir` and its ancestors up to `mount`.
fn ancestors<'a>(mount: &'a Path, dir: &'a Path) -> impl Iterator<Item = &'a Path> {
    dir.ancestors()
        .take_while(move |dir| dir.starts_with(mount))
}

/// The tightest of the limits, or the host's CPUs (1 if unknown).
fn allowance(quota: Option<f64>, cpuset: Option<f64>, host_cores: Option<f64>) -> f64 {
    [quota, cpuset, host_cores]
        .into_iter()
        .flatten()
        .reduce(f64::min)
        .unwrap_or(1.0)
}

/// Cumulative usage in nanoseconds: v2 `cpu.stat`'s `usage_usec`, v1 `cpuacct.usage`.
fn read_usage_nanos(path: &Path, version: CgroupVersion) -> Result<u64, CpuError> {
    let text = fs::read_to_string(path)
        .map_err(|err| CpuError::new(format!("{}: {err}", path.display())))?;
    let parsed = match version {
        CgroupVersion::V2 => text.lines().find_map(|line| {
            let micros = line.strip_prefix("usage_usec ")?;
            micros
                .trim()
                .parse::<u64>()
                .ok()
                .map(|micros| micros.saturating_mul(1_000))
        }),
        CgroupVersion::V1 | CgroupVersion::Host => text.trim().parse::<u64>().ok(),
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
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 4 {
        return Err(CpuError::new(format!(
            "{}: malformed `cpu` line",
            path.display()
        )));
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// The host's CPUs: the `cpuN` lines of `/proc/stat`.
fn host_cores(proc_root: &Path) -> Option<f64> {
    let text = fs::read_to_string(proc_root.join("stat")).ok()?;
    let count = text
        .lines()
        .filter(|line| {
            line.starts_with("cpu") && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
        })
        .count();
    (count > 0).then_some(count as f64)
}

/// `cpu.max`: `"max <period>"` (no limit) or `"<quota> <period>"`, in CPUs.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: f64 = fields.next()?.parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    let quota: f64 = quota.parse().ok()?;
    (quota > 0.0).then(|| quota / period)
}

/// The number of CPUs in a list such as `0-3,5,7-8`.
fn count_cpus(list: &str) -> Option<f64> {
    let mut total = 0_u32;
    for range in list.trim().split(',').filter(|range| !range.is_empty()) {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        let (low, high): (u32, u32) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
        total += high.checked_sub(low)? + 1;
    }
    (total > 0).then_some(f64::from(total))
}

fn read_number(path: &Path) -> Option<f64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpus("0-3\n"), Some(4.0));
        assert_eq!(count_cpus("0-3,5,7-8"), Some(7.0));
        assert_eq!(count_cpus("2"), Some(1.0));
        assert_eq!(count_cpus(""), None);
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(count_cpus("x"), None);
    }

    #[test]
    fn cpu_max_is_a_quota_in_cpus_or_no_limit() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn the_tightest_limit_wins() {
        assert_eq!(allowance(Some(1.5), Some(4.0), Some(8.0)), 1.5);
        assert_eq!(allowance(None, Some(2.0), Some(8.0)), 2.0);
        assert_eq!(allowance(None, None, Some(8.0)), 8.0);
        assert_eq!(allowance(None, None, None), 1.0);
    }
}
