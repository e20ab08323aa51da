//! The CPU signal: cgroup v2 / v1 / `/proc/stat` detection and parsing from fixture trees
//! without a mount table (the usual layout under the cgroup root), the error when nothing is
//! readable, and smoothing on tokio's paused clock. `cgroup_layouts.rs` covers trees described
//! by a mount table.
#![cfg(target_os = "linux")]

mod cgroup_tree;

use std::fs;
use std::time::Duration;

use cgroup_tree::{Tree, set};
use rampart_ratelimit::cpu::{CgroupVersion, LinuxCpu};
use rampart_ratelimit::{CpuUsage, spawn_sampler};

#[test]
fn cgroup_v2_reads_the_own_cgroup_against_the_tightest_ancestor_quota() {
    let fixture = Tree::new("v2-quota");
    fixture
        .host(8, 100, 100)
        .write("proc/self/cgroup", "0::/kubepods/pod1/app\n")
        .write("cgroup/cgroup.controllers", "cpu cpuset\n")
        .write("cgroup/kubepods/pod1/cpu.max", "150000 100000\n")
        .write("cgroup/kubepods/pod1/app/cpu.max", "max 100000\n")
        .write("cgroup/kubepods/pod1/app/cpuset.cpus.effective", "0-3\n")
        .write(
            "cgroup/kubepods/pod1/app/cpu.stat",
            "usage_usec 1000000\nuser_usec 1\nsystem_usec 1\n",
        );
    let mut cpu = fixture.detect().expect("v2 detected");
    assert_eq!(cpu.version(), CgroupVersion::V2);
    assert_eq!(
        cpu.cores(),
        1.5,
        "min(1.5 quota, 4 in the cpuset, 8 on the host)"
    );
    // 0.75 CPU-seconds in one second, out of 1.5 CPUs.
    set(
        &fixture.path("cgroup/kubepods/pod1/app/cpu.stat"),
        "usage_usec 1750000\n",
    );
    assert_eq!(
        cpu.sample_over(Duration::from_secs(1)).expect("readable"),
        0.5
    );
}

#[test]
fn cgroup_v2_without_a_quota_uses_the_cpuset_then_the_host() {
    let fixture = Tree::new("v2-max");
    fixture
        .host(8, 100, 100)
        .write("proc/self/cgroup", "0::/app\n")
        .write("cgroup/cgroup.controllers", "cpu\n")
        .write("cgroup/app/cpu.max", "max 100000\n")
        .write("cgroup/app/cpuset.cpus.effective", "0-1,6\n")
        .write("cgroup/app/cpu.stat", "usage_usec 0\n");
    assert_eq!(fixture.detect().expect("v2").cores(), 3.0);
    fs::remove_file(fixture.path("cgroup/app/cpuset.cpus.effective")).expect("rm");
    assert_eq!(
        fixture.detect().expect("v2").cores(),
        8.0,
        "the host's CPUs"
    );
}

#[test]
fn cgroup_v2_falls_back_to_the_mount_root_inside_a_namespace() {
    // The container sees the host's path in /proc/self/cgroup but mounts only its own cgroup.
    let fixture = Tree::new("v2-ns");
    fixture
        .host(4, 100, 100)
        .write("proc/self/cgroup", "0::/system.slice/docker-abc.scope\n")
        .write("cgroup/cgroup.controllers", "cpu\n")
        .write("cgroup/cpu.max", "200000 100000\n")
        .write("cgroup/cpu.stat", "usage_usec 5\n");
    let cpu = fixture.detect().expect("v2 at the root");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::V2, 2.0));
}

#[test]
fn cgroup_v1_reads_cpuacct_against_the_cfs_quota() {
    let fixture = Tree::new("v1");
    fixture
        .host(16, 100, 100)
        .write(
            "proc/self/cgroup",
            "5:cpuset:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n",
        )
        .write(
            "cgroup/cpu,cpuacct/docker/abc/cpuacct.usage",
            "2000000000\n",
        )
        .write("cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n")
        .write(
            "cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
            "100000\n",
        )
        .write("cgroup/cpuset/docker/abc/cpuset.cpus", "0-7\n");
    let mut cpu = fixture.detect().expect("v1 detected");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::V1, 2.0));
    set(
        &fixture.path("cgroup/cpu,cpuacct/docker/abc/cpuacct.usage"),
        "3000000000\n",
    );
    assert_eq!(
        cpu.sample_over(Duration::from_secs(1)).expect("readable"),
        0.5,
        "1 of 2 CPUs"
    );
    // No quota (-1): the cpuset's 8 CPUs.
    set(
        &fixture.path("cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us"),
        "-1\n",
    );
    assert_eq!(fixture.detect().expect("v1").cores(), 8.0);
}

#[test]
fn without_cgroups_the_host_busy_fraction_is_read_from_proc_stat() {
    let fixture = Tree::new("host");
    fixture.host(2, 1_000, 3_000).write("proc/self/cgroup", "");
    let mut cpu = fixture.detect().expect("/proc/stat");
    assert_eq!((cpu.version(), cpu.cores()), (CgroupVersion::Host, 2.0));
    fixture.host(2, 1_300, 3_100); // +300 busy, +100 idle
    assert_eq!(
        cpu.sample_over(Duration::from_secs(1)).expect("readable"),
        0.75
    );
}

#[test]
fn when_nothing_is_readable_the_error_names_every_source() {
    let fixture = Tree::new("none");
    let err = fixture.detect().unwrap_err();
    let reason = err.to_string();
    for source in ["cgroup v2", "cgroup v1", "/proc/stat"] {
        assert!(reason.contains(source), "{reason}");
    }
}

#[test]
fn this_machine_has_a_readable_cpu_source() {
    let cpu = LinuxCpu::detect().expect("CI and development machines run Linux with /proc");
    assert!(cpu.cores() >= 0.01, "{cpu:?}");
}

#[tokio::test(start_paused = true)]
async fn smoothing_runs_on_paused_time_and_crosses_80_percent_after_8_samples() {
    let cpu = spawn_sampler(|| 1.0, Duration::from_millis(250), 0.8).expect("valid");
    tokio::time::sleep(Duration::from_millis(1_760)).await; // 7 samples
    assert!(cpu.usage() < 0.8, "{}", cpu.usage());
    tokio::time::sleep(Duration::from_millis(250)).await; // 8 samples: 2 s
    assert!(
        (cpu.usage() - (1.0 - 0.8_f64.powi(8))).abs() < 1e-12,
        "{}",
        cpu.usage()
    );
}
