//! CPU source detection on every cgroup layout, each a fixture tree whose mount table
//! (`/proc/self/mountinfo`) points into it: the source must pick the cgroup that actually
//! limits the process and measure usage against the tightest bound.
#![cfg(target_os = "linux")]

mod cgroup_tree;

use std::fs;
use std::time::Duration;

use cgroup_tree::{Tree, set};
use rampart_ratelimit::cpu::{CgroupVersion, CpuLimit, LimitedBy, LinuxCpu};

const SECOND: Duration = Duration::from_secs(1);

/// The mounts of a hybrid host: v1 controllers each mounted apart, and a unified hierarchy at
/// `unified/` that holds no controller (a machine this crate was measured on).
fn hybrid_mounts(tree: &mut Tree) {
    tree.mount("/", "sys/fs/cgroup", "tmpfs", "rw,mode=755")
        .mount("/", "sys/fs/cgroup/cpu", "cgroup", "rw,cpu")
        .mount("/", "sys/fs/cgroup/cpuacct", "cgroup", "rw,cpuacct")
        .mount("/", "sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset")
        .mount("/", "sys/fs/cgroup/memory", "cgroup", "rw,memory")
        .mount(
            "/",
            "sys/fs/cgroup/systemd",
            "cgroup",
            "rw,xattr,name=systemd",
        )
        .mount("/", "sys/fs/cgroup/unified", "cgroup2", "rw,nsdelegate");
}

/// A 1-CPU quota on `/rampart-check` in `hybrid_mounts`, the process in it.
fn hybrid_with_a_quota() -> Tree {
    let mut tree = Tree::new("hybrid");
    hybrid_mounts(&mut tree);
    tree.host(2, 100, 100)
        .cgroup(
            "9:name=systemd:/\n4:memory:/box\n3:cpuset:/\n2:cpuacct:/rampart-check\n\
             1:cpu:/rampart-check\n0::/\n",
        )
        // The unified root counts the whole machine and lists no cpu controller.
        .write("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n")
        .write("sys/fs/cgroup/unified/cpu.stat", "usage_usec 999000000\n")
        .write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n")
        .write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
        .write(
            "sys/fs/cgroup/cpu/rampart-check/cpu.cfs_quota_us",
            "100000\n",
        )
        .write(
            "sys/fs/cgroup/cpu/rampart-check/cpu.cfs_period_us",
            "100000\n",
        )
        .write("sys/fs/cgroup/cpuacct/cpuacct.usage", "999000000000\n")
        .write(
            "sys/fs/cgroup/cpuacct/rampart-check/cpuacct.usage",
            "1000000000\n",
        )
        .write("sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-1\n")
        .write("sys/fs/cgroup/cpuset/cpuset.cpus", "0-1\n");
    tree
}

#[test]
fn hybrid_host_reads_the_v1_quota_not_the_unified_root_without_controllers() {
    let tree = hybrid_with_a_quota();
    let mut cpu = tree.detect().expect("detected");
    assert_eq!(cpu.version(), CgroupVersion::V1, "{cpu}");
    assert_eq!(
        cpu.cgroup(),
        Some(tree.path("sys/fs/cgroup/cpuacct/rampart-check").as_path())
    );
    assert_eq!((cpu.cores(), cpu.limited_by()), (1.0, LimitedBy::Quota));
    let quota = cpu.quota().expect("a quota");
    assert_eq!(
        quota.source(),
        tree.path("sys/fs/cgroup/cpu/rampart-check/cpu.cfs_quota_us")
    );
    assert_eq!(cpu.cpuset().map(CpuLimit::cores), Some(2.0));
    assert_eq!(cpu.host_cpus().map(CpuLimit::cores), Some(2.0));
    // Throttled at its quota: 0.99 CPU-seconds in one second of one CPU.
    set(
        &tree.path("sys/fs/cgroup/cpuacct/rampart-check/cpuacct.usage"),
        "1990000000\n",
    );
    assert!((cpu.sample_over(SECOND).expect("readable") - 0.99).abs() < 1e-9);

    let shown = cpu.to_string();
    for part in [
        "cgroup v1",
        "rampart-check/cpuacct.usage",
        "1 CPU allowed, limited by quota",
        "quota 1 CPU (",
        "cpuset 2 CPUs (",
        "host 2 CPUs (",
    ] {
        assert!(shown.contains(part), "{part:?} in {shown}");
    }
    let debug = format!("{cpu:?}");
    assert!(debug.contains("cpu.cfs_quota_us"), "{debug}");
}

