use std::time::Duration;

use rampart_core::ConfigError;

use super::smoothed::check_interval;
use super::{CpuSampler, CpuSource, SmoothedCpu};

/// The longest wait of the sampler task: about 30 years, the longest tokio's own timers wait
/// (`tokio::time::sleep` shortens longer durations to it).
const LONGEST_WAIT: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// Samples `source` every `interval` in a tokio task, smoothing with `decay`; returns the
/// smoothed value a limiter reads.
///
/// The task runs on tokio's clock, so under `tokio::time::pause()` a simulation's CPU signal
/// is smoothed exactly as [`SystemCpu`](crate::SystemCpu)'s is in production. It stops when
/// every clone of the returned value has been dropped (noticed at its next sample).
///
/// Any positive `interval` works: one longer than about 30 years (up to `Duration::MAX`) is
/// shortened to that, as tokio's own timers shorten their waits, so the task never overflows
/// an instant; it simply takes no sample in the meantime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), rampart_core::ConfigError> {
/// use std::time::Duration;
/// use rampart_ratelimit::{CpuUsage, spawn_sampler};
///
/// // A backend at full load, sampled every 250 ms with decay 0.8: over 80 % after 2 s.
/// let cpu = spawn_sampler(|| 1.0, Duration::from_millis(250), 0.8)?;
/// tokio::time::sleep(Duration::from_millis(1_900)).await;
/// assert!(cpu.usage() < 0.8);
/// tokio::time::sleep(Duration::from_millis(200)).await;
/// assert!(cpu.usage() >= 0.8);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// `interval` is zero, or `decay` is outside [0, 1); field `runtime` outside a tokio runtime.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn spawn_sampler(
    source: impl CpuSource,
    interval: Duration,
    decay: f64,
) -> Result<SmoothedCpu, ConfigError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        ConfigError::new(
            "runtime",
            "the sampler task must be spawned inside a tokio runtime",
        )
    })?;
    check_interval(interval)?;
    spawn_sampler_on(&handle, CpuSampler::new(source, decay)?, interval)
}

/// Ticks `sampler` every `interval` (checked positive) in a task on the runtime of `handle`,
/// until every clone of its smoothed value has been dropped.
pub(crate) fn spawn_sampler_on<S: CpuSource>(
    handle: &tokio::runtime::Handle,
    mut sampler: CpuSampler<S>,
    interval: Duration,
) -> Result<SmoothedCpu, ConfigError> {
    check_interval(interval)?;
    let smoothed = sampler.smoothed();
    let alive = smoothed.weak();
    // Waits longer than tokio's timers allow are shortened to their limit, so that no instant
    // arithmetic can overflow: the first sample is then due in about 30 years.
    let period = interval.min(LONGEST_WAIT);
    handle.spawn(async move {
        let Some(first) = tokio::time::Instant::now().checked_add(period) else {
            // Unreachable for a monotonic clock that started this millennium; no sample could
            // ever be due, so there is nothing to do.
            return;
        };
        let mut ticks = tokio::time::interval_at(first, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if alive.strong_count() <= 1 {
                // Only the sampler's own handle is left.
                break;
            }
            sampler.tick();
        }
    });
    Ok(smoothed)
}
