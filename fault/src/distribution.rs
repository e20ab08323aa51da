//! [`Distribution`]: how long an injected delay or a simulated service takes, and
//! [`poisson_gap`]: when the next request of a Poisson stream arrives.

use std::time::Duration;

use fastrand::Rng;
use rampart_core::{ConfigError, check};

/// The 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874_040_841;

/// A distribution of durations, sampled with a seedable generator.
///
/// ```
/// use std::time::Duration;
/// use rampart_fault::Distribution;
///
/// let mut rng = fastrand::Rng::with_seed(7);
/// let latency = Distribution::log_normal_p99(Duration::from_millis(10), Duration::from_millis(40));
/// let sample = latency.sample(&mut rng);
/// assert!(sample > Duration::ZERO);
/// assert_eq!(Distribution::Fixed(Duration::from_millis(3)).sample(&mut rng), Duration::from_millis(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Always this duration.
    Fixed(Duration),
    /// Uniform between `low` and `high` (both included).
    Uniform {
        /// The shortest duration.
        low: Duration,
        /// The longest duration.
        high: Duration,
    },
    /// Log-normal: `median · e^(σ·Z)` with `Z` standard normal. Its long right tail is how real
    /// service times look: most calls near the median, a few many times slower.
    LogNormal {
        /// The median duration.
        median: Duration,
        /// The standard deviation of the logarithm: 0 is fixed; 0.5 puts the 99th percentile
        /// at 3.2× the median; 1.0 at 10×.
        sigma: f64,
    },
    /// Exponential with the given mean: the service time of an M/M/c queue.
    Exponential {
        /// The mean duration.
        mean: Duration,
    },
}

impl Default for Distribution {
    /// No delay at all.
    fn default() -> Self {
        Self::ZERO
    }
}

impl Distribution {
    /// Always zero.
    pub const ZERO: Self = Self::Fixed(Duration::ZERO);

    /// A log-normal distribution with the given median and 99th percentile.
    ///
    /// A `p99` below the median is read as equal to it (a fixed duration).
    pub fn log_normal_p99(median: Duration, p99: Duration) -> Self {
        let ratio = p99.as_secs_f64() / median.as_secs_f64();
        let sigma = if ratio.is_finite() && ratio > 1.0 {
            ratio.ln() / Z_99
        } else {
            0.0
        };
        Self::LogNormal { median, sigma }
    }

    /// Checks the parameters; `field` names the configuration field in the error.
    ///
    /// # Errors
    ///
    /// `Uniform` with `low > high`; `LogNormal` with a `sigma` that is negative, NaN, or larger
    /// than 10.
    pub fn validate(&self, field: &'static str) -> Result<(), ConfigError> {
        match *self {
            Self::Uniform { low, high } if low > high => Err(ConfigError::new(
                field,
                "must have `low` no greater than `high` (a uniform distribution)",
            )
            .with_value(self)),
            Self::Fixed(_) | Self::Exponential { .. } | Self::Uniform { .. } => Ok(()),
            Self::LogNormal { sigma, .. } => check::finite_in(field, sigma, 0.0..=10.0)
                .map(drop)
                .map_err(|_| {
                    ConfigError::new(
                        field,
                        "must have a finite `sigma` in [0, 10] (a log-normal distribution)",
                    )
                    .with_value(self)
                }),
        }
    }

    /// The mean of the distribution.
    pub fn mean(&self) -> Duration {
        match *self {
            Self::Fixed(duration) => duration,
            Self::Uniform { low, high } => low + (high.saturating_sub(low)) / 2,
            Self::LogNormal { median, sigma } => {
                saturating_secs(median.as_secs_f64() * (sigma * sigma / 2.0).exp())
            }
            Self::Exponential { mean } => mean,
        }
    }

    /// Draws one duration.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        match *self {
            Self::Fixed(duration) => duration,
            Self::Uniform { low, high } => {
                let span = high
                    .saturating_sub(low)
                    .as_nanos()
                    .min(u128::from(u64::MAX)) as u64;
                low.saturating_add(Duration::from_nanos(rng.u64(0..=span)))
            }
            Self::LogNormal { median, sigma } => {
                saturating_secs(median.as_secs_f64() * (sigma * standard_normal(rng)).exp())
            }
            Self::Exponential { mean } => poisson_gap(rng, 1.0 / mean.as_secs_f64()),
        }
    }
}