#[test]
fn v1_separate_cpu_and_cpuacct_mounts_are_each_found() {
    // The same layout without a unified mount: only v1.
    let mut tree = Tree::new("v1-separate");
    tree.mount("/", "sys/fs/cgroup/cpu", "cgroup", "rw,cpu")
        .mount("/", "sys/fs/cgroup/cpuacct", "cgroup", "rw,cpuacct");
    tree.host(8, 100, 100)
        .cgroup("2:cpuacct:/jobs/a\n1:cpu:/jobs/b\n0::/\n")
        .write("sys/fs/cgroup/cpu/jobs/b/cpu.cfs_quota_us", "250000\n")
        .write("sys/fs/cgroup/cpu/jobs/b/cpu.cfs_period_us", "100000\n")
        .write("sys/fs/cgroup/cpuacct/jobs/a/cpuacct.usage", "0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::V1, 2.5));
    assert_eq!(
        cpu.usage_file(),
        tree.path("sys/fs/cgroup/cpuacct/jobs/a/cpuacct.usage")
    );
    assert_eq!(cpu.cpuset(), None, "no cpuset controller mounted");
}

#[test]
fn v1_co_mounted_cpu_cpuacct_reads_the_quota_of_its_own_cgroup() {
    let mut tree = Tree::new("v1-comounted");
    tree.mount("/", "sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct")
        .mount("/", "sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset");
    let pod = "sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1";
    tree.host(16, 100, 100)
        .cgroup(
            "11:cpuset:/kubepods/burstable/pod1/ctr\n\
             4:cpu,cpuacct:/kubepods/burstable/pod1/ctr\n1:name=systemd:/\n0::/\n",
        )
        .write(&format!("{pod}/cpu.cfs_quota_us"), "-1\n")
        .write(&format!("{pod}/cpu.cfs_period_us"), "100000\n")
        .write(&format!("{pod}/ctr/cpu.cfs_quota_us"), "150000\n")
        .write(&format!("{pod}/ctr/cpu.cfs_period_us"), "100000\n")
        .write(&format!("{pod}/ctr/cpuacct.usage"), "5000000000\n")
        .write(
            "sys/fs/cgroup/cpuset/kubepods/burstable/pod1/ctr/cpuset.cpus",
            "0-15\n",
        );
    let mut cpu = tree.detect().expect("detected");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::V1, 1.5));
    assert_eq!(
        cpu.cgroup(),
        Some(tree.path(&format!("{pod}/ctr")).as_path())
    );
    assert_eq!(
        cpu.quota().map(|quota| quota.source().to_path_buf()),
        Some(tree.path(&format!("{pod}/ctr/cpu.cfs_quota_us")))
    );
    set(
        &tree.path(&format!("{pod}/ctr/cpuacct.usage")),
        "5750000000\n",
    );
    assert_eq!(cpu.sample_over(SECOND).expect("readable"), 0.5);
}

