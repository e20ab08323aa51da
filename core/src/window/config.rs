use std::time::Duration;

use super::{MAX_BUCKETS, RollingWindow};
use crate::clock::saturating_nanos;
use crate::error::check;
use crate::{Clock, ConfigError, SystemClock};

/// The shortest bucket a window accepts.
pub(super) const MIN_BUCKET_DURATION: Duration = Duration::from_micros(1);

/// How many copies of each bucket a window keeps, so that threads recording at the same time
/// write to different cache lines.
///
/// A record adds to the bucket copy of the calling thread's stripe (see
/// [`thread_stripe`](Self::thread_stripe): on Linux, its CPU's); a read adds up every stripe. With one stripe, two threads
/// recording into one window at full speed bounce one cache line between their cores: each
/// record took 26 ns on our 2-vCPU benchmark machine, against 4.9 ns with a stripe each (the
/// same as one thread alone). The price is memory (`buckets × stripes × 16` bytes, each stripe
/// padded to 128 bytes) and reads that visit every stripe (a 100-bucket sum took 52 ns with
/// two stripes, 32 ns with one). Choose [`Stripes::Exactly(1)`](Stripes::Exactly) for windows
/// that are read far more often than written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stripes {
    /// One stripe per available CPU, rounded up to a power of two, at most 8.
    #[default]
    Auto,
    /// Exactly this many stripes: a power of two from 1 to 64.
    Exactly(usize),
}

impl Stripes {
    /// The number of stripes this setting gives on this machine.
    pub fn count(self) -> usize {
        match self {
            Self::Auto => super::ring::auto_stripes(),
            Self::Exactly(stripes) => stripes,
        }
    }

    /// The stripe the calling thread uses among `stripes` (as [`count`](Self::count) gives;
    /// zero when `stripes` is 0 or 1), as a window's records do: on Linux the one of the CPU
    /// it runs on, so that threads running at the same time on different CPUs (of up to
    /// `stripes` consecutive ones) use different stripes; elsewhere threads are numbered in the
    /// order they first ask and take the stripes in turn. A thread moved to another CPU may
    /// get another stripe at its next call. For state kept per stripe beside a window's, such
    /// as the shared balancer's statistics.
    ///
    /// ```
    /// use rampart_core::Stripes;
    ///
    /// let stripes = Stripes::Auto.count();
    /// assert!(Stripes::thread_stripe(stripes) < stripes);
    /// assert_eq!(Stripes::thread_stripe(1), 0);
    /// ```
    #[inline]
    pub fn thread_stripe(stripes: usize) -> usize {
        match stripes {
            0 | 1 => 0,
            _ if stripes.is_power_of_two() => crate::sync::thread_stripe_hint() & (stripes - 1),
            _ => crate::sync::thread_stripe_hint() % stripes,
        }
    }
}

/// Most stripes a window accepts.
const MAX_STRIPES: usize = 64;

/// The shape of a [`RollingWindow`]: `buckets` buckets of `bucket_duration` each.
///
/// The window spans `buckets × bucket_duration`. The default is 10 buckets of 100 ms (a 1 s
/// window); the layer crates pick their own (the breaker 3 s in 10, the limiter 10 s in 100).
///
/// ```
/// use std::time::Duration;
/// use rampart_core::WindowConfig;
///
/// let config = WindowConfig::spanning(Duration::from_secs(3), 10);
/// assert_eq!(config.bucket_duration, Duration::from_millis(300));
/// let window = config.build()?;
/// assert_eq!(window.window(), Duration::from_secs(3));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Number of buckets in the ring: 1 to 65 536.
    pub buckets: usize,
    /// Width of one bucket: at least 1 µs.
    pub bucket_duration: Duration,
    /// How many copies of each bucket concurrent writers spread over; [`Stripes::Auto`] by
    /// default.
    pub stripes: Stripes,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self::new(10, Duration::from_millis(100))
    }
}

impl WindowConfig {
    /// `buckets` buckets of `bucket_duration` each, with [`Stripes::Auto`].
    pub const fn new(buckets: usize, bucket_duration: Duration) -> Self {
        Self {
            buckets,
            bucket_duration,
            stripes: Stripes::Auto,
        }
    }

    /// The same shape with `stripes` stripes.
    #[must_use]
    pub const fn with_stripes(self, stripes: Stripes) -> Self {
        Self { stripes, ..self }
    }

    /// A window of length `window` cut into `buckets` buckets; each bucket is
    /// `window / buckets`, rounded down to the nanosecond.
    pub fn spanning(window: Duration, buckets: usize) -> Self {
        let per_bucket = u32::try_from(buckets)
            .ok()
            .and_then(|buckets| window.checked_div(buckets))
            // Zero or too many buckets: keep the count so that `validate` reports it.
            .unwrap_or(window);
        Self::new(buckets, per_bucket)
    }

