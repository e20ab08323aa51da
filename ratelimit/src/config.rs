use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::{Clock, ConfigError, SystemClock, ValidWindowConfig, WindowConfig, check};

use crate::cpu::CpuUsage;
use crate::{BbrLimiter, SchedulingDelay, SystemCpu};

/// What says the service is overloaded, so that the limiter starts shedding.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Gate {
    /// The smoothed CPU usage is at or above `cpu_threshold` (Kratos's rule). The default.
    #[default]
    Cpu,
    /// The mean response time of the last completed bucket exceeds `inflation` × the window's
    /// minimum: queues are growing. For services whose overload never shows on the CPU
    /// (workers waiting on a pool or a downstream). After a downstream slows down for good, it
    /// sheds until the window has learned the new minimum (up to one window), so it is opt-in.
    Latency {
        /// How much slower than the best bucket the last bucket must be: from 1 to 100;
        /// 2.0 is a good start (1.5 to 3 behave alike in our simulation).
        inflation: f64,
    },
    /// Either condition.
    Either {
        /// As in [`Gate::Latency`].
        inflation: f64,
    },
}

impl Gate {
    /// `Latency` with the default inflation, 2.0.
    pub const LATENCY: Self = Self::Latency { inflation: 2.0 };
    /// `Either` with the default inflation, 2.0.
    pub const EITHER: Self = Self::Either { inflation: 2.0 };

    pub(crate) fn uses_cpu(self) -> bool {
        matches!(self, Self::Cpu | Self::Either { .. })
    }

    pub(crate) fn inflation(self) -> Option<f64> {
        match self {
            Self::Cpu => None,
            Self::Latency { inflation } | Self::Either { inflation } => Some(inflation),
        }
    }
}

/// The default `max_delay`: well above the millisecond a healthy runtime's timer is late by,
/// well below the hundreds of milliseconds clients wait.
const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(10);
const MIN_MAX_DELAY: Duration = Duration::from_millis(1);
const MAX_MAX_DELAY: Duration = Duration::from_secs(10);
/// The default `headroom`: one standard deviation of a fully busy service's concurrency.
const DEFAULT_HEADROOM: f64 = 1.0;
/// The most `headroom` accepted: beyond it the limit is mostly queue.
const MAX_HEADROOM: f64 = 100.0;

/// The configuration of a [`BbrLimiter`].
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `window` | 10 s | at least 1 µs per bucket |
/// | `buckets` | 100 | 2 to 65 536 |
/// | `cpu_threshold` | 0.8 | in [0, 1] |
/// | `cooldown` | 1 s | any (zero: none) |
/// | `headroom` | 1.0 | finite, from 0 to 100 |
/// | `gate` | [`Gate::Cpu`] | inflation finite, from 1 to 100 |
/// | `max_delay` | 10 ms | from 1 ms to 10 s, or `None` |
/// | `enforce` | true | |
/// | `name` | `"default"` | not empty |
///
/// ```
/// use std::time::Duration;
/// use rampart_ratelimit::{BbrConfig, Gate, ManualCpu};
/// use rampart_core::SystemClock;
///
/// let limiter = BbrConfig::default()
///     .with_gate(Gate::LATENCY)
///     .with_name("search")
///     .build_with(SystemClock::new(), ManualCpu::new(0.0))?;
/// assert_eq!(limiter.config().cooldown, Duration::from_secs(1));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BbrConfig {
    /// The span of history the statistics come from.
    pub window: Duration,
    /// The number of buckets `window` is cut into: statistics are per bucket, so a bucket should
    /// hold many completions.
    pub buckets: usize,
    /// The CPU usage, in [0, 1], at which the `Cpu` gate opens.
    pub cpu_threshold: f64,
    /// How long after the most recent drop the limiter keeps shedding above its limit, even
    /// when the gate has closed: the CPU oscillates around the threshold once shedding starts,
    /// and a dip must not release a flood.
    pub cooldown: Duration,
    /// What says the service is overloaded.
    pub gate: Gate,
    /// The queue the limit allows above the concurrency the service has proven it sustains
    /// without queueing (`L = max_pass × min_rt`, Little's law), in multiples of `√L`: the
    /// limit is `floor(L + headroom × √L)`. Requests arriving at random (Poisson) onto a
    /// service busy with `L` of them in flight on average vary by about `√L` around it, so
    /// a limit of `L` alone leaves the service idle whenever the count dips: on a one-worker
    /// server (`L` ≈ 1) it admits two requests and wastes a fifth of its CPU. One `√L`
    /// keeps it busy while adding little queue to a large service (`L` = 100: a limit of
    /// 110). 0 is Kratos's limit, `floor(L)`. (Netflix's concurrency limits size their queue
    /// the same way.)
    pub headroom: f64,
    /// Shed every request while the runtime runs ready work later than this (see
    /// [`SchedulingDelay`](crate::SchedulingDelay)): the queue in front of the limiter, which its
    /// in-flight count cannot see. `None`: never read a delay. A limiter built by
    /// [`build`](Self::build) inside a tokio runtime (feature `tokio`) measures it with a
    /// `DelayProbe` (feature `tokio`); others only with a source given to
    /// [`BbrLimiter::with_delay`].
    pub max_delay: Option<Duration>,
    /// `false` for a dry run: every decision is computed and reported but nothing is shed.
    pub enforce: bool,
    /// The `name` label of the limiter's metrics.
    pub name: Cow<'static, str>,
}

