//! Where the process's cgroups are: the hierarchies mounted (from `/proc/self/mountinfo`, else
//! `/proc/self/mounts`, else the usual layout under the cgroup root) and the process's path in
//! each (from `/proc/self/cgroup`), resolved to directories.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// `None` for the unified (v2) hierarchy; a v1 hierarchy's mount options, which name its
    /// controllers (`cpu`, `cpuacct`, `name=systemd`, ...) among flags such as `rw`.
    options: Option<Vec<String>>,
    /// The path inside the hierarchy that is mounted here (`/` unless a container was given a
    /// bind mount of its own cgroup).
    root: String,
    /// Where it is mounted.
    point: PathBuf,
}

impl Mount {
    fn holds(&self, controller: &str) -> bool {
        self.options
            .as_ref()
            .is_some_and(|options| options.iter().any(|option| option == controller))
    }
}

/// A line of `/proc/self/cgroup`: `id:controllers:path` (`0::path` for the unified hierarchy).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    controllers: Vec<String>,
    path: String,
}

/// The process's directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CgroupDir {
    /// The hierarchy's mount point: the walk up to ancestors stops there.
    pub(super) mount: PathBuf,
    /// The process's cgroup, or the mount point when its path does not exist under the mount
    /// (a cgroup namespace, or a container given only its own cgroup).
    pub(super) dir: PathBuf,
}

impl CgroupDir {
    /// The cgroup and its ancestors up to the mount point, nearest first.
    pub(super) fn lineage(&self) -> impl Iterator<Item = &Path> {
        self.dir
            .ancestors()
            .take_while(|dir| dir.starts_with(&self.mount))
    }
}

/// The cgroup hierarchies this process can see and its place in each.
#[derive(Debug, Clone, Default)]
pub(super) struct Cgroups {
    mounts: Vec<Mount>,
    memberships: Vec<Membership>,
}

impl Cgroups {
    /// Reads the memberships from `proc_root/self/cgroup` and the mounts from
    /// `proc_root/self/mountinfo` (else `proc_root/self/mounts`, else the usual layout under
    /// `cgroup_root`: a v2 mount at the root or at `unified/`, v1 hierarchies in directories
    /// named after their controllers).
    pub(super) fn read(proc_root: &Path, cgroup_root: &Path) -> Self {
        let text = |name: &str| fs::read_to_string(proc_root.join("self").join(name)).ok();
        let memberships = text("cgroup").map_or_else(Vec::new, |text| parse_memberships(&text));
        let mounts = [
            text("mountinfo").map(|text| parse_mountinfo(&text)),
            text("mounts").map(|text| parse_mounts(&text)),
        ]
        .into_iter()
        .flatten()
        .find(|mounts| !mounts.is_empty())
        .unwrap_or_else(|| usual_layout(cgroup_root));
        Self {
            mounts,
            memberships,
        }
    }

    /// The process's directory in the unified hierarchy.
    pub(super) fn v2(&self) -> Result<CgroupDir, String> {
        let path = self
            .memberships
            .iter()
            .find(|membership| membership.controllers.is_empty())
            .map(|membership| membership.path.as_str())
            .ok_or("no `0::` line in /proc/self/cgroup")?;
        let mounts = self.mounts.iter().filter(|mount| mount.options.is_none());
        resolve(mounts, path).ok_or_else(|| "no cgroup2 mount".to_owned())
    }

    /// The process's directory in the v1 hierarchy that holds `controller`.
    pub(super) fn v1(&self, controller: &str) -> Result<CgroupDir, String> {
        let path = self
            .memberships
            .iter()
            .find(|membership| membership.controllers.iter().any(|c| c == controller))
            .map(|membership| membership.path.as_str())
            .ok_or_else(|| format!("no `{controller}` line in /proc/self/cgroup"))?;
        let mounts = self.mounts.iter().filter(|mount| mount.holds(controller));
        resolve(mounts, path).ok_or_else(|| format!("no cgroup mount with `{controller}`"))
    }
}

/// The process's directory for `path` under the first of `mounts` where it exists, or else
/// the first mount point.
fn resolve<'a>(mounts: impl Iterator<Item = &'a Mount>, path: &str) -> Option<CgroupDir> {
    let mut fallback = None;
    for mount in mounts {
        let dir = CgroupDir {
            mount: mount.point.clone(),
            dir: mount.point.clone(),
        };
        if let Some(own) = own_dir(mount, path) {
            return Some(CgroupDir { dir: own, ..dir });
        }
        fallback.get_or_insert(dir);
    }
    fallback
}

/// `path`'s directory under `mount`, if it exists there.
fn own_dir(mount: &Mount, path: &str) -> Option<PathBuf> {
    // Paths are relative to the hierarchy's root; a bind mount shows a subtree of it. Inside a
    // cgroup namespace the path is relative to the namespace's root: try it as it is.
    let relative = match mount.root.trim_end_matches('/') {
        "" => path,
        root => path
            .strip_prefix(root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or(path),
    };
    let relative = Path::new(relative.trim_start_matches('/'));
    if relative
        .components()
        .any(|component| !matches!(component, Component::Normal(_)))
    {
        return None;
    }
    let dir = if relative.as_os_str().is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(relative)
    };
    dir.is_dir().then_some(dir)
}