    /// [`spanning`](Self::spanning), validated as a layer's configuration states it: problems
    /// are reported against its `window` and `buckets` fields, not against the bucket duration
    /// derived from them.
    ///
    /// # Errors
    ///
    /// A zero `window`; `buckets` zero or above 65 536; a `window` too short to give each
    /// bucket 1 µs, or too long for 2⁶⁴ nanoseconds.
    pub fn spanning_checked(window: Duration, buckets: usize) -> Result<Self, ConfigError> {
        check::positive("window", window)?;
        let config = Self::spanning(window, buckets);
        config.validate().map_err(|err| match err.field() {
            "bucket_duration" if config.bucket_duration < MIN_BUCKET_DURATION => ConfigError::new(
                "window",
                format!("divided into {buckets} buckets must give buckets of at least 1µs"),
            )
            .with_value(window),
            "bucket_duration" => {
                ConfigError::new("window", "must fit in 2^64 nanoseconds (about 584 years)")
                    .with_value(window)
            }
            _ => err,
        })?;
        Ok(config)
    }

    /// The span of the window: `buckets × bucket_duration` (saturating).
    pub fn window(&self) -> Duration {
        u32::try_from(self.buckets)
            .ok()
            .and_then(|buckets| self.bucket_duration.checked_mul(buckets))
            .unwrap_or(Duration::MAX)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// - `buckets` is 0 or more than 65 536;
    /// - `bucket_duration` is zero or shorter than 1 µs;
    /// - the window (`buckets × bucket_duration`) does not fit in 2⁶⁴ nanoseconds (about 584
    ///   years);
    /// - `stripes` is [`Stripes::Exactly`] a number that is not a power of two from 1 to 64.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::within("buckets", self.buckets, 1..=MAX_BUCKETS)?;
        check::positive("bucket_duration", self.bucket_duration)?;
        if self.bucket_duration < MIN_BUCKET_DURATION {
            return Err(ConfigError::new("bucket_duration", "must be at least 1µs")
                .with_value(self.bucket_duration));
        }
        let bucket_nanos = saturating_nanos(self.bucket_duration);
        if bucket_nanos == u64::MAX || bucket_nanos.checked_mul(self.buckets as u64).is_none() {
            return Err(ConfigError::new(
                "bucket_duration",
                format!(
                    "times {} buckets must fit in 2^64 nanoseconds (about 584 years)",
                    self.buckets
                ),
            )
            .with_value(self.bucket_duration));
        }
        if let Stripes::Exactly(stripes) = self.stripes
            && (!stripes.is_power_of_two() || stripes > MAX_STRIPES)
        {
            {
                return Err(
                    ConfigError::new("stripes", "must be a power of two from 1 to 64")
                        .with_value(stripes),
                );
            }
        }
        Ok(())
    }

    /// Builds a window that reads [`SystemClock`].
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build(self) -> Result<RollingWindow, ConfigError> {
        self.build_with(SystemClock::new())
    }

    /// Builds a window that reads `clock`; its buckets are aligned to `clock.now()`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build_with<C: Clock>(self, clock: C) -> Result<RollingWindow<C>, ConfigError> {
        Ok(self.validated()?.build_with(clock))
    }

    /// Checks every field once, for a caller that builds many windows of this shape (one per
    /// member of a keyed group) and must not fail when it builds them.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn validated(self) -> Result<ValidWindowConfig, ConfigError> {
        self.validate()?;
        Ok(ValidWindowConfig(self))
    }
}

/// A [`WindowConfig`] that passed [`validate`](WindowConfig::validate): it builds windows
/// without failing. Made by [`WindowConfig::validated`].
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{ManualClock, WindowConfig};
///
/// let shape = WindowConfig::spanning(Duration::from_secs(3), 10).validated()?;
/// let windows: Vec<_> = (0..3).map(|_| shape.build_with(ManualClock::new())).collect();
/// assert!(windows.iter().all(|window| window.window() == Duration::from_secs(3)));
/// assert!(WindowConfig::new(0, Duration::from_secs(1)).validated().is_err());
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidWindowConfig(WindowConfig);

impl ValidWindowConfig {
    /// The configuration.
    pub fn config(&self) -> WindowConfig {
        self.0
    }

    /// Builds a window that reads [`SystemClock`].
    pub fn build(self) -> RollingWindow {
        self.build_with(SystemClock::new())
    }

