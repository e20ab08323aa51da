//! Fixture trees for CPU source detection: a fake `/proc` (`proc/self/cgroup`,
//! `proc/self/mountinfo`, `proc/stat`) and cgroup files in a fresh temporary directory, removed
//! on drop. Mount tables point at absolute paths inside the tree, so a tree is self-contained.
#![allow(dead_code)] // Each test file uses part of it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rampart_ratelimit::CpuError;
use rampart_ratelimit::cpu::LinuxCpu;

/// A fixture tree, removed on drop.
pub(crate) struct Tree {
    root: PathBuf,
    mounts: usize,
}

impl Tree {
    /// An empty tree (with `proc/self/`) named after the test.
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!(
            "rampart-cpu-{name}-{}-{unique}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("proc/self")).expect("temp dir");
        Self { root, mounts: 0 }
    }

    /// Writes `text` at `path` (relative to the tree), creating its directories.
    pub(crate) fn write(&self, path: &str, text: &str) -> &Self {
        let path = self.root.join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
        self
    }

    /// Creates the directory `path` (relative to the tree).
    pub(crate) fn dir(&self, path: &str) -> &Self {
        fs::create_dir_all(self.root.join(path)).expect("mkdir");
        self
    }

    /// `/proc/self/cgroup`.
    pub(crate) fn cgroup(&self, text: &str) -> &Self {
        self.write("proc/self/cgroup", text)
    }

    /// A host with `cpus` CPUs and the given busy/idle jiffies in `/proc/stat`.
    pub(crate) fn host(&self, cpus: usize, busy: u64, idle: u64) -> &Self {
        let per_cpu = (0..cpus).map(|cpu| format!("cpu{cpu} 1 0 0 1 0 0 0 0 0 0\n"));
        let mut stat = format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\n");
        stat.extend(per_cpu);
        stat.push_str("intr 1\nctxt 2\n");
        self.write("proc/stat", &stat)
    }

    /// Adds a line to `/proc/self/mountinfo`: the hierarchy path `root` of a `fstype`
    /// (`cgroup`, `cgroup2`, `tmpfs`...) filesystem mounted at `point` (relative to the tree)
    /// with the super options `options` (for v1, the controllers: `rw,cpu,cpuacct`).
    pub(crate) fn mount(
        &mut self,
        root: &str,
        point: &str,
        fstype: &str,
        options: &str,
    ) -> &mut Self {
        self.mounts += 1;
        let id = 30 + self.mounts;
        let point = self.root.join(point);
        fs::create_dir_all(&point).expect("mkdir");
        let line = format!(
            "{id} 23 0:{id} {} {} rw,nosuid,nodev,noexec,relatime shared:{id} - {fstype} {fstype} {options}\n",
            escape(root),
            escape(&point.to_string_lossy()),
        );
        let path = self.root.join("proc/self/mountinfo");
        let mut table = fs::read_to_string(&path).unwrap_or_default();
        table.push_str(&line);
        fs::write(path, table).expect("write");
        self
    }

    /// Detects from the tree's `proc/`, with the usual layout (used only without a mount
    /// table) under its `cgroup/`.
    pub(crate) fn detect(&self) -> Result<LinuxCpu, CpuError> {
        LinuxCpu::detect_in(&self.root.join("proc"), &self.root.join("cgroup"))
    }

    /// The absolute path of `path` in the tree.
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Overwrites the file at `path`.
pub(crate) fn set(path: &Path, text: &str) {
    fs::write(path, text).expect("write");
}

/// The kernel's octal escapes of a mount table field.
fn escape(field: &str) -> String {
    field
        .chars()
        .map(|c| match c {
            ' ' => r"\040".to_owned(),
            '\t' => r"\011".to_owned(),
            '\n' => r"\012".to_owned(),
            '\\' => r"\134".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