/// The time to the next arrival of a Poisson process of `per_second` arrivals per second: an
/// exponential variate of mean `1 / per_second` seconds, from one draw of `rng`.
///
/// Gaps drawn one after another at a fixed rate make Poisson arrivals, the open-loop traffic
/// of rampart's simulations; [`Distribution::Exponential`] samples through it too, so every
/// exponential draw in rampart is this one formula, `−ln(1 − U) / rate` with `U` uniform in
/// [0, 1).
///
/// A rate of zero (or a negative or NaN one) never arrives: the gap is [`Duration::MAX`]. An
/// infinite rate arrives at once. A gap too long for a `Duration` saturates at its maximum.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rampart_fault::poisson_gap;
///
/// let mut rng = fastrand::Rng::with_seed(7);
/// let mut at = Duration::ZERO;
/// let mut arrivals = 0;
/// while at < Duration::from_secs(10) {
///     arrivals += 1;
///     at += poisson_gap(&mut rng, 1_000.0);
/// }
/// // About 1 000 a second, give or take Poisson noise (the standard deviation is 100).
/// assert!((9_500..10_500).contains(&arrivals), "{arrivals}");
/// assert_eq!(poisson_gap(&mut rng, 0.0), Duration::MAX);
/// ```
pub fn poisson_gap(rng: &mut Rng, per_second: f64) -> Duration {
    // 1 − U lies in (0, 1], so the logarithm is finite and at most zero.
    let exponential = -(1.0 - rng.f64()).ln();
    if per_second.is_nan() || per_second <= 0.0 {
        return Duration::MAX;
    }
    saturating_secs(exponential / per_second)
}

/// A standard normal variate (Box–Muller).
fn standard_normal(rng: &mut Rng) -> f64 {
    let radius = (-2.0 * (1.0 - rng.f64()).ln()).sqrt();
    radius * (std::f64::consts::TAU * rng.f64()).cos()
}

