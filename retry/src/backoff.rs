//! [`Backoff`]: how long to wait before each retry.

use std::time::Duration;

use fastrand::Rng;
use rampart_core::{ConfigError, check};

/// How long to wait before each retry.
///
/// Jitter matters more than the curve: without it, clients that failed together retry
/// together. The default is exponential with *full jitter* (AWS's recommendation): the `n`-th
/// retry waits a uniform random time between zero and `min(cap, base × factorⁿ⁻¹)`, here 25 ms
/// doubling up to 1 s.
///
/// ```
/// use std::time::Duration;
/// use rampart_retry::Backoff;
///
/// let mut rng = fastrand::Rng::with_seed(1);
/// let backoff = Backoff::default();
/// let (mut previous, mut waits) = (Duration::ZERO, Vec::new());
/// for retry in 1..=8 {
///     previous = backoff.delay(retry, previous, &mut rng);
///     waits.push(previous);
/// }
/// assert!(waits.iter().all(|wait| *wait <= Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// `min(cap, base × factorⁿ⁻¹)` before the `n`-th retry, with or without full jitter.
    Exponential {
        /// The ceiling of the first wait.
        base: Duration,
        /// How much each retry's ceiling grows: at least 1.
        factor: f64,
        /// The largest wait.
        cap: Duration,
        /// Whether to draw the wait uniformly below the ceiling (full jitter).
        jitter: bool,
    },
    /// "Decorrelated jitter": each wait is uniform between `base` and three times the
    /// previous wait, capped at `cap`.
    Decorrelated {
        /// The shortest wait, and the first one's reference.
        base: Duration,
        /// The largest wait.
        cap: Duration,
    },
    /// Always the same wait.
    Constant(Duration),
}

impl Default for Backoff {
    fn default() -> Self {
        Self::Exponential {
            base: Duration::from_millis(25),
            factor: 2.0,
            cap: Duration::from_secs(1),
            jitter: true,
        }
    }
}

impl Backoff {
    /// Checks the parameters.
    ///
    /// # Errors
    ///
    /// A `factor` NaN, infinite or below 1; a `cap` below `base`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Self::Exponential {
                base, factor, cap, ..
            } => {
                check::finite_in("backoff", factor, 1.0..=1_000.0).map_err(|_| {
                    ConfigError::new("backoff", "factor must be finite and in [1, 1000]")
                        .with_value(factor)
                })?;
                check_cap(base, cap)
            }
            Self::Decorrelated { base, cap } => check_cap(base, cap),
            Self::Constant(_) => Ok(()),
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), given the `previous`
    /// wait (only `Decorrelated` uses it).
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut Rng) -> Duration {
        match *self {
            Self::Exponential {
                base,
                factor,
                cap,
                jitter,
            } => {
                let growth = factor.powi(retry.saturating_sub(1).min(1_000) as i32);
                let ceiling = secs(base.as_secs_f64() * growth).min(cap);
                if jitter {
                    uniform(rng, Duration::ZERO, ceiling)
                } else {
                    ceiling
                }
            }
            Self::Decorrelated { base, cap } => {
                let previous = previous.max(base);
                uniform(rng, base, previous.saturating_mul(3).min(cap).max(base))
            }
            Self::Constant(wait) => wait,
        }
    }
}

fn check_cap(base: Duration, cap: Duration) -> Result<(), ConfigError> {
    if cap < base {
        return Err(
            ConfigError::new("backoff", "cap must be at least base").with_value((base, cap))
        );
    }
    Ok(())
}

/// A uniform duration in `[low, high]`, to the nanosecond.
fn uniform(rng: &mut Rng, low: Duration, high: Duration) -> Duration {
    let span = u64::try_from(high.saturating_sub(low).as_nanos()).unwrap_or(u64::MAX);
    low.saturating_add(Duration::from_nanos(rng.u64(0..=span)))
}

fn secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn delays(backoff: Backoff, seed: u64) -> Vec<Duration> {
        let mut rng = Rng::with_seed(seed);
        let mut previous = Duration::ZERO;
        (1..=12)
            .map(|retry| {
                previous = backoff.delay(retry, previous, &mut rng);
                previous
            })
            .collect()
    }

    #[test]
    fn full_jitter_stays_below_the_doubling_ceiling_and_the_cap() {
        for seed in 0..50 {
            for (retry, wait) in (1..).zip(delays(Backoff::default(), seed)) {
                let ceiling = (25 * MS * 2_u32.pow(retry - 1)).min(Duration::from_secs(1));
                assert!(
                    wait <= ceiling,
                    "seed {seed}, retry {retry}: {wait:?} > {ceiling:?}"
                );
            }
        }
        // And it does use the range: over many draws the first wait spans 0..25 ms.
        let firsts: Vec<Duration> = (0..500)
            .map(|seed| delays(Backoff::default(), seed)[0])
            .collect();
        assert!(firsts.iter().any(|d| *d < 3 * MS) && firsts.iter().any(|d| *d > 22 * MS));
    }

    #[test]
    fn without_jitter_the_waits_are_the_ceilings() {
        let backoff = Backoff::Exponential {
            base: 10 * MS,
            factor: 3.0,
            cap: 500 * MS,
            jitter: false,
        };
        let waits = delays(backoff, 1);
        assert_eq!(
            &waits[..5],
            &[10 * MS, 30 * MS, 90 * MS, 270 * MS, 500 * MS]
        );
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_three_times_the_previous_wait() {
        let backoff = Backoff::Decorrelated {
            base: 10 * MS,
            cap: 300 * MS,
        };
        for seed in 0..50 {
            let waits = delays(backoff, seed);
            let mut previous = 10 * MS;
            for wait in waits {
                assert!(
                    wait >= 10 * MS && wait <= (previous * 3).min(300 * MS).max(10 * MS),
                    "{wait:?}"
                );
                previous = wait;
            }
        }
    }

    #[test]
    fn a_seed_reproduces_the_waits() {
        assert_eq!(delays(Backoff::default(), 7), delays(Backoff::default(), 7));
        assert_ne!(delays(Backoff::default(), 7), delays(Backoff::default(), 8));
        assert_eq!(delays(Backoff::Constant(5 * MS), 1), vec![5 * MS; 12]);
    }

    #[test]
    fn invalid_backoffs_are_config_errors() {
        for bad in [
            Backoff::Exponential {
                base: MS,
                factor: 0.5,
                cap: MS,
                jitter: true,
            },
            Backoff::Exponential {
                base: MS,
                factor: f64::NAN,
                cap: MS,
                jitter: true,
            },
            Backoff::Exponential {
                base: 2 * MS,
                factor: 2.0,
                cap: MS,
                jitter: true,
            },
            Backoff::Decorrelated {
                base: 2 * MS,
                cap: MS,
            },
        ] {
            assert_eq!(bad.validate().unwrap_err().field(), "backoff", "{bad:?}");
        }
        assert!(Backoff::default().validate().is_ok());
    }
}
