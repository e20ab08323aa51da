//! The bounds on the CPUs a process may use (a CFS quota, a CPU set, the host's CPUs), each
//! with the file it was read from.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::cgroups::{CgroupDir, Cgroups};

/// One bound on the CPUs the process may use, and the file it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuLimit {
    cores: f64,
    source: PathBuf,
}

impl CpuLimit {
    fn new(cores: f64, source: PathBuf) -> Self {
        Self { cores, source }
    }

    /// The CPUs this bound allows (a fraction under a CFS quota).
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// The file it was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }
}

impl fmt::Display for CpuLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", Cores(self.cores), self.source.display())
    }
}

/// Which bound sets the CPU allowance of a [`LinuxCpu`](super::LinuxCpu): the tightest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedBy {
    /// A CFS quota: v2 `cpu.max` or v1 `cpu.cfs_quota_us / cpu.cfs_period_us`, of the cgroup
    /// or an ancestor.
    Quota,
    /// The cgroup's CPU set.
    Cpuset,
    /// The host's online CPUs.
    Host,
    /// Nothing could be read: one CPU is assumed.
    Unknown,
}

impl LimitedBy {
    /// A short lowercase name: `quota`, `cpuset`, `host` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quota => "quota",
            Self::Cpuset => "cpuset",
            Self::Host => "host",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for LimitedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every bound found; the allowance is the tightest.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Allowance {
    pub(super) quota: Option<CpuLimit>,
    pub(super) cpuset: Option<CpuLimit>,
    pub(super) host: Option<CpuLimit>,
}

impl Allowance {
    /// The tightest bound (the quota first on a tie), if any.
    fn tightest(&self) -> Option<(LimitedBy, &CpuLimit)> {
        [
            (LimitedBy::Quota, &self.quota),
            (LimitedBy::Cpuset, &self.cpuset),
            (LimitedBy::Host, &self.host),
        ]
        .into_iter()
        .filter_map(|(by, limit)| Some((by, limit.as_ref()?)))
        .reduce(|tightest, next| {
            if next.1.cores < tightest.1.cores {
                next
            } else {
                tightest
            }
        })
    }

    /// The CPUs the process may use: the tightest bound, or 1 if none could be read.
    pub(super) fn cores(&self) -> f64 {
        self.tightest().map_or(1.0, |(_, limit)| limit.cores)
    }

    pub(super) fn limited_by(&self) -> LimitedBy {
        self.tightest().map_or(LimitedBy::Unknown, |(by, _)| by)
    }
}

impl fmt::Display for Allowance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} allowed, limited by {}",
            Cores(self.cores()),
            self.limited_by()
        )?;
        let bounds = [
            ("quota", &self.quota),
            ("cpuset", &self.cpuset),
            ("host", &self.host),
        ];
        for (name, limit) in bounds {
            match limit {
                Some(limit) => write!(f, "; {name} {limit}")?,
                None => write!(f, "; no {name}")?,
            }
        }
        Ok(())
    }
}

/// A number of CPUs, with at most three decimals and a unit.
struct Cores(f64);

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.3}", self.0);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        let unit = if text == "1" { "CPU" } else { "CPUs" };
        write!(f, "{text} {unit}")
    }
}

/// The tightest `cpu.max` of a v2 cgroup and its ancestors.
pub(super) fn v2_quota(cgroup: &CgroupDir) -> Option<CpuLimit> {
    tightest(cgroup.lineage().filter_map(|dir| {
        let file = dir.join("cpu.max");
        let cores = parse_cpu_max(&fs::read_to_string(&file).ok()?)?;
        Some(CpuLimit::new(cores, file))
    }))
}

/// The tightest `cpu.cfs_quota_us / cpu.cfs_period_us` of a v1 cgroup and its ancestors.
pub(super) fn v1_quota(cgroup: &CgroupDir) -> Option<CpuLimit> {
    tightest(cgroup.lineage().filter_map(|dir| {
        let file = dir.join("cpu.cfs_quota_us");
        let quota = fs::read_to_string(&file).ok()?;
        let period = fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?;
        Some(CpuLimit::new(parse_cfs(&quota, &period)?, file))
    }))
}

/// The nearest tightest limit (the nearest cgroup wins a tie).
fn tightest(limits: impl Iterator<Item = CpuLimit>) -> Option<CpuLimit> {
    limits.reduce(|tightest, next| {
        if next.cores < tightest.cores {
            next
        } else {
            tightest
        }
    })
}