/// Seconds as a duration, saturating instead of panicking on huge, negative or NaN values.
fn saturating_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn samples(distribution: Distribution, n: usize) -> Vec<Duration> {
        let mut rng = Rng::with_seed(42);
        let mut samples: Vec<_> = (0..n).map(|_| distribution.sample(&mut rng)).collect();
        samples.sort();
        samples
    }

    #[test]
    fn uniform_samples_stay_within_their_bounds_and_cover_them() {
        let s = samples(
            Distribution::Uniform {
                low: 2 * MS,
                high: 4 * MS,
            },
            10_000,
        );
        assert!(s[0] >= 2 * MS && s[s.len() - 1] <= 4 * MS);
        assert!(s[0] < 2 * MS + MS / 50 && s[s.len() - 1] > (4 * MS).checked_sub(MS / 50).unwrap());
        let median = s[s.len() / 2];
        assert!(
            median > 2900 * MS / 1000 && median < 3100 * MS / 1000,
            "{median:?}"
        );
    }

    #[test]
    fn log_normal_has_the_median_and_p99_it_was_built_with() {
        // 20 000 seeded samples: the order statistics land within 5 % of the targets.
        let s = samples(Distribution::log_normal_p99(10 * MS, 40 * MS), 20_000);
        let (median, p99) = (s[10_000], s[19_800]);
        assert!(
            median > 9500 * MS / 1000 && median < 10_500 * MS / 1000,
            "median {median:?}"
        );
        assert!(p99 > 38 * MS && p99 < 42 * MS, "p99 {p99:?}");
    }

    #[test]
    fn exponential_has_its_mean() {
        let s = samples(Distribution::Exponential { mean: 10 * MS }, 20_000);
        let mean = s.iter().sum::<Duration>() / 20_000;
        assert!(
            mean > 9700 * MS / 1000 && mean < 10_300 * MS / 1000,
            "{mean:?}"
        );
    }

    #[test]
    fn poisson_gaps_have_the_mean_and_spread_of_their_rate() {
        let mut rng = Rng::with_seed(42);
        let gaps: Vec<f64> = (0..20_000)
            .map(|_| poisson_gap(&mut rng, 500.0).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / 20_000.0;
        assert!((mean - 0.002).abs() < 0.000_06, "mean {mean}");
        // Memoryless: e^(-1) ≈ 36.8 % of the gaps exceed the mean.
        let long = gaps.iter().filter(|&&gap| gap > 0.002).count();
        assert!(
            (7_000..7_700).contains(&long),
            "{long} longer than the mean"
        );
        let draw = |seed| {
            let mut rng = Rng::with_seed(seed);
            (0..100)
                .map(|_| poisson_gap(&mut rng, 500.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn poisson_gaps_of_degenerate_rates_saturate() {
        let mut rng = Rng::with_seed(3);
        for rate in [0.0, -1.0, f64::NAN] {
            assert_eq!(poisson_gap(&mut rng, rate), Duration::MAX, "{rate}");
        }
        assert_eq!(poisson_gap(&mut rng, f64::INFINITY), Duration::ZERO);
        assert_eq!(poisson_gap(&mut rng, f64::MIN_POSITIVE), Duration::MAX);
        // The exponential distribution is the gap of the reciprocal rate.
        let mean = 10 * MS;
        let (mut a, mut b) = (Rng::with_seed(5), Rng::with_seed(5));
        for _ in 0..100 {
            assert_eq!(
                Distribution::Exponential { mean }.sample(&mut a),
                poisson_gap(&mut b, 1.0 / mean.as_secs_f64())
            );
        }
        assert_eq!(
            Distribution::Exponential {
                mean: Duration::ZERO
            }
            .sample(&mut a),
            Duration::ZERO
        );
    }

    #[test]
    fn means_are_exact() {
        assert_eq!(Distribution::Fixed(3 * MS).mean(), 3 * MS);
        assert_eq!(
            Distribution::Uniform {
                low: 2 * MS,
                high: 4 * MS
            }
            .mean(),
            3 * MS
        );
        let log_normal = Distribution::LogNormal {
            median: 10 * MS,
            sigma: 0.5,
        }
        .mean();
        assert_eq!(log_normal.as_micros(), 11_331); // 10 ms · e^(0.125)
    }

    #[test]
    fn the_same_seed_gives_the_same_samples() {
        let distribution = Distribution::LogNormal {
            median: 10 * MS,
            sigma: 1.0,
        };
        let draw = |seed| {
            let mut rng = Rng::with_seed(seed);
            (0..100)
                .map(|_| distribution.sample(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn invalid_parameters_are_config_errors() {
        let inverted = Distribution::Uniform {
            low: 3 * MS,
            high: MS,
        };
        assert_eq!(inverted.validate("latency").unwrap_err().field(), "latency");
        for sigma in [f64::NAN, -0.1, f64::INFINITY, 11.0] {
            let bad = Distribution::LogNormal { median: MS, sigma };
            assert!(bad.validate("service_time").is_err(), "{sigma}");
        }
        assert!(
            Distribution::log_normal_p99(MS, 100 * MS)
                .validate("x")
                .is_ok()
        );
        assert_eq!(
            Distribution::log_normal_p99(MS, MS / 2),
            Distribution::LogNormal {
                median: MS,
                sigma: 0.0
            }
        );
    }

    #[test]
    fn extreme_parameters_saturate_instead_of_panicking() {
        let mut rng = Rng::with_seed(3);
        let huge = Distribution::LogNormal {
            median: Duration::MAX,
            sigma: 10.0,
        };
        let _ = huge.sample(&mut rng);
        let _ = huge.mean();
        let wide = Distribution::Uniform {
            low: Duration::ZERO,
            high: Duration::MAX,
        };
        let _ = wide.sample(&mut rng);
        assert_eq!(
            Distribution::Exponential {
                mean: Duration::MAX
            }
            .mean(),
            Duration::MAX
        );
    }
}
