//! [`LinuxCpu`]: the CPU usage of the cgroup that actually limits this process, against its
//! allowance; or the host's from `/proc/stat`.
//!
//! The detection order is documented on [`LinuxCpu`]: `cgroups` finds the hierarchies and the
//! process's directory in each, `limits` reads the bounds on its CPUs, `meter` the usage.

mod cgroups;
mod limits;
mod meter;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self::cgroups::{CgroupDir, Cgroups};
use self::limits::Allowance;
pub use self::limits::{CpuLimit, LimitedBy};
use self::meter::{Meter, UsageFormat};
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

impl CgroupVersion {
    /// A short name for labels: `cgroup_v2`, `cgroup_v1` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "cgroup_v2",
            Self::V1 => "cgroup_v1",
            Self::Host => "host",
        }
    }
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2 => "cgroup v2",
            Self::V1 => "cgroup v1",
            Self::Host => "host",
        })
    }
}

/// The CPU usage of the cgroup that limits this process, as a fraction of the CPU it may use.
///
/// Each [`sample`](CpuSource::sample) is the usage since the previous one (or since
/// detection). [`detect_in`](Self::detect_in) reads from other roots than `/proc` and
/// `/sys/fs/cgroup`, for tests with fixture trees.
///
/// # Where the hierarchies are
///
/// The cgroup filesystems are found in `/proc/self/mountinfo` (else `/proc/self/mounts`, else
/// the usual layout under `/sys/fs/cgroup`): each v1 hierarchy with its controllers (`cpu` and
/// `cpuacct` mounted apart or together as `cpu,cpuacct`, `cpuset`, ...), the unified v2
/// hierarchy, and the path inside the hierarchy each mount shows. The process's cgroup in each
/// hierarchy is its path in `/proc/self/cgroup` under that mount (less the mount's root, for a
/// container given a bind mount of its own cgroup); when that directory does not exist (a
/// cgroup namespace that shows `/`, a container that sees the host's path) the mount's root
/// stands for it.
///
/// # Which cgroup is read
///
/// 1. **cgroup v2 with the cpu controller**: the unified hierarchy counts only when `cpu` is
///    listed in `cgroup.controllers` of the process's v2 cgroup or an ancestor. A kernel always
///    prints a `0::` line, and a hybrid host mounts a unified hierarchy (often at
///    `/sys/fs/cgroup/unified`) with no controllers while the quota sits in v1: there the `0::`
///    line says nothing about the CPU. Usage is `cpu.stat`'s `usage_usec`; the quota is the
///    tightest `cpu.max` of the cgroup and its ancestors.
/// 2. **cgroup v1**: usage is `cpuacct.usage` of the process's cgroup in the hierarchy holding
///    `cpuacct`; the quota is the tightest `cpu.cfs_quota_us / cpu.cfs_period_us` of its cgroup
///    and ancestors in the hierarchy holding `cpu` (the same one when co-mounted).
/// 3. **cgroup v2 without the cpu controller**: `cpu.stat` still counts the cgroup's usage;
///    there is no quota.
/// 4. **`/proc/stat`**: the whole host's busy fraction.
///
/// The allowance the usage is measured against is the tightest of the quota, the CPU set (v2
/// `cpuset.cpus.effective`, else v1 `cpuset.effective_cpus` or `cpuset.cpus`, wherever the
/// cpuset controller is) and the host's online CPUs (the `cpuN` lines of `/proc/stat`).
/// `Display` names the choice and each bound with the file it came from:
///
/// ```text
/// cgroup v1 /sys/fs/cgroup/cpuacct/app (usage /sys/fs/cgroup/cpuacct/app/cpuacct.usage):
/// 1 CPU allowed, limited by quota; quota 1 CPU (/sys/fs/cgroup/cpu/app/cpu.cfs_quota_us);
/// cpuset 2 CPUs (/sys/fs/cgroup/cpuset/cpuset.effective_cpus); host 2 CPUs (/proc/stat)
/// ```
#[derive(Debug)]
pub struct LinuxCpu {
    version: CgroupVersion,
    /// The cgroup whose usage is read (none for the host).
    cgroup: Option<PathBuf>,
    meter: Meter,
    allowance: Allowance,
    /// CPUs the process may use (a fraction under a CFS quota).
    cores: f64,
    last_read: Instant,
}

impl LinuxCpu {
    /// Detects the cgroup limiting this process, from `/proc` (falling back on the usual
    /// layout under `/sys/fs/cgroup` when `/proc` has no mount table).
    ///
    /// # Errors
    ///
    /// When none of the sources can be read, with each one's reason.
    pub fn detect() -> Result<Self, CpuError> {
        Self::detect_in(Path::new("/proc"), Path::new("/sys/fs/cgroup"))
    }

