//! [`RuntimeBusy`]: how busy a tokio runtime's worker threads are, as a [`CpuSource`].
//!
//! A server's CPU allowance is not always what limits it: a runtime of one worker thread on a
//! host of two CPUs (or in a pod allowed two) saturates at half the allowance, and its
//! requests queue while the CPU reads 50 %. The share of time the runtime's workers are busy
//! (tokio's `worker_total_busy_duration`, summed over the workers, over their time) reads
//! that saturation directly; [`SystemCpu::with_runtime`](crate::SystemCpu::with_runtime)
//! reads the higher of the two.

use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeMetrics};

use super::{CpuError, CpuSource};

/// The share of time a tokio runtime's workers were busy since the previous sample.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use rampart_ratelimit::{CpuSource, RuntimeBusy};
///
/// let mut busy = RuntimeBusy::new(&tokio::runtime::Handle::current());
/// assert_eq!(busy.workers(), 1);
/// let share = busy.sample().expect("a runtime's metrics are always readable");
/// assert!((0.0..=1.0).contains(&share));
/// # }
/// ```
#[derive(Debug)]
pub struct RuntimeBusy {
    metrics: RuntimeMetrics,
    /// The workers' total busy time, and when it was read.
    since: (Duration, Instant),
}

impl RuntimeBusy {
    /// The workers of the runtime of `handle`, from now.
    pub fn new(handle: &Handle) -> Self {
        let metrics = handle.metrics();
        let since = (total_busy(&metrics), Instant::now());
        Self { metrics, since }
    }

    /// How many worker threads the runtime has.
    pub fn workers(&self) -> usize {
        self.metrics.num_workers()
    }
}

impl CpuSource for RuntimeBusy {
    fn sample(&mut self) -> Result<f64, CpuError> {
        let (busy, now) = (total_busy(&self.metrics), Instant::now());
        let share = busy_share(
            busy.saturating_sub(self.since.0),
            now.saturating_duration_since(self.since.1),
            self.workers(),
        );
        self.since = (busy, now);
        Ok(share)
    }
}

/// The busy time of every worker of a runtime, summed.
pub(crate) fn total_busy(metrics: &RuntimeMetrics) -> Duration {
    (0..metrics.num_workers())
        .map(|worker| metrics.worker_total_busy_duration(worker))
        .fold(Duration::ZERO, Duration::saturating_add)
}

/// `busy` over `workers × elapsed`, in [0, 1] (0 for an empty window or no worker).
pub(crate) fn busy_share(busy: Duration, elapsed: Duration, workers: usize) -> f64 {
    let capacity = elapsed.as_nanos() as f64 * workers as f64;
    if capacity > 0.0 {
        (busy.as_nanos() as f64 / capacity).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_share_is_busy_time_over_the_workers_time() {
        let ms = Duration::from_millis;
        assert_eq!(busy_share(ms(50), ms(100), 1), 0.5);
        assert_eq!(busy_share(ms(150), ms(100), 2), 0.75);
        assert_eq!(busy_share(ms(130), ms(100), 1), 1.0, "clamped");
        assert_eq!(
            busy_share(ms(10), Duration::ZERO, 4),
            0.0,
            "an empty window"
        );
        assert_eq!(busy_share(ms(10), ms(100), 0), 0.0, "no workers");
    }
}