#[test]
fn v1_quota_of_a_tighter_parent_applies_to_an_unlimited_child() {
    let mut tree = Tree::new("v1-parent");
    tree.mount("/", "sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct");
    let parent = "sys/fs/cgroup/cpu,cpuacct/parent";
    tree.host(2, 100, 100)
        .cgroup("3:cpu,cpuacct:/parent/child\n0::/\n")
        .write(&format!("{parent}/cpu.cfs_quota_us"), "50000\n")
        .write(&format!("{parent}/cpu.cfs_period_us"), "100000\n")
        .write(&format!("{parent}/child/cpu.cfs_quota_us"), "-1\n")
        .write(&format!("{parent}/child/cpu.cfs_period_us"), "100000\n")
        .write(&format!("{parent}/child/cpuacct.usage"), "0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!((cpu.cores(), cpu.limited_by()), (0.5, LimitedBy::Quota));
    assert_eq!(
        cpu.quota().map(|quota| quota.source().to_path_buf()),
        Some(tree.path(&format!("{parent}/cpu.cfs_quota_us")))
    );
    // A looser child quota changes nothing; a tighter one wins.
    set(
        &tree.path(&format!("{parent}/child/cpu.cfs_quota_us")),
        "150000\n",
    );
    assert_eq!(tree.detect().expect("detected").cores(), 0.5);
    set(
        &tree.path(&format!("{parent}/child/cpu.cfs_quota_us")),
        "20000\n",
    );
    assert_eq!(tree.detect().expect("detected").cores(), 0.2);
}

#[test]
fn v2_nested_cgroup_takes_the_tightest_ancestor_cpu_max() {
    let mut tree = Tree::new("v2-nested");
    tree.mount(
        "/",
        "sys/fs/cgroup",
        "cgroup2",
        "rw,nsdelegate,memory_recursiveprot",
    );
    let pod = "sys/fs/cgroup/kubepods/burstable/pod1";
    tree.host(8, 100, 100)
        .cgroup("0::/kubepods/burstable/pod1/ctr\n")
        .write(
            "sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        )
        .write("sys/fs/cgroup/kubepods/cpu.max", "400000 100000\n")
        .write(&format!("{pod}/cpu.max"), "50000 100000\n")
        .write(&format!("{pod}/ctr/cpu.max"), "max 100000\n")
        .write(&format!("{pod}/ctr/cpu.stat"), "usage_usec 1000000\n");
    let mut cpu = tree.detect().expect("detected");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::V2, 0.5));
    assert_eq!(
        cpu.cgroup(),
        Some(tree.path(&format!("{pod}/ctr")).as_path())
    );
    assert_eq!(
        cpu.quota().map(|quota| quota.source().to_path_buf()),
        Some(tree.path(&format!("{pod}/cpu.max")))
    );
    set(
        &tree.path(&format!("{pod}/ctr/cpu.stat")),
        "usage_usec 1250000\nuser_usec 1\n",
    );
    assert_eq!(cpu.sample_over(SECOND).expect("readable"), 0.5);
}

