//! A cgroup with a 1-CPU quota for the live server, like a pod with a 1-CPU limit: found from
//! `/proc/self/mountinfo` (cgroup v1 with the `cpu` controller mounted, or v2 with `cpu`
//! available), created for the run, removed at its end (and when the run fails).
//!
//! v1: `cpu/NAME` with `cpu.cfs_quota_us` = `cpu.cfs_period_us` = 100 000, and `cpuacct/NAME`
//! too when `cpuacct` is mounted on its own, so that usage is counted there. v2: `NAME` under
//! the mount's root with `cpu.max` = `100000 100000`, once `cpu` is enabled in the root's
//! `cgroup.subtree_control`. The server process joins by writing its id into the
//! `cgroup.procs` files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether to run the server in a CPU-limited cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupMode {
    /// When this process may create one (root on Linux, typically).
    Auto,
    /// Never.
    Off,
    /// Always: the run fails when it cannot.
    On,
}

/// The quota's period, and its quota: one CPU.
const PERIOD_US: u64 = 100_000;
/// The prefix of the cgroups this module creates.
const PREFIX: &str = "rampart-lab-live-";

/// Which cgroup interface a mount serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// A v1 hierarchy, with the controllers it carries (`cpu`, `cpuacct`, ...).
    V1(Vec<String>),
    /// The unified v2 hierarchy.
    V2,
}

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// What it is.
    pub hierarchy: Hierarchy,
}

/// The super options of a v1 mount that are not controllers (besides `name=` and the other
/// options with a value).
const NOT_CONTROLLERS: [&str; 8] = [
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "all",
    "none",
];

