use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::{ConfigError, check};

use super::{CpuSource, CpuUsage};

/// A smoothed CPU reading shared between its sampler and its readers: an `f64` in one atomic.
///
/// Clones share the value. Reading it is one atomic load.
#[derive(Debug, Clone, Default)]
pub struct SmoothedCpu {
    bits: Arc<AtomicU64>,
}

impl SmoothedCpu {
    /// A reading of zero (idle).
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn set(&self, usage: f64) {
        self.bits.store(usage.to_bits(), Ordering::Relaxed);
    }

    /// A weak handle: its strong count tells a sampler whether anyone still reads the value.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn weak(&self) -> std::sync::Weak<AtomicU64> {
        Arc::downgrade(&self.bits)
    }
}

impl CpuUsage for SmoothedCpu {
    #[inline]
    fn usage(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// Samples a [`CpuSource`] and folds each reading into a [`SmoothedCpu`] with an exponentially
/// weighted moving average: `smoothed = decay × smoothed + (1 − decay) × sample`.
///
/// Drive it with [`tick`](Self::tick) on a fixed interval: [`SystemCpu`](crate::SystemCpu)
/// does on a background thread, `spawn_sampler` (feature `tokio`) in a tokio task, a test by
/// hand:
///
/// ```
/// use rampart_ratelimit::{CpuSampler, CpuUsage};
///
/// // Full load arrives at an idle process: eight samples to cross 80 % with decay 0.8.
/// let mut sampler = CpuSampler::new(|| 1.0, 0.8)?;
/// let cpu = sampler.smoothed();
/// let samples = (1..).find(|_| { sampler.tick(); cpu.usage() >= 0.8 });
/// assert_eq!(samples, Some(8));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct CpuSampler<S> {
    source: S,
    decay: f64,
    /// The decay of a sample above the smoothed value (`decay` unless set apart).
    rising: f64,
    smoothed: SmoothedCpu,
    current: f64,
}

impl<S: CpuSource> CpuSampler<S> {
    /// A sampler of `source`, starting from zero (idle).
    ///
    /// # Errors
    ///
    /// `decay` is NaN or outside [0, 1).
    pub fn new(source: S, decay: f64) -> Result<Self, ConfigError> {
        check_decay(decay)?;
        Ok(Self {
            source,
            decay,
            rising: decay,
            smoothed: SmoothedCpu::new(),
            current: 0.0,
        })
    }

    /// The same sampler, folding in a sample above the smoothed value with `decay` instead:
    /// a lower one lets the value rise faster than it falls (attack and release, as an audio
    /// compressor's).
    ///
    /// ```
    /// use rampart_ratelimit::{CpuSampler, CpuUsage};
    ///
    /// // Full load: two samples to cross 80 % rising with decay 0.5, and, once it is gone,
    /// // still above 50 % two samples later, falling with 0.8.
    /// let load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    /// let source = {
    ///     let load = std::sync::Arc::clone(&load);
    ///     move || if load.load(std::sync::atomic::Ordering::Relaxed) { 1.0 } else { 0.0 }
    /// };
    /// let mut sampler = CpuSampler::new(source, 0.8)?.with_rising_decay(0.5)?;
    /// let cpu = sampler.smoothed();
    /// let samples = (1..).find(|_| { sampler.tick(); cpu.usage() >= 0.8 });
    /// assert_eq!(samples, Some(3));
    /// load.store(false, std::sync::atomic::Ordering::Relaxed);
    /// sampler.tick();
    /// sampler.tick();
    /// assert!(cpu.usage() > 0.5);
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Field `decay` when `decay` is NaN or outside [0, 1).
    pub fn with_rising_decay(self, decay: f64) -> Result<Self, ConfigError> {
        Ok(Self {
            rising: check_decay(decay)?,
            ..self
        })
    }

    /// The smoothed value this sampler updates.
    pub fn smoothed(&self) -> SmoothedCpu {
        self.smoothed.clone()
    }