impl Default for BbrConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            buckets: 100,
            cpu_threshold: 0.8,
            cooldown: Duration::from_secs(1),
            gate: Gate::Cpu,
            headroom: DEFAULT_HEADROOM,
            max_delay: Some(DEFAULT_MAX_DELAY),
            enforce: true,
            name: Cow::Borrowed("default"),
        }
    }
}

impl BbrConfig {
    /// This configuration with a `window` cut into `buckets` buckets.
    #[must_use]
    pub fn with_window(self, window: Duration, buckets: usize) -> Self {
        Self {
            window,
            buckets,
            ..self
        }
    }

    /// This configuration with the given CPU threshold.
    #[must_use]
    pub fn with_cpu_threshold(self, cpu_threshold: f64) -> Self {
        Self {
            cpu_threshold,
            ..self
        }
    }

    /// This configuration with the given cooldown.
    #[must_use]
    pub fn with_cooldown(self, cooldown: Duration) -> Self {
        Self { cooldown, ..self }
    }

    /// This configuration with the given gate.
    #[must_use]
    pub fn with_gate(self, gate: Gate) -> Self {
        Self { gate, ..self }
    }

    /// This configuration with the given headroom (0: Kratos's limit).
    #[must_use]
    pub fn with_headroom(self, headroom: f64) -> Self {
        Self { headroom, ..self }
    }

    /// This configuration with the given `max_delay` (`None`: no delay signal).
    #[must_use]
    pub fn with_max_delay(self, max_delay: Option<Duration>) -> Self {
        Self { max_delay, ..self }
    }

    /// This configuration as a dry run (`enforce = false`) or not.
    #[must_use]
    pub fn with_enforce(self, enforce: bool) -> Self {
        Self { enforce, ..self }
    }

    /// This configuration with the given metrics name.
    #[must_use]
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// The shape of the limiter's rolling window.
    pub fn window_config(&self) -> WindowConfig {
        WindowConfig::spanning(self.window, self.buckets)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// A zero `window`; `buckets` below 2 (the statistics need a completed bucket) or above
    /// 65 536; a bucket shorter than 1 µs; `cpu_threshold` not in [0, 1]; an inflation not in
    /// [1, 100]; a `headroom` not in [0, 100]; a `max_delay` under 1 ms or over 10 s; an empty
    /// `name`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validated_window().map(drop)
    }

    /// Checks every field, as [`validate`](Self::validate) does, and returns the window's
    /// shape, from which limiters of this configuration are built without failing.
    pub(crate) fn validated_window(&self) -> Result<ValidWindowConfig, ConfigError> {
        check::positive("window", self.window)?;
        check::at_least("buckets", self.buckets, 2)?;
        let window = WindowConfig::spanning_checked(self.window, self.buckets)?.validated()?;
        check::finite_in("cpu_threshold", self.cpu_threshold, 0.0..=1.0)?;
        if let Some(inflation) = self.gate.inflation() {
            check::finite_in("gate", inflation, 1.0..=100.0).map_err(|_| {
                ConfigError::new("gate", "inflation must be finite and in [1, 100]")
                    .with_value(inflation)
            })?;
        }
        check::finite_in("headroom", self.headroom, 0.0..=MAX_HEADROOM)?;
        if let Some(max_delay) = self.max_delay {
            check::duration_in("max_delay", max_delay, MIN_MAX_DELAY..=MAX_MAX_DELAY)?;
        }
        check::not_empty("name", &self.name)?;
        Ok(window)
    }

