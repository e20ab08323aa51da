use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::ConfigError;

use super::smoothed::{check_decay, check_interval};
use super::{CpuError, CpuSampler, CpuUsage, SmoothedCpu};

/// The sampling interval of the default [`SystemCpu`].
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// The EWMA decay per sample of the default [`SystemCpu`].
pub(crate) const DEFAULT_DECAY: f64 = 0.8;

/// Shared samplers, one per `(interval, decay)` setting, each on its own thread.
static SAMPLERS: OnceLock<Mutex<HashMap<(Duration, u64), SmoothedCpu>>> = OnceLock::new();

/// The process's CPU usage (Linux: its cgroup), sampled every 250 ms by one shared background
/// thread and smoothed with decay 0.8 per sample: the default CPU signal of a limiter.
///
/// Every `SystemCpu` of the same settings in a process shares one sampler thread (named
/// `rampart-cpu-sampler`) and one smoothed value; reading it is one atomic load. The source is
/// [`LinuxCpu`](super::LinuxCpu): the process's own cgroup v2, then cgroup v1, then the host's
/// `/proc/stat`.
///
/// ```no_run
/// use rampart_ratelimit::{CpuUsage, SystemCpu};
///
/// let cpu = SystemCpu::new()?;
/// println!("{:.0} % of our CPU allowance", cpu.usage() * 100.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SystemCpu {
    smoothed: SmoothedCpu,
}

/// Why a [`SystemCpu`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemCpuError {
    /// The sampling settings are invalid.
    Config(ConfigError),
    /// No CPU usage source could be read.
    Unavailable(CpuError),
}

impl std::fmt::Display for SystemCpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(err) => err.fmt(f),
            Self::Unavailable(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for SystemCpuError {}

impl SystemCpu {
    /// The shared sampler of the default settings (every 250 ms, decay 0.8).
    ///
    /// # Errors
    ///
    /// When no CPU usage can be read on this system, naming why for each source.
    pub fn new() -> Result<Self, SystemCpuError> {
        Self::with_sampling(DEFAULT_INTERVAL, DEFAULT_DECAY)
    }

    /// The shared sampler taking a sample every `interval` and smoothing with `decay`.
    ///
    /// # Errors
    ///
    /// Invalid settings (`interval` zero, `decay` outside [0, 1)), or no readable source.
    pub fn with_sampling(interval: Duration, decay: f64) -> Result<Self, SystemCpuError> {
        check_interval(interval).map_err(SystemCpuError::Config)?;
        check_decay(decay).map_err(SystemCpuError::Config)?;
        let mut samplers = SAMPLERS.get_or_init(Mutex::default).lock();
        if let Some(smoothed) = samplers.get(&(interval, decay.to_bits())) {
            return Ok(Self {
                smoothed: smoothed.clone(),
            });
        }
        let smoothed = start(interval, decay).map_err(SystemCpuError::Unavailable)?;
        samplers.insert((interval, decay.to_bits()), smoothed.clone());
        Ok(Self { smoothed })
    }
}

#[cfg(target_os = "linux")]
fn start(interval: Duration, decay: f64) -> Result<SmoothedCpu, CpuError> {
    let source = super::LinuxCpu::detect()?;
    let mut sampler =
        CpuSampler::new(source, decay).map_err(|err| CpuError::new(err.to_string()))?;
    let smoothed = sampler.smoothed();
    std::thread::Builder::new()
        .name("rampart-cpu-sampler".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                sampler.tick();
            }
        })
        .map_err(|err| CpuError::new(format!("cannot start the sampler thread: {err}")))?;
    Ok(smoothed)
}

#[cfg(not(target_os = "linux"))]
fn start(_interval: Duration, _decay: f64) -> Result<SmoothedCpu, CpuError> {
    Err(CpuError::new(
        "only Linux is supported; pass a `CpuUsage` of your own (or `ManualCpu`)",
    ))
}

impl SystemCpu {
    /// A reading that never moves (zero): for a limiter whose gate never reads the CPU.
    pub(crate) fn unused() -> Self {
        Self {
            smoothed: SmoothedCpu::new(),
        }
    }
}

impl CpuUsage for SystemCpu {
    #[inline]
    fn usage(&self) -> f64 {
        self.smoothed.usage()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn instances_with_the_same_settings_share_one_sampler() {
        let (a, b) = (
            SystemCpu::new().expect("linux"),
            SystemCpu::new().expect("linux"),
        );
        a.smoothed.set(0.42);
        assert_eq!(b.usage(), 0.42);
        let other = SystemCpu::with_sampling(Duration::from_millis(100), 0.5).expect("linux");
        assert_ne!(other.usage(), 0.42);
    }

    #[test]
    fn invalid_sampling_settings_are_config_errors() {
        let err = SystemCpu::with_sampling(Duration::ZERO, 0.8).unwrap_err();
        assert!(
            matches!(err, SystemCpuError::Config(ref e) if e.field() == "interval"),
            "{err}"
        );
        let err = SystemCpu::with_sampling(DEFAULT_INTERVAL, 1.0).unwrap_err();
        assert!(
            matches!(err, SystemCpuError::Config(ref e) if e.field() == "decay"),
            "{err}"
        );
    }
}