/// The process's CPU set: v2 `cpuset.cpus.effective`, else v1 `cpuset.effective_cpus` or
/// `cpuset.cpus`, of the nearest cgroup that has one.
pub(super) fn cpuset(cgroups: &Cgroups) -> Option<CpuLimit> {
    let nearest = |cgroup: CgroupDir, files: &[&str]| {
        cgroup.lineage().find_map(|dir| {
            files.iter().find_map(|name| {
                let file = dir.join(name);
                let cores = count_cpus(&fs::read_to_string(&file).ok()?)?;
                Some(CpuLimit::new(cores, file))
            })
        })
    };
    let v2 = || nearest(cgroups.v2().ok()?, &["cpuset.cpus.effective"]);
    // Mounted with `noprefix`, the files lose their `cpuset.` prefix.
    let v1_files = [
        "cpuset.effective_cpus",
        "cpuset.cpus",
        "effective_cpus",
        "cpus",
    ];
    let v1 = || nearest(cgroups.v1("cpuset").ok()?, &v1_files);
    v2().or_else(v1)
}

/// The host's online CPUs: the `cpuN` lines of `/proc/stat`.
pub(super) fn host(proc_root: &Path) -> Option<CpuLimit> {
    let file = proc_root.join("stat");
    let count = fs::read_to_string(&file)
        .ok()?
        .lines()
        .filter(|line| {
            line.starts_with("cpu") && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
        })
        .count();
    (count > 0).then(|| CpuLimit::new(count as f64, file))
}

/// Whether the cpu controller is enabled for a v2 cgroup: `cgroup.controllers` of it or of an
/// ancestor lists `cpu` (a hybrid host's unified mount often lists none).
pub(super) fn v2_has_cpu_controller(cgroup: &CgroupDir) -> bool {
    cgroup.lineage().any(|dir| {
        fs::read_to_string(dir.join("cgroup.controllers"))
            .is_ok_and(|text| text.split_whitespace().any(|name| name == "cpu"))
    })
}

/// `cpu.max`: `"max <period>"` (no limit) or `"<quota> <period>"` in microseconds, as CPUs.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: u64 = fields.next()?.parse().ok()?;
    let quota: u64 = quota.parse().ok()?; // `max` is no limit
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// v1's `cpu.cfs_quota_us` (`-1`: no limit) over `cpu.cfs_period_us`, as CPUs.
fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// The number of CPUs in a list such as `0-3,5,7-8`.
fn count_cpus(list: &str) -> Option<f64> {
    let mut total = 0_u64;
    for range in list.trim().split(',').filter(|range| !range.is_empty()) {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        let (low, high): (u64, u64) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
        total = total.checked_add(high.checked_sub(low)?.checked_add(1)?)?;
    }
    (total > 0).then_some(total as f64)
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
        assert_eq!(count_cpus("\n"), None, "an empty v1 cpuset");
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(count_cpus("x"), None);
        assert_eq!(
            count_cpus("0-18446744073709551615"),
            None,
            "overflow, no panic"
        );
    }

    #[test]
    fn cpu_max_is_a_quota_in_cpus_or_no_limit() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cpu_max("NaN 100000"), None);
        assert_eq!(parse_cpu_max("100000 0"), None);
        assert_eq!(parse_cpu_max("-5 100000"), None);
    }

    #[test]
    fn cfs_quota_is_a_fraction_of_its_period_or_no_limit() {
        assert_eq!(parse_cfs("50000\n", "100000\n"), Some(0.5));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("100000", "0"), None);
        assert_eq!(parse_cfs("inf", "100000"), None);
    }

    #[test]
    fn the_tightest_limit_wins_and_the_quota_wins_a_tie() {
        let limit = |cores| Some(CpuLimit::new(cores, PathBuf::from("f")));
        let allowance = |quota, cpuset, host| Allowance {
            quota,
            cpuset,
            host,
        };
        let all = allowance(limit(1.5), limit(4.0), limit(8.0));
        assert_eq!((all.cores(), all.limited_by()), (1.5, LimitedBy::Quota));
        let cpuset = allowance(None, limit(2.0), limit(8.0));
        assert_eq!(
            (cpuset.cores(), cpuset.limited_by()),
            (2.0, LimitedBy::Cpuset)
        );
        let tie = allowance(limit(2.0), limit(2.0), limit(2.0));
        assert_eq!(tie.limited_by(), LimitedBy::Quota);
        let host = allowance(None, None, limit(8.0));
        assert_eq!((host.cores(), host.limited_by()), (8.0, LimitedBy::Host));
        let none = Allowance::default();
        assert_eq!((none.cores(), none.limited_by()), (1.0, LimitedBy::Unknown));
    }

    #[test]
    fn cores_print_with_at_most_three_decimals() {
        assert_eq!(Cores(1.0).to_string(), "1 CPU");
        assert_eq!(Cores(1.5).to_string(), "1.5 CPUs");
        assert_eq!(Cores(1.0 / 3.0).to_string(), "0.333 CPUs");
        assert_eq!(Cores(10.0).to_string(), "10 CPUs");
        assert_eq!(Cores(0.0).to_string(), "0 CPUs");
    }
}