/// The cgroup mounts among the lines of a `/proc/self/mountinfo`.
///
/// A line is `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`; a v1
/// hierarchy names its controllers among the super options (`rw,cpu,cpuacct`). Spaces and
/// other bytes in a mount point are octal escapes (`\040`).
pub fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|&field| field == "-")?;
            let point = unescape(fields.get(4)?);
            let (kind, options) = (*fields.get(dash + 1)?, *fields.get(dash + 3)?);
            let hierarchy = match kind {
                "cgroup2" => Hierarchy::V2,
                "cgroup" => Hierarchy::V1(
                    options
                        .split(',')
                        .filter(|option| !NOT_CONTROLLERS.contains(option) && !option.contains('='))
                        .map(str::to_owned)
                        .collect(),
                ),
                _ => return None,
            };
            Some(Mount {
                point: PathBuf::from(point),
                hierarchy,
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` is a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let octal = bytes.get(at + 1..at + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[at], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                at += 4;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a CPU-limited cgroup can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Under the v1 `cpu` hierarchy at `cpu`, and under `cpuacct` when that is mounted apart.
    V1 {
        /// The `cpu` controller's mount.
        cpu: PathBuf,
        /// The `cpuacct` controller's mount, when it is not `cpu`'s.
        cpuacct: Option<PathBuf>,
    },
    /// Under the v2 hierarchy mounted at `root`.
    V2 {
        /// The mount point.
        root: PathBuf,
    },
}

/// Where to make the cgroup among `mounts`: the v1 `cpu` controller when a v1 hierarchy has it
/// (the controller then cannot serve v2), else a v2 mount whose `cgroup.controllers`, as
/// `controllers` reads it, offers `cpu`.
///
/// # Errors
///
/// Why there is nowhere: no `cpu` controller mounted in either version.
pub fn plan(
    mounts: &[Mount],
    controllers: impl Fn(&Path) -> Option<String>,
) -> Result<Plan, String> {
    let v1_with = |controller: &str| {
        mounts.iter().find_map(|mount| match &mount.hierarchy {
            Hierarchy::V1(controllers) if controllers.iter().any(|c| c == controller) => {
                Some(mount.point.clone())
            }
            _ => None,
        })
    };
    if let Some(cpu) = v1_with("cpu") {
        let cpuacct = v1_with("cpuacct").filter(|cpuacct| *cpuacct != cpu);
        return Ok(Plan::V1 { cpu, cpuacct });
    }
    mounts
        .iter()
        .filter(|mount| mount.hierarchy == Hierarchy::V2)
        .find(|mount| {
            controllers(&mount.point.join("cgroup.controllers"))
                .is_some_and(|offered| offered.split_whitespace().any(|c| c == "cpu"))
        })
        .map(|mount| Plan::V2 {
            root: mount.point.clone(),
        })
        .ok_or_else(|| "no cgroup hierarchy (v1 or v2) offers the cpu controller".to_owned())
}

/// A cgroup limited to one CPU, removed when dropped.
#[derive(Debug)]
pub struct Cgroup {
    /// The directories made, removed in reverse order.
    made: Vec<PathBuf>,
    /// A v2 root's `cgroup.subtree_control` in which `cpu` was enabled for it.
    enabled: Option<PathBuf>,
    procs: Vec<PathBuf>,
    description: String,
}

impl Cgroup {
    /// Finds where to make the cgroup on this machine and makes it, named after this process.
    ///
    /// # Errors
    ///
    /// Why it could not (not Linux, no `cpu` controller, no permission...).
    pub fn create() -> Result<Self, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|error| format!("no /proc/self/mountinfo ({error}): not Linux?"))?;
        let plan = plan(&mounts(&mountinfo), |path| {
            std::fs::read_to_string(path).ok()
        })?;
        Self::create_at(&plan, &format!("{PREFIX}{}", std::process::id()))
    }

    /// Makes cgroup `name` where `plan` says.
    ///
    /// # Errors
    ///
    /// The step that failed, and why; what was made before it is removed.
    pub fn create_at(plan: &Plan, name: &str) -> Result<Self, String> {
        let mut cgroup = Self {
            made: Vec::new(),
            enabled: None,
            procs: Vec::new(),
            description: String::new(),
        };
        match plan {
            Plan::V1 { cpu, cpuacct } => {
                let dir = cgroup.make(cpu, name)?;
                write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &PERIOD_US.to_string())?;
                cgroup.procs.push(dir.join("cgroup.procs"));
                cgroup.description = format!(
                    "cgroup v1 {} (cpu.cfs_quota_us = cpu.cfs_period_us = {PERIOD_US}: 1 CPU)",
                    dir.display()
                );
                if let Some(cpuacct) = cpuacct {
                    let dir = cgroup.make(cpuacct, name)?;
                    cgroup.procs.push(dir.join("cgroup.procs"));
                    let _ = write!(cgroup.description, " and {}", dir.display());
                }
            }
            Plan::V2 { root } => {
                let control = root.join("cgroup.subtree_control");
                let enabled = std::fs::read_to_string(&control).unwrap_or_default();
                if !enabled.split_whitespace().any(|c| c == "cpu") {
                    write(&control, "+cpu")?;
                    cgroup.enabled = Some(control);
                }
                let dir = cgroup.make(root, name)?;
                write(&dir.join("cpu.max"), &format!("{PERIOD_US} {PERIOD_US}"))?;
                cgroup.procs.push(dir.join("cgroup.procs"));
                cgroup.description = format!(
                    "cgroup v2 {} (cpu.max = \"{PERIOD_US} {PERIOD_US}\": 1 CPU)",
                    dir.display()
                );
            }
        }
        Ok(cgroup)
    }

    /// Makes `parent/name`, after removing what earlier runs left there (empty cgroups of
    /// ours: a cgroup holding a process cannot be removed).
    fn make(&mut self, parent: &Path, name: &str) -> Result<PathBuf, String> {
        if let Ok(entries) = std::fs::read_dir(parent) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let dir = parent.join(name);
        std::fs::create_dir(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        self.made.push(dir.clone());
        Ok(dir)
    }

    /// The `cgroup.procs` files a process writes its id into to join.
    pub fn procs(&self) -> &[PathBuf] {
        &self.procs
    }

    /// Which cgroup, and its quota.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in self.made.drain(..).rev() {
            // The last process may take a moment to leave after it is reaped.
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(control) = self.enabled.take() {
            let _ = std::fs::write(control, "-cpu");
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|error| format!("cannot write {}: {error}", path.display()))
}