    /// Takes one sample and updates the smoothed value; returns it. A failed sample (or a
    /// NaN) keeps the previous value; samples are clamped to [0, 1].
    pub fn tick(&mut self) -> f64 {
        if let Ok(sample) = self.source.sample()
            && !sample.is_nan()
        {
            let sample = sample.clamp(0.0, 1.0);
            let decay = if sample > self.current {
                self.rising
            } else {
                self.decay
            };
            self.current = decay * self.current + (1.0 - decay) * sample;
            self.smoothed.set(self.current);
        }
        self.current
    }
}

/// Checks an EWMA decay factor.
pub(crate) fn check_decay(decay: f64) -> Result<f64, ConfigError> {
    if (0.0..1.0).contains(&decay) {
        Ok(decay)
    } else {
        Err(ConfigError::new("decay", "must be finite and in [0, 1)").with_value(decay))
    }
}

/// Checks a sampling interval.
pub(crate) fn check_interval(interval: Duration) -> Result<Duration, ConfigError> {
    check::positive("interval", interval)
}

/// A CPU reading set by hand, for tests. Clones share the value.
///
/// It is both a [`CpuUsage`] (read by a limiter directly, unsmoothed) and a [`CpuSource`]
/// (fed through a [`CpuSampler`] to test smoothing).
///
/// ```
/// use rampart_ratelimit::{CpuUsage, ManualCpu};
///
/// let cpu = ManualCpu::new(0.3);
/// cpu.set(0.9);
/// assert_eq!(cpu.usage(), 0.9);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualCpu {
    value: SmoothedCpu,
}

impl ManualCpu {
    /// A reading of `usage`.
    pub fn new(usage: f64) -> Self {
        let cpu = Self::default();
        cpu.set(usage);
        cpu
    }

    /// Sets the reading (clamped to [0, 1]; NaN reads as 0).
    pub fn set(&self, usage: f64) {
        self.value.set(if usage.is_nan() {
            0.0
        } else {
            usage.clamp(0.0, 1.0)
        });
    }
}

impl CpuUsage for ManualCpu {
    #[inline]
    fn usage(&self) -> f64 {
        self.value.usage()
    }
}

impl CpuSource for ManualCpu {
    fn sample(&mut self) -> Result<f64, super::CpuError> {
        Ok(self.value.usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_load_from_idle_crosses_80_percent_after_8_samples() {
        let mut sampler = CpuSampler::new(|| 1.0, 0.8).expect("valid");
        let readings: Vec<f64> = (0..8).map(|_| sampler.tick()).collect();
        assert!(readings[6] < 0.8, "7 samples: {}", readings[6]);
        assert!(readings[7] >= 0.8, "8 samples: {}", readings[7]);
        // 1 − 0.8⁸
        assert!((readings[7] - (1.0 - 0.8_f64.powi(8))).abs() < 1e-12);
    }

    #[test]
    fn a_steady_82_percent_converges_to_82_percent_and_crosses_80() {
        let mut sampler = CpuSampler::new(|| 0.82, 0.8).expect("valid");
        let mut crossed = None;
        for n in 1..=200 {
            if sampler.tick() >= 0.8 && crossed.is_none() {
                crossed = Some(n);
            }
        }
        assert!((sampler.smoothed().usage() - 0.82).abs() < 1e-9);
        assert_eq!(crossed, Some(17), "1 − 0.8ⁿ ≥ 0.8 / 0.82 first at n = 17");
    }

    #[test]
    fn failed_and_nonsense_samples_keep_the_previous_value() {
        let mut readings = [
            Ok(0.5),
            Err(super::super::CpuError::new("gone")),
            Ok(f64::NAN),
            Ok(7.0),
        ]
        .into_iter();
        let source = move || -> f64 {
            match readings.next() {
                Some(Ok(v)) => v,
                _ => f64::NAN,
            }
        };
        let mut sampler = CpuSampler::new(source, 0.0).expect("valid");
        assert_eq!(sampler.tick(), 0.5);
        assert_eq!(sampler.tick(), 0.5, "an error (here NaN) keeps 0.5");
        assert_eq!(sampler.tick(), 0.5);
        assert_eq!(sampler.tick(), 1.0, "clamped");
    }

    #[test]
    fn decay_must_be_in_the_unit_interval() {
        for bad in [-0.1, 1.0, f64::NAN, f64::INFINITY] {
            let Err(err) = CpuSampler::new(|| 0.0, bad) else {
                panic!("{bad} accepted")
            };
            assert_eq!(err.field(), "decay", "{bad}");
        }
    }
}
