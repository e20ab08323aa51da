//! The CPU signal: how busy the process's CPU allowance is, smoothed.
//!
//! Two traits split the job. A [`CpuSource`] is a raw meter: each [`sample`]
//! returns the utilisation since the previous one ([`LinuxCpu`] reads the process's cgroup;
//! any `FnMut() -> f64` works, such as a simulated backend's utilisation). A [`CpuUsage`] is
//! what the limiter reads on every request: one load of a smoothed value. [`SmoothedCpu`]
//! connects them: a sampler calls `sample` on a fixed interval and folds each reading into an
//! exponentially weighted moving average (floating point, decay 0.8 per 250 ms by default).
//! [`SystemCpu`] runs that sampler on one shared background thread; `spawn_sampler` (feature
//! `tokio`) runs it as a tokio task, so simulations under paused time smooth exactly as
//! production does.
//!
//! # Which cgroup
//!
//! The CPU that counts is the one the process may use: [`LinuxCpu`] finds the cgroup that
//! limits it (cgroup v2 where the unified hierarchy holds the cpu controller, else v1, with
//! the tightest quota of the cgroup and its ancestors, the CPU set, the host's CPUs; the
//! host's `/proc/stat` when no cgroup can be read) and its `Display` says which it chose and
//! why. The type's docs give the order and the layouts it handles (v2, v1 co-mounted or
//! separate, hybrid hosts whose unified mount holds no controller, cgroup namespaces).
//!
//! # Why decay 0.8 every 250 ms
//!
//! Kratos decays by 0.95 every 500 ms (a time constant near 10 s) in integer per-mille: a
//! jump to full load takes 16.5 s to cross 80 %, and a steady 80 % load never reaches 800 ‰
//! because each step truncates. By then the queue has filled and the limiter learns its
//! minimum latency from queued requests. Decay 0.8 per 250 ms (time constant ≈ 1.1 s) crosses
//! 80 % two seconds (eight samples) after the load arrives, and converges to the input.
//!
//! [`CpuSource`]: crate::CpuSource
//! [`sample`]: crate::CpuSource::sample
//! [`CpuUsage`]: crate::CpuUsage
//! [`SmoothedCpu`]: crate::SmoothedCpu
//! [`SystemCpu`]: crate::SystemCpu

#[cfg(target_os = "linux")]
mod linux;
#[cfg(feature = "tokio")]
pub(crate) mod runtime;
pub(crate) mod smoothed;
pub(crate) mod source;
pub(crate) mod system;
#[cfg(feature = "tokio")]
pub(crate) mod tokio;

// The crate root re-exports the signal's types; this module's public items are only the
// Linux detection's, which the root does not.
#[cfg(target_os = "linux")]
pub use self::linux::{CgroupVersion, CpuLimit, LimitedBy, LinuxCpu};
pub(crate) use self::smoothed::{CpuSampler, SmoothedCpu};
pub(crate) use self::source::{CpuError, CpuSource, CpuUsage};
