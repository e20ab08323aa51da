use std::time::Duration;

use rampart_core::{ConfigError, check};

use super::QueueDiscipline;
use crate::Distribution;

/// The shape of a [`SimBackend`](crate::SimBackend): a server with `workers` parallel slots,
/// a service-time distribution and a bounded queue, FIFO unless given another
/// [`QueueDiscipline`].
///
/// The default is 8 workers, a log-normal service time with a 10 ms median and σ 0.5 (p99
/// 32 ms), and a FIFO queue of 1 000 requests: about 700 requests per second of capacity.
///
/// ```
/// use std::time::Duration;
/// use rampart_fault::{Distribution, SimConfig};
///
/// let config = SimConfig::default()
///     .with_workers(4)
///     .with_service_time(Distribution::Fixed(Duration::from_millis(10)));
/// assert_eq!(config.capacity(), 400.0); // requests per second
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Requests served in parallel: at least 1, and any larger count works (workers are
    /// created as requests first need them, so a huge count costs no memory up front).
    pub workers: usize,
    /// How long one request occupies a worker.
    pub service_time: Distribution,
    /// Requests that may wait for a worker; one more is rejected at once with
    /// [`QueueFull`](crate::QueueFull). Zero means no waiting: a request that finds every
    /// worker busy is rejected. Any count works: the queue grows as requests wait
    /// (`usize::MAX` is an unbounded queue).
    pub queue_capacity: usize,
    /// Seed of the service-time draws; `None` (the default) seeds from entropy.
    pub seed: Option<u64>,
    /// Which waiting request a free worker takes, and which the queue drops: FIFO, dropping
    /// nothing, by default.
    pub discipline: QueueDiscipline,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            service_time: Distribution::LogNormal {
                median: Duration::from_millis(10),
                sigma: 0.5,
            },
            queue_capacity: 1_000,
            seed: None,
            discipline: QueueDiscipline::default(),
        }
    }
}

impl SimConfig {
    /// This configuration with `workers` workers.
    #[must_use]
    pub fn with_workers(self, workers: usize) -> Self {
        Self { workers, ..self }
    }

    /// This configuration with the given service time.
    #[must_use]
    pub fn with_service_time(self, service_time: Distribution) -> Self {
        Self {
            service_time,
            ..self
        }
    }

    /// This configuration with room for `queue_capacity` waiting requests.
    #[must_use]
    pub fn with_queue_capacity(self, queue_capacity: usize) -> Self {
        Self {
            queue_capacity,
            ..self
        }
    }

    /// This configuration with a fixed seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seed: Some(seed),
            ..self
        }
    }

    /// This configuration with the given queue discipline.
    #[must_use]
    pub fn with_discipline(self, discipline: QueueDiscipline) -> Self {
        Self { discipline, ..self }
    }

    /// Requests per second the backend serves when saturated: `workers / mean service time`.
    pub fn capacity(&self) -> f64 {
        self.workers as f64 / self.service_time.mean().as_secs_f64()
    }

    /// Checks every field. Any other value works: the worker count and queue capacity have no
    /// upper bound, and a service time drawn beyond about 30 years (tokio's longest wait) is
    /// shortened to it.
    ///
    /// # Errors
    ///
    /// No workers, an invalid service-time distribution (see [`Distribution::validate`]), or
    /// an invalid discipline (see [`QueueDiscipline::validate`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::at_least("workers", self.workers, 1)?;
        self.service_time.validate("service_time")?;
        self.discipline.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_workers_is_a_config_error() {
        let err = SimConfig::default().with_workers(0).validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `workers`: must be at least 1 (got 0)"
        );
    }

    #[test]
    fn an_invalid_service_time_is_a_config_error() {
        let bad = Distribution::LogNormal {
            median: Duration::from_millis(1),
            sigma: f64::NAN,
        };
        let err = SimConfig::default()
            .with_service_time(bad)
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "service_time");
    }

    #[test]
    fn the_default_serves_about_700_requests_per_second() {
        let capacity = SimConfig::default().capacity();
        assert!((capacity - 706.0).abs() < 1.0, "{capacity}");
        assert_eq!(SimConfig::default().validate(), Ok(()));
    }
}