#[test]
fn v2_with_max_at_every_level_is_bounded_by_its_cpuset_then_the_host() {
    let mut tree = Tree::new("v2-max");
    tree.mount("/", "sys/fs/cgroup", "cgroup2", "rw");
    tree.host(8, 100, 100)
        .cgroup("0::/app\n")
        .write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu\n")
        .write("sys/fs/cgroup/app/cpu.max", "max 100000\n")
        .write("sys/fs/cgroup/app/cpuset.cpus.effective", "0-2\n")
        .write("sys/fs/cgroup/app/cpu.stat", "usage_usec 0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!(cpu.quota(), None);
    assert_eq!((cpu.cores(), cpu.limited_by()), (3.0, LimitedBy::Cpuset));
    fs::remove_file(tree.path("sys/fs/cgroup/app/cpuset.cpus.effective")).expect("rm");
    let cpu = tree.detect().expect("detected");
    assert_eq!((cpu.cores(), cpu.limited_by()), (8.0, LimitedBy::Host));
}

#[test]
fn v2_cpu_controller_listed_only_by_an_ancestor_still_counts() {
    // The parent enabled `cpu` for its children but the process's own cgroup delegates none.
    let mut tree = Tree::new("v2-ancestor");
    tree.mount("/", "sys/fs/cgroup", "cgroup2", "rw");
    tree.host(4, 100, 100)
        .cgroup("0::/svc/leaf\n")
        .write("sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
        .write("sys/fs/cgroup/svc/cgroup.controllers", "cpu memory\n")
        .write("sys/fs/cgroup/svc/cpu.max", "100000 100000\n")
        .write("sys/fs/cgroup/svc/leaf/cgroup.controllers", "\n")
        .write("sys/fs/cgroup/svc/leaf/cpu.stat", "usage_usec 0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::V2, 1.0));
}

#[test]
fn hybrid_where_v2_holds_the_cpu_controller_reads_v2() {
    // cpuacct and cpuset stay in v1; cpu was given to the unified hierarchy.
    let mut tree = Tree::new("hybrid-v2-cpu");
    tree.mount("/", "sys/fs/cgroup/cpuacct", "cgroup", "rw,cpuacct")
        .mount("/", "sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset")
        .mount("/", "sys/fs/cgroup/unified", "cgroup2", "rw");
    tree.host(4, 100, 100)
        .cgroup("3:cpuset:/\n2:cpuacct:/app\n0::/app\n")
        .write("sys/fs/cgroup/cpuacct/app/cpuacct.usage", "0\n")
        .write("sys/fs/cgroup/cpuset/cpuset.cpus", "0-3\n")
        .write("sys/fs/cgroup/unified/cgroup.controllers", "cpu\n")
        .write("sys/fs/cgroup/unified/app/cgroup.controllers", "cpu\n")
        .write("sys/fs/cgroup/unified/app/cpu.max", "100000 100000\n")
        .write("sys/fs/cgroup/unified/app/cpu.stat", "usage_usec 0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!(cpu.version(), CgroupVersion::V2, "{cpu}");
    assert_eq!(
        cpu.cgroup(),
        Some(tree.path("sys/fs/cgroup/unified/app").as_path())
    );
    assert_eq!((cpu.cores(), cpu.limited_by()), (1.0, LimitedBy::Quota));
    assert_eq!(
        cpu.cpuset().map(|cpuset| cpuset.source().to_path_buf()),
        Some(tree.path("sys/fs/cgroup/cpuset/cpuset.cpus")),
        "the cpuset comes from the hierarchy that holds it"
    );
}

#[test]
fn a_cpuset_narrower_than_the_quota_sets_the_allowance() {
    let mut v1 = Tree::new("cpuset-v1");
    v1.mount("/", "sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct")
        .mount("/", "sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset");
    v1.host(8, 100, 100)
        .cgroup("5:cpuset:/app\n4:cpu,cpuacct:/app\n0::/\n")
        .write("sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us", "400000\n")
        .write(
            "sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us",
            "100000\n",
        )
        .write("sys/fs/cgroup/cpu,cpuacct/app/cpuacct.usage", "0\n")
        .write("sys/fs/cgroup/cpuset/app/cpuset.cpus", "0-7\n")
        .write("sys/fs/cgroup/cpuset/app/cpuset.effective_cpus", "2,5\n");
    let cpu = v1.detect().expect("detected");
    assert_eq!((cpu.cores(), cpu.limited_by()), (2.0, LimitedBy::Cpuset));
    assert_eq!(
        cpu.cpuset().map(|cpuset| cpuset.source().to_path_buf()),
        Some(v1.path("sys/fs/cgroup/cpuset/app/cpuset.effective_cpus")),
        "the effective set before the configured one"
    );

    let mut v2 = Tree::new("cpuset-v2");
    v2.mount("/", "sys/fs/cgroup", "cgroup2", "rw");
    v2.host(8, 100, 100)
        .cgroup("0::/app\n")
        .write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu\n")
        .write("sys/fs/cgroup/app/cpu.max", "300000 100000\n")
        .write("sys/fs/cgroup/app/cpuset.cpus.effective", "6\n")
        .write("sys/fs/cgroup/app/cpu.stat", "usage_usec 0\n");
    let cpu = v2.detect().expect("detected");
    assert_eq!((cpu.cores(), cpu.limited_by()), (1.0, LimitedBy::Cpuset));
    assert_eq!(cpu.quota().map(CpuLimit::cores), Some(3.0));
}

#[test]
fn a_bind_mounted_own_cgroup_is_found_through_the_mount_root() {
    // A container without a cgroup namespace: /proc/self/cgroup shows the host's path, the
    // mount shows only the container's subtree.
    let mut tree = Tree::new("bind-root");
    tree.mount(
        "/docker/abc",
        "sys/fs/cgroup/cpu,cpuacct",
        "cgroup",
        "rw,cpu,cpuacct",
    );
    tree.host(8, 100, 100)
        .cgroup("4:cpu,cpuacct:/docker/abc/worker\n0::/\n")
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n")
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
        .write("sys/fs/cgroup/cpu,cpuacct/worker/cpu.cfs_quota_us", "-1\n")
        .write(
            "sys/fs/cgroup/cpu,cpuacct/worker/cpu.cfs_period_us",
            "100000\n",
        )
        .write("sys/fs/cgroup/cpu,cpuacct/worker/cpuacct.usage", "0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!(
        cpu.cgroup(),
        Some(tree.path("sys/fs/cgroup/cpu,cpuacct/worker").as_path())
    );
    assert_eq!(cpu.cores(), 2.0, "the container's quota, one level up");
}

#[test]
fn a_path_missing_under_the_mount_falls_back_to_the_mount_root() {
    // A namespaced container sees `/` (or the host's path) while its mount is its own cgroup.
    for membership in ["0::/\n", "0::/system.slice/docker-abc.scope\n"] {
        let mut tree = Tree::new("namespaced");
        tree.mount("/", "sys/fs/cgroup", "cgroup2", "rw");
        tree.host(4, 100, 100)
            .cgroup(membership)
            .write("sys/fs/cgroup/cgroup.controllers", "cpu\n")
            .write("sys/fs/cgroup/cpu.max", "200000 100000\n")
            .write("sys/fs/cgroup/cpu.stat", "usage_usec 5\n");
        let cpu = tree.detect().expect("detected");
        assert_eq!(
            (cpu.version(), cpu.cores()),
            (CgroupVersion::V2, 2.0),
            "{membership}"
        );
        assert_eq!(cpu.cgroup(), Some(tree.path("sys/fs/cgroup").as_path()));
    }
}

#[test]
fn v2_without_the_cpu_controller_counts_the_cgroup_usage_without_a_quota() {
    let mut tree = Tree::new("v2-no-cpu");
    tree.mount("/", "sys/fs/cgroup", "cgroup2", "rw");
    tree.host(4, 100, 100)
        .cgroup("0::/app\n")
        .write("sys/fs/cgroup/cgroup.controllers", "memory pids\n")
        // Left over, but without the controller nothing enforces it.
        .write("sys/fs/cgroup/app/cpu.max", "50000 100000\n")
        .write("sys/fs/cgroup/app/cpu.stat", "usage_usec 0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!(cpu.version(), CgroupVersion::V2);
    assert_eq!(cpu.quota(), None);
    assert_eq!((cpu.cores(), cpu.limited_by()), (4.0, LimitedBy::Host));
}

#[test]
fn without_any_cgroup_mount_the_host_proc_stat_is_read() {
    let mut tree = Tree::new("no-cgroup");
    tree.mount("/", "proc", "proc", "rw");
    tree.host(2, 1_000, 3_000).cgroup("0::/\n");
    let mut cpu = tree.detect().expect("/proc/stat");
    assert_eq!((cpu.version(), cpu.cgroup()), (CgroupVersion::Host, None));
    assert_eq!((cpu.cores(), cpu.limited_by()), (2.0, LimitedBy::Host));
    tree.host(2, 1_300, 3_100); // +300 busy, +100 idle
    assert_eq!(cpu.sample_over(SECOND).expect("readable"), 0.75);
    assert!(cpu.to_string().starts_with("host (usage "), "{cpu}");
}

#[test]
fn proc_mounts_stands_in_for_a_missing_mountinfo() {
    let tree = Tree::new("proc-mounts");
    let point = tree.path("sys/fs/cgroup/cpu,cpuacct");
    tree.host(4, 100, 100)
        .cgroup("4:cpu,cpuacct:/app\n0::/\n")
        .write(
            "proc/self/mounts",
            &format!(
                "proc /proc proc rw 0 0\ncgroup {} cgroup rw,cpu,cpuacct 0 0\n",
                point.display()
            ),
        )
        .write("sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us", "100000\n")
        .write(
            "sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us",
            "100000\n",
        )
        .write("sys/fs/cgroup/cpu,cpuacct/app/cpuacct.usage", "0\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::V1, 1.0));
}

#[test]
fn garbage_limits_are_ignored_and_the_other_bounds_apply() {
    let mut tree = Tree::new("garbage-limits");
    tree.mount("/", "sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct")
        .mount("/", "sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset");
    tree.host(4, 100, 100)
        .cgroup("5:cpuset:/app\n4:cpu,cpuacct:/app\n0::/\n")
        .write("sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us", "lots\n")
        .write("sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us", "0\n")
        .write("sys/fs/cgroup/cpu,cpuacct/app/cpuacct.usage", "0\n")
        .write("sys/fs/cgroup/cpuset/app/cpuset.cpus", "9-2,x\n");
    let cpu = tree.detect().expect("detected");
    assert_eq!((cpu.quota(), cpu.cpuset()), (None, None));
    assert_eq!((cpu.cores(), cpu.limited_by()), (4.0, LimitedBy::Host));
}

#[test]
fn an_unreadable_usage_file_falls_back_to_the_next_source() {
    // cpuacct.usage is a directory (unreadable) in the hybrid layout: the unified hierarchy's
    // own usage, without a quota, comes next.
    let tree = hybrid_with_a_quota();
    let usage = tree.path("sys/fs/cgroup/cpuacct/rampart-check/cpuacct.usage");
    fs::remove_file(&usage).expect("rm");
    fs::create_dir(&usage).expect("mkdir");
    let cpu = tree.detect().expect("detected");
    assert_eq!(cpu.version(), CgroupVersion::V2, "{cpu}");
    assert_eq!(cpu.quota(), None);

    // And garbage in it: the same.
    fs::remove_dir(&usage).expect("rmdir");
    set(&usage, "not a number\n");
    assert_eq!(
        tree.detect().expect("detected").version(),
        CgroupVersion::V2
    );
}

#[test]
fn a_usage_file_that_turns_unreadable_is_a_sample_error() {
    let tree = hybrid_with_a_quota();
    let mut cpu = tree.detect().expect("detected");
    fs::remove_file(tree.path("sys/fs/cgroup/cpuacct/rampart-check/cpuacct.usage")).expect("rm");
    let err = cpu.sample_over(SECOND).unwrap_err();
    assert!(err.reason().contains("cpuacct.usage"), "{err}");
}

#[test]
fn garbage_everywhere_is_an_error_naming_each_source_not_a_panic() {
    let tree = Tree::new("garbage");
    tree.write("proc/self/cgroup", "::::\n\0\n0::\n")
        .write("proc/self/mountinfo", "1 2 3 4 5 6 - -\n- - -\nx\n")
        .write("proc/self/mounts", "cgroup2\n")
        .write("proc/stat", "cpu  1 x\ncpu0\n");
    let reason = tree.detect().unwrap_err().to_string();
    for source in ["cgroup v2", "cgroup v1", "/proc/stat"] {
        assert!(reason.contains(source), "{source} in {reason}");
    }
    // A well-formed cgroup table pointing nowhere readable: the same, no panic.
    let mut tree = Tree::new("nowhere");
    hybrid_mounts(&mut tree);
    tree.cgroup("2:cpuacct:/gone\n1:cpu:/gone\n0::/gone\n");
    assert!(tree.detect().is_err());
}

#[test]
fn the_host_layout_under_this_machine_is_detected_as_one_of_the_layouts() {
    // Whatever this machine is, the choice is explained and names a readable usage file.
    let cpu = LinuxCpu::detect().expect("Linux with /proc");
    assert!(cpu.usage_file().exists(), "{cpu}");
    assert!(cpu.cores() > 0.0, "{cpu}");
    assert!(cpu.to_string().contains("allowed, limited by"), "{cpu}");
}