    /// Builds a window that reads `clock`; its buckets are aligned to `clock.now()`.
    pub fn build_with<C: Clock>(self, clock: C) -> RollingWindow<C> {
        RollingWindow::from_valid_config(self.0, clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_buckets_is_rejected_not_a_division_by_zero() {
        for config in [
            WindowConfig::new(0, Duration::from_secs(1)),
            WindowConfig::spanning(Duration::from_secs(1), 0),
        ] {
            let err = config.validate().unwrap_err();
            assert_eq!(err.field(), "buckets");
            assert_eq!(err.rule(), "must be at least 1");
        }
    }

    #[test]
    fn too_many_buckets_is_rejected() {
        let err = WindowConfig::new(MAX_BUCKETS + 1, Duration::from_millis(1))
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "buckets");
        assert_eq!(err.rule(), "must be at most 65536");
        assert!(
            WindowConfig::new(MAX_BUCKETS, Duration::from_millis(1))
                .validate()
                .is_ok()
        );
        let huge = WindowConfig::spanning(Duration::from_secs(1), usize::MAX);
        assert_eq!(huge.validate().unwrap_err().field(), "buckets");
    }

    #[test]
    fn zero_and_sub_microsecond_buckets_are_rejected() {
        let zero = WindowConfig::new(10, Duration::ZERO)
            .validate()
            .unwrap_err();
        assert_eq!(zero.field(), "bucket_duration");
        assert_eq!(zero.rule(), "must be greater than zero");
        let tiny = WindowConfig::new(10, Duration::from_nanos(999))
            .validate()
            .unwrap_err();
        assert_eq!(
            tiny.to_string(),
            "invalid `bucket_duration`: must be at least 1µs (got 999ns)"
        );
        // A window shorter than its bucket count in nanoseconds rounds its buckets to zero.
        let rounded = WindowConfig::spanning(Duration::from_nanos(5), 10)
            .validate()
            .unwrap_err();
        assert_eq!(rounded.field(), "bucket_duration");
        assert!(
            WindowConfig::new(10, MIN_BUCKET_DURATION)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn an_overflowing_window_is_rejected() {
        let century = Duration::from_secs(100 * 365 * 24 * 3600);
        let err = WindowConfig::new(10, century).validate().unwrap_err();
        assert_eq!(err.field(), "bucket_duration");
        assert!(err.rule().contains("584 years"), "{err}");
        assert!(WindowConfig::new(1, Duration::MAX).validate().is_err());
        assert!(WindowConfig::new(5, century).validate().is_ok());
    }

    #[test]
    fn spanning_divides_the_window_and_reports_it_back() {
        let config = WindowConfig::spanning(Duration::from_secs(10), 100);
        assert_eq!(config.bucket_duration, Duration::from_millis(100));
        assert_eq!(config.window(), Duration::from_secs(10));
        let uneven = WindowConfig::spanning(Duration::from_secs(1), 3);
        assert_eq!(uneven.bucket_duration, Duration::from_nanos(333_333_333));
        assert_eq!(
            WindowConfig::new(usize::MAX, Duration::from_secs(1)).window(),
            Duration::MAX
        );
    }

    #[test]
    fn spanning_checked_reports_against_the_window_and_its_buckets() {
        let fields = |window, buckets| {
            WindowConfig::spanning_checked(window, buckets)
                .map(|_| ())
                .map_err(|err| (err.field(), err.rule().to_owned()))
        };
        assert_eq!(
            fields(Duration::ZERO, 10),
            Err(("window", "must be greater than zero".to_owned()))
        );
        assert_eq!(
            fields(Duration::from_nanos(5), 10),
            Err((
                "window",
                "divided into 10 buckets must give buckets of at least 1µs".to_owned()
            ))
        );
        let millennium = Duration::from_secs(1_000 * 365 * 24 * 3600);
        assert_eq!(
            fields(millennium, 1),
            Err((
                "window",
                "must fit in 2^64 nanoseconds (about 584 years)".to_owned()
            ))
        );
        assert_eq!(fields(Duration::from_secs(1), 0).unwrap_err().0, "buckets");
        let config = WindowConfig::spanning_checked(Duration::from_secs(3), 10).expect("valid");
        assert_eq!(config, WindowConfig::spanning(Duration::from_secs(3), 10));
    }

    #[test]
    fn stripes_must_be_a_power_of_two_up_to_64() {
        let config = WindowConfig::default();
        for bad in [0, 3, 6, 128] {
            let err = config
                .with_stripes(Stripes::Exactly(bad))
                .validate()
                .unwrap_err();
            assert_eq!(err.field(), "stripes", "{bad}");
        }
        for good in [1, 2, 4, 64] {
            assert_eq!(
                config.with_stripes(Stripes::Exactly(good)).validate(),
                Ok(())
            );
        }
        let auto = Stripes::Auto.count();
        assert!(auto.is_power_of_two() && auto <= 8, "{auto}");
    }

    #[test]
    fn the_default_is_one_second_in_ten_buckets() {
        let config = WindowConfig::default();
        assert_eq!(config, WindowConfig::new(10, Duration::from_millis(100)));
        assert_eq!(config.validate(), Ok(()));
    }
}
