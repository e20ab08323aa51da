//! [`SystemCpu`]: the default CPU signal, one shared sampler thread per setting, and what it
//! reports about its source (a `Display`, a `tracing` event when it starts, and the gauge
//! `rampart_ratelimit_cpu_allowance_cores`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::ConfigError;

use super::smoothed::{check_decay, check_interval};
use super::{CpuError, CpuSampler, CpuUsage, SmoothedCpu};

/// The sampling interval of the default [`SystemCpu`].
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// The EWMA decay per sample of the default [`SystemCpu`].
pub(crate) const DEFAULT_DECAY: f64 = 0.8;
/// The decay of a runtime's busy share while it rises: a runtime whose workers are busy
/// throughout is already queueing, and at the CPU's pace (eight samples, two seconds, from
/// idle to 80 %) a load that steps up finds the queue of the step before it.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
const RISING_DECAY: f64 = 0.5;

/// The gauge of the CPUs the default source measures usage against, labelled `source` (the
/// accounting read) and `limit` (the bound that set it).
const ALLOWANCE_GAUGE: &str = "rampart_ratelimit_cpu_allowance_cores";

/// Shared samplers, one per `(interval, decay)` setting, each on its own thread.
static SAMPLERS: OnceLock<Mutex<HashMap<(Duration, u64), SystemCpu>>> = OnceLock::new();

/// The process's CPU usage (Linux: the cgroup that limits it), sampled every 250 ms by one
/// shared background thread and smoothed with decay 0.8 per sample: the default CPU signal of
/// a limiter.
///
/// Every `SystemCpu` of the same settings in a process shares one sampler thread (named
/// `rampart-cpu-sampler`) and one smoothed value; reading it is one atomic load. The source is
/// [`LinuxCpu`](super::LinuxCpu), whose module docs give the detection order. `Display` (and
/// [`source`](Self::source)) says which source was chosen and why; the sampler emits it as a
/// `tracing` event (info, feature `tracing`) when it starts, and each `SystemCpu` built
/// publishes the gauge `rampart_ratelimit_cpu_allowance_cores{source, limit}`.
///
/// ```no_run
/// use rampart_ratelimit::{CpuUsage, SystemCpu};
///
/// let cpu = SystemCpu::new()?;
/// println!("{:.0} % of our CPU allowance; {cpu}", cpu.usage() * 100.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SystemCpu {
    smoothed: SmoothedCpu,
    source: Arc<Source>,
    /// The smoothed busy share of a tokio runtime's workers, and how many there are, when
    /// read beside the allowance (see [`with_runtime`](Self::with_runtime)).
    runtime: Option<(SmoothedCpu, usize)>,
}

/// What a [`SystemCpu`] reads, described once when its sampler starts.
#[derive(Debug)]
struct Source {
    description: Box<str>,
    /// The sampling interval and decay (for a runtime's busy share read beside it).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    interval: Duration,
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    decay: f64,
    /// The allowance in CPUs and the gauge's `source` and `limit` labels (none when unused).
    allowance: Option<(f64, &'static str, &'static str)>,
}

/// Why a [`SystemCpu`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemCpuError {
    /// The sampling settings are invalid.
    Config(ConfigError),
    /// No CPU usage source could be read.
    Unavailable(CpuError),
}