    /// Builds a limiter reading [`SystemClock`] and [`SystemCpu`].
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate); and, with the `Cpu` or `Either` gate, field `cpu` when
    /// no CPU usage can be read on this system (naming why).
    ///
    /// With a `max_delay`, inside a tokio runtime and with the `tokio` feature, the limiter
    /// also reads the runtime's scheduling delay from a `DelayProbe` (feature `tokio`)
    /// started on that runtime; elsewhere it runs without one (a `tracing` event says so, with
    /// the `tracing` feature) and sheds on its other signals only.
    pub fn build(self) -> Result<BbrLimiter, ConfigError> {
        let cpu = self.system_cpu()?;
        let delay = self.runtime_delay();
        let limiter = self.build_with(SystemClock::new(), cpu)?;
        Ok(match delay {
            Some(delay) => limiter.with_shared_delay(delay),
            None => limiter,
        })
    }

    /// The machine's CPU usage as this configuration's gate needs it: sampled for the `Cpu`
    /// and `Either` gates (inside a tokio runtime, with its workers' busy share beside it),
    /// never read (no sampler started) for the `Latency` gate.
    pub(crate) fn system_cpu(&self) -> Result<SystemCpu, ConfigError> {
        if self.gate.uses_cpu() {
            let cpu = SystemCpu::new().map_err(|err| {
                ConfigError::new("cpu", format!("needs a readable CPU usage: {err}"))
            })?;
            Ok(crate::cpu::system::with_current_runtime(cpu))
        } else {
            Ok(SystemCpu::unused())
        }
    }

    /// A probe of the current tokio runtime's scheduling delay, when this configuration reads
    /// one and there is a runtime to probe (feature `tokio`).
    pub(crate) fn runtime_delay(&self) -> Option<Arc<dyn SchedulingDelay>> {
        let max_delay = self.max_delay?;
        let probe = crate::delay::probe_current_runtime(max_delay);
        crate::events::delay_probe(&self.name, probe.is_some());
        probe
    }

    /// Builds a limiter reading `clock` and `cpu`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build_with<C: Clock, U: CpuUsage>(
        self,
        clock: C,
        cpu: U,
    ) -> Result<BbrLimiter<C, U>, ConfigError> {
        BbrLimiter::new(self, clock, cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_krato_s_plus_headroom_and_a_delay_bound() {
        let config = BbrConfig::default();
        assert_eq!(
            config.window_config(),
            WindowConfig::new(100, Duration::from_millis(100))
        );
        assert_eq!(
            (config.cpu_threshold, config.cooldown, config.gate),
            (0.8, Duration::from_secs(1), Gate::Cpu)
        );
        assert_eq!(config.max_delay, Some(Duration::from_millis(10)));
        assert_eq!(config.headroom, 1.0);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = BbrConfig::default();
        let cases = [
            (base.clone().with_window(Duration::ZERO, 10), "window"),
            (
                base.clone().with_window(Duration::from_secs(1), 1),
                "buckets",
            ),
            (
                base.clone().with_window(Duration::from_secs(1), 100_000),
                "buckets",
            ),
            (
                base.clone().with_window(Duration::from_nanos(50), 100),
                "window",
            ),
            (base.clone().with_cpu_threshold(1.2), "cpu_threshold"),
            (base.clone().with_cpu_threshold(f64::NAN), "cpu_threshold"),
            (
                base.clone().with_gate(Gate::Latency { inflation: 0.5 }),
                "gate",
            ),
            (
                base.clone().with_gate(Gate::Either {
                    inflation: f64::INFINITY,
                }),
                "gate",
            ),
            (base.clone().with_headroom(-0.5), "headroom"),
            (base.clone().with_headroom(f64::NAN), "headroom"),
            (base.clone().with_headroom(f64::INFINITY), "headroom"),
            (base.clone().with_headroom(101.0), "headroom"),
            (base.clone().with_name(""), "name"),
            (
                base.clone()
                    .with_max_delay(Some(Duration::from_micros(999))),
                "max_delay",
            ),
            (
                base.clone().with_max_delay(Some(Duration::MAX)),
                "max_delay",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }
}
