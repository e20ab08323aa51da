use std::time::Duration;

use rampart_core::{ConfigError, check};

use crate::Distribution;

/// The most workers a [`SimRuntime`](crate::SimRuntime) simulates: far more threads than any
/// machine it stands for runs.
const MAX_WORKERS: usize = 1_024;
/// The most pieces a handler's work is cut into.
const MAX_SLICES: u32 = 1_000;
/// The longest a refusal may take: longer is no longer a cheap refusal.
const MAX_REFUSAL_COST: Duration = Duration::from_secs(1);
/// The heartbeat's interval bounds, as a real heartbeat on tokio's millisecond timer has them.
const MIN_HEARTBEAT: Duration = Duration::from_millis(1);
const MAX_HEARTBEAT: Duration = Duration::from_secs(1);

/// The shape of a [`SimRuntime`](crate::SimRuntime): an async runtime with `workers` threads
/// running a CPU-bound handler.
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `workers` | 1 | 1 to 1 024 |
/// | `cpus` | `None` (one per worker) | `workers` to 1 024 |
/// | `service_time` | 2 ms, fixed | a valid distribution |
/// | `slices` | 1 (never yields) | 1 to 1 000 |
/// | `refusal_cost` | 30 µs | at most 1 s |
/// | `heartbeat` | 5 ms | 1 ms to 1 s |
/// | `seed` | `None` (entropy) | |
///
/// The default is one worker whose handler burns 2 ms of CPU without yielding: 500 requests
/// per second of capacity.
///
/// ```
/// use std::time::Duration;
/// use rampart_fault::{Distribution, RuntimeConfig};
///
/// let config = RuntimeConfig::default()
///     .with_workers(2)
///     .with_service_time(Distribution::Fixed(Duration::from_millis(4)))
///     .with_slices(4);
/// assert_eq!(config.capacity(), 500.0); // requests per second
/// assert_eq!(config.validate(), Ok(()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Worker threads: tasks run on at most this many at once.
    pub workers: usize,
    /// The CPUs the CPU meter ([`utilization`](crate::SimRuntime::utilization)) divides busy
    /// worker time by: the host's, or the quota of the process's cgroup. `None` counts one per
    /// worker. A runtime with one worker on a two-CPU host reads at most 50 %, as a CPU gauge
    /// of the whole host does.
    pub cpus: Option<usize>,
    /// The CPU time one request's handler needs, drawn when the handler is called.
    pub service_time: Distribution,
    /// How many pieces the handler's work is cut into: after each piece but the last, the
    /// handler yields and its task goes to the back of the run queue. 1 is a handler that never
    /// yields; 4 one that yields three times.
    pub slices: u32,
    /// The worker time a request costs when the stack answers it without calling the handler
    /// (reading the request and writing a refusal, such as a 503).
    pub refusal_cost: Duration,
    /// How often the runtime's heartbeat task asks to run (see
    /// [`scheduling_delay`](crate::SimRuntime::scheduling_delay)).
    pub heartbeat: Duration,
    /// Seed of the service-time draws; `None` seeds from entropy.
    pub seed: Option<u64>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            cpus: None,
            service_time: Distribution::Fixed(Duration::from_millis(2)),
            slices: 1,
            refusal_cost: Duration::from_micros(30),
            heartbeat: Duration::from_millis(5),
            seed: None,
        }
    }
}

impl RuntimeConfig {
    /// This configuration with `workers` worker threads.
    #[must_use]
    pub fn with_workers(self, workers: usize) -> Self {
        Self { workers, ..self }
    }

    /// This configuration with a CPU meter counting `cpus` CPUs.
    #[must_use]
    pub fn with_cpus(self, cpus: usize) -> Self {
        Self {
            cpus: Some(cpus),
            ..self
        }
    }

    /// This configuration with the given handler CPU time.
    #[must_use]
    pub fn with_service_time(self, service_time: Distribution) -> Self {
        Self {
            service_time,
            ..self
        }
    }

    /// This configuration with the handler's work cut into `slices` pieces.
    #[must_use]
    pub fn with_slices(self, slices: u32) -> Self {
        Self { slices, ..self }
    }

    /// This configuration with the given refusal cost.
    #[must_use]
    pub fn with_refusal_cost(self, refusal_cost: Duration) -> Self {
        Self {
            refusal_cost,
            ..self
        }
    }

    /// This configuration with a heartbeat every `heartbeat`.
    #[must_use]
    pub fn with_heartbeat(self, heartbeat: Duration) -> Self {
        Self { heartbeat, ..self }
    }

    /// This configuration with a fixed seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seed: Some(seed),
            ..self
        }
    }

    /// Requests per second the runtime serves when saturated, refusing nothing:
    /// `workers / mean service time`.
    pub fn capacity(&self) -> f64 {
        self.workers as f64 / self.service_time.mean().as_secs_f64()
    }

    /// The CPUs the CPU meter counts.
    pub fn meter_cpus(&self) -> usize {
        self.cpus.unwrap_or(self.workers)
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// `workers` not in [1, 1 024]; `cpus` below `workers` or above 1 024; an invalid
    /// `service_time`; `slices` not in [1, 1 000]; `refusal_cost` over 1 s; `heartbeat` not
    /// in [1 ms, 1 s].
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::within("workers", self.workers, 1..=MAX_WORKERS)?;
        if let Some(cpus) = self.cpus {
            check::at_least("cpus", cpus, self.workers).map_err(|_| {
                ConfigError::new(
                    "cpus",
                    "must be at least `workers` (every worker runs at once)",
                )
                .with_value(cpus)
            })?;
            check::at_most("cpus", cpus, MAX_WORKERS)?;
        }
        self.service_time.validate("service_time")?;
        check::within("slices", self.slices, 1..=MAX_SLICES)?;
        if self.refusal_cost > MAX_REFUSAL_COST {
            return Err(ConfigError::new("refusal_cost", "must be at most 1 s")
                .with_value(self.refusal_cost));
        }
        check::duration_in("heartbeat", self.heartbeat, MIN_HEARTBEAT..=MAX_HEARTBEAT)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_one_worker_serving_500_requests_per_second() {
        let config = RuntimeConfig::default();
        assert_eq!(config.capacity(), 500.0);
        assert_eq!(config.meter_cpus(), 1);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = RuntimeConfig::default();
        let cases = [
            (base.clone().with_workers(0), "workers"),
            (base.clone().with_workers(1_000_000), "workers"),
            (base.clone().with_workers(2).with_cpus(1), "cpus"),
            (base.clone().with_cpus(usize::MAX), "cpus"),
            (
                base.clone().with_service_time(Distribution::LogNormal {
                    median: Duration::from_millis(2),
                    sigma: f64::NAN,
                }),
                "service_time",
            ),
            (base.clone().with_slices(0), "slices"),
            (base.clone().with_slices(u32::MAX), "slices"),
            (
                base.clone().with_refusal_cost(Duration::from_secs(5)),
                "refusal_cost",
            ),
            (base.clone().with_heartbeat(Duration::ZERO), "heartbeat"),
            (
                base.clone().with_heartbeat(Duration::from_secs(60)),
                "heartbeat",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }

    #[test]
    fn zero_workers_says_why() {
        let err = RuntimeConfig::default()
            .with_workers(0)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `workers`: must be at least 1 (got 0)"
        );
    }
}