impl fmt::Display for SystemCpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        let key = (interval, decay.to_bits());
        let cpu = if let Some(cpu) = samplers.get(&key) {
            cpu.clone()
        } else {
            let cpu = start(interval, decay).map_err(SystemCpuError::Unavailable)?;
            samplers.insert(key, cpu.clone());
            cpu
        };
        drop(samplers);
        // Published by every instance: the recorder may have been installed after the sampler
        // started.
        cpu.publish();
        Ok(cpu)
    }

    /// The same usage, or the busy share of the workers of the tokio runtime of `handle`
    /// when that is higher: a runtime of fewer worker threads than the allowance has CPUs
    /// saturates while the CPU reads low (one worker on a host of two: 50 %). The busy share
    /// ([`RuntimeBusy`](crate::RuntimeBusy)) is sampled by a task on that runtime at this
    /// reading's interval and decay (the default: every 250 ms, decay 0.8), and rises faster
    /// (decay 0.5: from idle to 80 % in three samples); the task stops with the last clone. [`BbrConfig::build`](crate::BbrConfig::build) does this inside a
    /// runtime.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rampart_ratelimit::SystemCpu;
    ///
    /// let cpu = SystemCpu::new()?.with_runtime(&tokio::runtime::Handle::current())?;
    /// assert!(cpu.to_string().contains("1 worker"), "{cpu}");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Never for a reading of valid settings (as every `SystemCpu` is); the sampler's
    /// [`ConfigError`] otherwise.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn with_runtime(self, handle: &tokio::runtime::Handle) -> Result<Self, ConfigError> {
        let busy = super::runtime::RuntimeBusy::new(handle);
        let workers = busy.workers();
        let sampler = CpuSampler::new(busy, self.source.decay)?.with_rising_decay(RISING_DECAY)?;
        let smoothed = super::tokio::spawn_sampler_on(handle, sampler, self.source.interval)?;
        Ok(Self {
            runtime: Some((smoothed, workers)),
            ..self
        })
    }

    /// The allowance's usage alone, without a runtime's busy share.
    pub fn allowance_usage(&self) -> f64 {
        self.smoothed.usage()
    }

    /// Which source this reads and why: the accounting, the cgroup, the allowance in CPUs and
    /// the file each bound came from.
    pub fn source(&self) -> &str {
        &self.source.description
    }

    /// How many workers the tokio runtime read beside the allowance has, if any.
    pub fn runtime_workers(&self) -> Option<usize> {
        self.runtime.as_ref().map(|(_, workers)| *workers)
    }

    /// The CPUs the usage is measured against (`None` for a limiter whose gate reads no CPU).
    pub fn cores(&self) -> Option<f64> {
        self.source.allowance.map(|(cores, _, _)| cores)
    }

    /// Sets the allowance gauge in the current recorder.
    fn publish(&self) {
        if let Some((cores, source, limit)) = self.source.allowance {
            metrics::gauge!(ALLOWANCE_GAUGE, "source" => source, "limit" => limit).set(cores);
        }
    }
}

/// `cpu`, with the busy share of the current tokio runtime's workers beside it when there is
/// one (feature `tokio`).
pub(crate) fn with_current_runtime(cpu: SystemCpu) -> SystemCpu {
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        // The sampler of a valid `SystemCpu` accepts its own settings.
        return cpu.clone().with_runtime(&handle).unwrap_or(cpu);
    }
    cpu
}

#[cfg(target_os = "linux")]
fn start(interval: Duration, decay: f64) -> Result<SystemCpu, CpuError> {
    let source = super::LinuxCpu::detect()?;
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "rampart::ratelimit",
        source = source.version().as_str(),
        cgroup = %source.cgroup().map_or_else(String::new, |cgroup| cgroup.display().to_string()),
        cores = source.cores(),
        limit = source.limited_by().as_str(),
        "CPU usage source: {source}"
    );
    let described = Source {
        description: source.to_string().into(),
        interval,
        decay,
        allowance: Some((
            source.cores(),
            source.version().as_str(),
            source.limited_by().as_str(),
        )),
    };
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
    Ok(SystemCpu {
        smoothed,
        source: Arc::new(described),
        runtime: None,
    })
}

#[cfg(not(target_os = "linux"))]
fn start(_interval: Duration, _decay: f64) -> Result<SystemCpu, CpuError> {
    Err(CpuError::new(
        "only Linux is supported; pass a `CpuUsage` of your own (or `ManualCpu`)",
    ))
}

