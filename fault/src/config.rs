use std::time::Duration;

use rampart_core::{ConfigError, check};

use crate::Distribution;

/// What a [`FaultLayer`](crate::FaultLayer) does to each request.
///
/// Each request first waits a delay drawn from `latency`, then one draw decides its fate: it
/// fails with [`InjectedError`](crate::InjectedError) (probability `error_rate`), never
/// completes (`hang_rate`), panics (`panic_rate`), or goes on to the inner service (the rest).
/// The rates are exclusive, so they add up to at most 1. Injected errors, hangs and panics never
/// call the inner service.
///
/// ```
/// use std::time::Duration;
/// use rampart_fault::{Distribution, FaultConfig};
///
/// let flaky = FaultConfig::default()
///     .with_latency(Distribution::Fixed(Duration::from_millis(1)))
///     .with_error_rate(0.1)
///     .with_seed(7);
/// assert!(flaky.validate().is_ok());
/// assert!(FaultConfig::default().with_error_rate(0.7).with_hang_rate(0.5).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// The delay added before each request proceeds (or fails). Default: none.
    pub latency: Distribution,
    /// Probability that a request fails with `InjectedError`, in [0, 1]. Default 0.
    pub error_rate: f64,
    /// Probability that a request never completes, in [0, 1]. Default 0.
    pub hang_rate: f64,
    /// Probability that polling a request's response panics, in [0, 1]. Default 0.
    pub panic_rate: f64,
    /// Seed of the generator behind every draw, read when the layer is built: the same seed
    /// and the same sequence of requests give the same faults. `None` (the default) seeds from
    /// entropy.
    pub seed: Option<u64>,
}

impl Default for FaultConfig {
    /// No faults and no added latency.
    fn default() -> Self {
        Self {
            latency: Distribution::ZERO,
            error_rate: 0.0,
            hang_rate: 0.0,
            panic_rate: 0.0,
            seed: None,
        }
    }
}

impl FaultConfig {
    /// This configuration with `latency` added to every request.
    #[must_use]
    pub fn with_latency(self, latency: Distribution) -> Self {
        Self { latency, ..self }
    }

    /// This configuration with a fixed `delay` added to every request.
    #[must_use]
    pub fn with_delay(self, delay: Duration) -> Self {
        self.with_latency(Distribution::Fixed(delay))
    }

    /// This configuration with the given error rate.
    #[must_use]
    pub fn with_error_rate(self, error_rate: f64) -> Self {
        Self { error_rate, ..self }
    }

    /// This configuration with the given hang rate.
    #[must_use]
    pub fn with_hang_rate(self, hang_rate: f64) -> Self {
        Self { hang_rate, ..self }
    }

    /// This configuration with the given panic rate.
    #[must_use]
    pub fn with_panic_rate(self, panic_rate: f64) -> Self {
        Self { panic_rate, ..self }
    }

    /// This configuration with a fixed seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seed: Some(seed),
            ..self
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// A rate that is NaN or outside [0, 1]; rates adding up to more than 1; an invalid
    /// `latency` distribution.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.latency.validate("latency")?;
        check::finite_in("error_rate", self.error_rate, 0.0..=1.0)?;
        check::finite_in("hang_rate", self.hang_rate, 0.0..=1.0)?;
        check::finite_in("panic_rate", self.panic_rate, 0.0..=1.0)?;
        let total = self.error_rate + self.hang_rate + self.panic_rate;
        if total > 1.0 + 1e-12 {
            return Err(ConfigError::new(
                "error_rate",
                "plus `hang_rate` plus `panic_rate` must be at most 1 (they are exclusive)",
            )
            .with_value(total));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rate_is_checked_by_name() {
        let base = FaultConfig::default();
        for (config, field) in [
            (base.clone().with_error_rate(f64::NAN), "error_rate"),
            (base.clone().with_error_rate(1.5), "error_rate"),
            (base.clone().with_hang_rate(-0.1), "hang_rate"),
            (base.clone().with_panic_rate(f64::INFINITY), "panic_rate"),
            (
                base.clone().with_error_rate(0.5).with_panic_rate(0.6),
                "error_rate",
            ),
            (
                base.clone().with_latency(Distribution::Uniform {
                    low: Duration::from_secs(2),
                    high: Duration::from_secs(1),
                }),
                "latency",
            ),
        ] {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }

    #[test]
    fn rates_adding_up_to_exactly_one_are_valid() {
        let all = FaultConfig::default()
            .with_error_rate(0.5)
            .with_hang_rate(0.25)
            .with_panic_rate(0.25);
        assert_eq!(all.validate(), Ok(()));
        let thirds = FaultConfig::default()
            .with_error_rate(1.0 / 3.0)
            .with_hang_rate(1.0 / 3.0)
            .with_panic_rate(1.0 / 3.0);
        assert_eq!(thirds.validate(), Ok(()));
    }
}