fn parse_memberships(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|controller| !controller.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The cgroup mounts of `/proc/self/mountinfo`: `id parent major:minor root point options
/// [optional fields...] - fstype source super-options`.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let separator = fields.iter().skip(6).position(|field| *field == "-")? + 6;
            let (root, point) = (fields.get(3)?, fields.get(4)?);
            let (fstype, options) = (fields.get(separator + 1)?, fields.get(separator + 3)?);
            mount(fstype, options, &unescape(root), unescape(point))
        })
        .collect()
}

/// The cgroup mounts of `/proc/self/mounts`: `source point fstype options dump pass` (no
/// mount root: taken as the hierarchy's root).
fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (point, fstype, options) = (fields.next()?, fields.next()?, fields.next()?);
            mount(fstype, options, OsStr::new("/"), unescape(point))
        })
        .collect()
}

fn mount(fstype: &str, options: &str, root: &OsStr, point: OsString) -> Option<Mount> {
    let options = match fstype {
        "cgroup2" => None,
        "cgroup" => Some(options.split(',').map(str::to_owned).collect()),
        _ => return None,
    };
    Some(Mount {
        options,
        root: root.to_string_lossy().into_owned(),
        point: PathBuf::from(point),
    })
}

/// The usual layout under `root`, for a `/proc` without mount tables: the unified hierarchy at
/// `root` itself (pure v2) or at `root/unified` (hybrid), v1 hierarchies in the directories
/// named after their controllers (`cpu,cpuacct`, `cpuset`, ...).
fn usual_layout(root: &Path) -> Vec<Mount> {
    let at = |point: PathBuf, options: Option<Vec<String>>| Mount {
        options,
        root: "/".to_owned(),
        point,
    };
    if root.join("cgroup.controllers").is_file() {
        return vec![at(root.to_path_buf(), None)];
    }
    let mut mounts: Vec<Mount> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let point = entry.path();
            if name == "unified" {
                return point
                    .join("cgroup.controllers")
                    .is_file()
                    .then(|| at(point, None));
            }
            let options = name.split(',').map(|controller| match controller {
                "systemd" => "name=systemd".to_owned(),
                other => other.to_owned(),
            });
            point.is_dir().then(|| at(point, Some(options.collect())))
        })
        .collect();
    // Directory order is arbitrary: sort for the same answer on every run.
    mounts.sort_by(|a, b| a.point.cmp(&b.point));
    mounts
}

/// Undoes the kernel's octal escapes in mount tables (`\040` for a space, `\134` for `\`).
fn unescape(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .filter(|digits| digits.iter().all(|digit| (b'0'..=b'7').contains(digit)))
            .and_then(|digits| {
                let value = digits
                    .iter()
                    .fold(0_u16, |value, digit| value * 8 + u16::from(digit - b'0'));
                u8::try_from(value).ok()
            });
        if let Some(byte) = escaped {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 /docker/abc /mnt/my\\040cgroup rw - cgroup cgroup rw,cpuset,noprefix
";

    #[test]
    fn mountinfo_names_each_hierarchy_its_root_and_its_mount_point() {
        let mounts = parse_mountinfo(HYBRID);
        assert_eq!(mounts.len(), 4, "{mounts:?}");
        assert!(mounts[0].holds("cpu") && !mounts[0].holds("cpuacct"));
        assert!(mounts[1].holds("cpuacct"), "optional fields are skipped");
        assert_eq!(mounts[2].options, None, "cgroup2");
        assert_eq!(mounts[2].point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(mounts[3].root, "/docker/abc");
        assert_eq!(mounts[3].point, Path::new("/mnt/my cgroup"), "unescaped");
    }

    #[test]
    fn malformed_mount_lines_are_skipped() {
        let text = "garbage\n1 2 3\n1 2 3:4 / /x rw - cgroup\n\n- - - - - - - -\n";
        assert!(parse_mountinfo(text).is_empty());
        assert!(parse_mounts("cgroup\n\n").is_empty());
    }

    #[test]
    fn proc_mounts_lists_cgroup_filesystems_only() {
        let text = "proc /proc proc rw 0 0\ncgroup /c/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
                    cgroup2 /c/unified cgroup2 rw 0 0\n";
        let mounts = parse_mounts(text);
        assert_eq!(mounts.len(), 2);
        assert!(mounts[0].holds("cpu") && mounts[0].holds("cpuacct"));
        assert_eq!(mounts[1].options, None);
    }

    #[test]
    fn memberships_split_controllers_and_keep_colons_in_paths() {
        let parsed = parse_memberships("4:cpu,cpuacct:/a:b\n0::/\nnonsense\n1:name=systemd:/s\n");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(parsed[0].path, "/a:b");
        assert!(parsed[1].controllers.is_empty());
        assert_eq!(parsed[2].controllers, ["name=systemd"]);
    }

    #[test]
    fn escapes_that_are_not_octal_are_kept() {
        assert_eq!(unescape(r"a\040b"), "a b");
        assert_eq!(unescape(r"a\09"), r"a\09");
        assert_eq!(unescape(r"tail\"), r"tail\");
        assert_eq!(unescape(r"\777"), r"\777", "out of a byte's range");
        assert_eq!(unescape(r"\+12"), r"\+12", "octal digits only");
    }

    #[test]
    fn paths_that_climb_out_of_the_mount_are_not_followed() {
        let mount = Mount {
            options: None,
            root: "/".to_owned(),
            point: std::env::temp_dir(),
        };
        assert_eq!(own_dir(&mount, "/../.."), None);
    }
}
