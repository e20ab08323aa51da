use std::time::Duration;

use rampart_core::ConfigError;

use super::smoothed::check_interval;
use super::{CpuSampler, CpuSource, SmoothedCpu};

/// Samples `source` every `interval` in a tokio task, smoothing with `decay`; returns the
/// smoothed value a limiter reads.
///
/// The task runs on tokio's clock, so under `tokio::time::pause()` a simulation's CPU signal
/// is smoothed exactly as [`SystemCpu`](super::SystemCpu)'s is in production. It stops when
/// every clone of the returned value has been dropped. Call it inside a tokio runtime.
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
/// `interval` is zero, or `decay` is outside [0, 1).
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn spawn_sampler(
    source: impl CpuSource,
    interval: Duration,
    decay: f64,
) -> Result<SmoothedCpu, ConfigError> {
    check_interval(interval)?;
    let mut sampler = CpuSampler::new(source, decay)?;
    let smoothed = sampler.smoothed();
    let alive = smoothed.weak();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
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