impl SystemCpu {
    /// A reading that never moves (zero): for a limiter whose gate never reads the CPU.
    pub(crate) fn unused() -> Self {
        Self {
            smoothed: SmoothedCpu::new(),
            source: Arc::new(Source {
                description: "none: the limiter's gate reads no CPU".into(),
                interval: DEFAULT_INTERVAL,
                decay: DEFAULT_DECAY,
                allowance: None,
            }),
            runtime: None,
        }
    }
}

impl fmt::Display for SystemCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source())?;
        match self.runtime_workers() {
            Some(1) => {
                f.write_str("; or, when higher, the busy share of the tokio runtime's 1 worker")
            }
            Some(workers) => write!(
                f,
                "; or, when higher, the busy share of the tokio runtime's {workers} workers"
            ),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for SystemCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemCpu")
            .field("usage", &self.usage())
            .field("cores", &self.cores())
            .field("source", &self.source())
            .field("runtime_workers", &self.runtime_workers())
            .finish()
    }
}

impl CpuUsage for SystemCpu {
    #[inline]
    fn usage(&self) -> f64 {
        let allowance = self.smoothed.usage();
        match &self.runtime {
            Some((busy, _)) => allowance.max(busy.usage()),
            None => allowance,
        }
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
    fn each_instance_publishes_the_allowance_gauge_naming_its_source() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let detected = super::super::LinuxCpu::detect().expect("linux");
        // The shared sampler may already run: a later instance publishes into the new recorder.
        let _first = SystemCpu::new().expect("linux");
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let cpu = metrics::with_local_recorder(&recorder, SystemCpu::new).expect("linux");
        let gauges: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == ALLOWANCE_GAUGE)
            .collect();
        assert_eq!(gauges.len(), 1, "{gauges:?}");
        let (key, _, _, value) = &gauges[0];
        let labels: Vec<_> = key
            .key()
            .labels()
            .map(|label| (label.key(), label.value()))
            .collect();
        assert_eq!(
            labels,
            [
                ("source", detected.version().as_str()),
                ("limit", detected.limited_by().as_str())
            ]
        );
        assert_eq!(*value, DebugValue::Gauge(detected.cores().into()));
        assert_eq!(cpu.cores(), Some(detected.cores()));
        assert_eq!(cpu.source(), detected.to_string(), "{cpu:?}");
    }

    #[test]
    fn an_unused_reading_says_so_and_publishes_nothing() {
        let cpu = SystemCpu::unused();
        assert_eq!(cpu.cores(), None);
        assert!(cpu.to_string().contains("reads no CPU"), "{cpu}");
        assert!(format!("{cpu:?}").contains("usage: 0.0"), "{cpu:?}");
    }

    #[test]
    fn with_a_runtime_the_usage_is_the_higher_of_the_allowance_and_the_workers_busy_share() {
        let (allowance, busy) = (SmoothedCpu::new(), SmoothedCpu::new());
        let cpu = SystemCpu {
            smoothed: allowance.clone(),
            runtime: Some((busy.clone(), 1)),
            ..SystemCpu::unused()
        };
        for (of_allowance, of_runtime, read) in
            [(0.5, 0.95, 0.95), (0.9, 0.2, 0.9), (0.0, 0.0, 0.0)]
        {
            allowance.set(of_allowance);
            busy.set(of_runtime);
            assert_eq!(
                cpu.usage(),
                read,
                "allowance {of_allowance}, runtime {of_runtime}"
            );
            assert_eq!(cpu.allowance_usage(), of_allowance);
        }
        assert!(
            cpu.to_string()
                .ends_with("or, when higher, the busy share of the tokio runtime's 1 worker"),
            "{cpu}"
        );
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn inside_a_runtime_the_default_reading_adds_the_runtime_s_workers() {
        assert_eq!(
            with_current_runtime(SystemCpu::unused()).runtime_workers(),
            None
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let cpu = runtime.block_on(async { with_current_runtime(SystemCpu::unused()) });
        assert_eq!(cpu.runtime_workers(), Some(1));
        assert!(cpu.to_string().ends_with("runtime's 1 worker"), "{cpu}");
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