    /// Detects the cgroup limiting this process from `proc_root` (its `self/cgroup`,
    /// `self/mountinfo` or `self/mounts`, and `stat`). The mount points come from the mount
    /// table; only without one are the hierarchies looked for under `cgroup_root`.
    ///
    /// # Errors
    ///
    /// When none of the sources can be read, with each one's reason.
    pub fn detect_in(proc_root: &Path, cgroup_root: &Path) -> Result<Self, CpuError> {
        let cgroups = Cgroups::read(proc_root, cgroup_root);
        let bounds = Allowance {
            quota: None,
            cpuset: limits::cpuset(&cgroups),
            host: limits::host(proc_root),
        };
        let mut reasons = Vec::new();
        let v2 = cgroups.v2();
        let v2_with_cpu = v2.as_ref().is_ok_and(limits::v2_has_cpu_controller);
        // 1. v2, where it holds the cpu controller.
        match &v2 {
            Ok(cgroup) if v2_with_cpu => match v2_meter(cgroup) {
                Ok(meter) => {
                    let quota = limits::v2_quota(cgroup);
                    let allowance = Allowance { quota, ..bounds };
                    return Ok(Self::new(CgroupVersion::V2, Some(cgroup), meter, allowance));
                }
                Err(reason) => reasons.push(format!("cgroup v2: {reason}")),
            },
            Ok(cgroup) => reasons.push(format!(
                "cgroup v2: no cpu controller in {}",
                cgroup.dir.join("cgroup.controllers").display()
            )),
            Err(reason) => reasons.push(format!("cgroup v2: {reason}")),
        }
        // 2. v1: usage from `cpuacct`, the quota from `cpu`.
        let v1 = cgroups.v1("cpuacct").and_then(|cgroup| {
            let usage = cgroup.dir.join("cpuacct.usage");
            Ok((Meter::cgroup(usage, UsageFormat::CpuacctUsage)?, cgroup))
        });
        match v1 {
            Ok((meter, cgroup)) => {
                let quota = cgroups
                    .v1("cpu")
                    .ok()
                    .and_then(|cpu| limits::v1_quota(&cpu));
                let allowance = Allowance { quota, ..bounds };
                return Ok(Self::new(
                    CgroupVersion::V1,
                    Some(&cgroup),
                    meter,
                    allowance,
                ));
            }
            Err(reason) => reasons.push(format!("cgroup v1: {reason}")),
        }
        // 3. v2 without the cpu controller still counts the cgroup's usage.
        if let Ok(cgroup) = &v2
            && !v2_with_cpu
        {
            match v2_meter(cgroup) {
                Ok(meter) => {
                    return Ok(Self::new(CgroupVersion::V2, Some(cgroup), meter, bounds));
                }
                Err(reason) => reasons.push(format!("cgroup v2 usage: {reason}")),
            }
        }
        // 4. The host.
        match Meter::host(proc_root.join("stat")) {
            Ok(meter) => Ok(Self::new(CgroupVersion::Host, None, meter, bounds)),
            Err(reason) => {
                reasons.push(format!("/proc/stat: {reason}"));
                Err(CpuError::new(reasons.join("; ")))
            }
        }
    }

    fn new(
        version: CgroupVersion,
        cgroup: Option<&CgroupDir>,
        meter: Meter,
        allowance: Allowance,
    ) -> Self {
        Self {
            version,
            cgroup: cgroup.map(|cgroup| cgroup.dir.clone()),
            meter,
            cores: allowance.cores(),
            allowance,
            last_read: Instant::now(),
        }
    }

    /// Which accounting this source reads.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The cgroup whose usage is read (`None` when reading the host's `/proc/stat`).
    pub fn cgroup(&self) -> Option<&Path> {
        self.cgroup.as_deref()
    }

    /// The cumulative usage file read on each sample.
    pub fn usage_file(&self) -> &Path {
        self.meter.file()
    }

    /// The CPUs the process may use: the tightest of its quota, its CPU set and the host's
    /// CPUs (1 if none could be read).
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// Which bound sets [`cores`](Self::cores).
    pub fn limited_by(&self) -> LimitedBy {
        self.allowance.limited_by()
    }

    /// The CFS quota of the cgroup or its tightest ancestor, if any.
    pub fn quota(&self) -> Option<&CpuLimit> {
        self.allowance.quota.as_ref()
    }

    /// The process's CPU set, if a cpuset controller is mounted.
    pub fn cpuset(&self) -> Option<&CpuLimit> {
        self.allowance.cpuset.as_ref()
    }

    /// The host's online CPUs, if `/proc/stat` lists them.
    pub fn host_cpus(&self) -> Option<&CpuLimit> {
        self.allowance.host.as_ref()
    }

    /// The usage over the last `elapsed` of wall time (cgroup sources; the host source
    /// measures its own interval). [`sample`](CpuSource::sample) passes the real elapsed time.
    ///
    /// # Errors
    ///
    /// If the usage file can no longer be read.
    pub fn sample_over(&mut self, elapsed: Duration) -> Result<f64, CpuError> {
        self.meter.sample(elapsed, self.cores)
    }
}

fn v2_meter(cgroup: &CgroupDir) -> Result<Meter, String> {
    Meter::cgroup(cgroup.dir.join("cpu.stat"), UsageFormat::CpuStat)
}

impl fmt::Display for LinuxCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.version)?;
        if let Some(cgroup) = &self.cgroup {
            write!(f, " {}", cgroup.display())?;
        }
        write!(
            f,
            " (usage {}): {}",
            self.usage_file().display(),
            self.allowance
        )
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
