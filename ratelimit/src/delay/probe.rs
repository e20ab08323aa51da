//! [`DelayProbe`]: a heartbeat task that measures how late the tokio runtime runs it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rampart_core::clock::saturating_nanos;
use rampart_core::{Clock, ConfigError, SystemClock};

use super::SchedulingDelay;

/// The shortest heartbeat interval: tokio's timer fires on whole milliseconds.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The longest: a slower heartbeat would notice a stuck runtime too late to matter.
const MAX_INTERVAL: Duration = Duration::from_secs(1);

/// What the heartbeat publishes and readers read.
#[derive(Debug, Default)]
struct Beat {
    /// One more than the instant (nanoseconds of the clock) the heartbeat is due to run next;
    /// 0 before the first.
    due: AtomicU64,
    /// How late the heartbeat ran the last time, in nanoseconds.
    measured: AtomicU64,
}

/// The scheduling delay of the tokio runtime it runs on, measured by a heartbeat task.
///
/// Every `interval` the task asks tokio's timer to wake it and notes how late it runs: the
/// time a request that becomes ready now would wait for a worker (the timer and the sockets are
/// polled at the same points of a worker's loop, and both wake tasks onto the same queues).
/// Reading it ([`SchedulingDelay::delay`]) is two atomic loads: while the heartbeat is overdue
/// the delay is the time since it was due, so a stuck runtime shows at once; otherwise it is
/// the lateness the heartbeat measured last.
///
/// The task costs one timer wake per interval. It stops when every clone of the probe has been
/// dropped.
///
/// # Clock
///
/// Instants passed to `delay` must come from the probe's clock (the limiter's: build both from
/// one clock, or from [`SystemClock`]s, which share one origin).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), rampart_core::ConfigError> {
/// use std::time::Duration;
/// use rampart_core::{Clock, TokioClock};
/// use rampart_ratelimit::{DelayProbe, SchedulingDelay};
///
/// let clock = TokioClock::new();
/// let probe = DelayProbe::spawn(clock.clone(), Duration::from_millis(5))?;
/// tokio::time::sleep(Duration::from_millis(20)).await;
/// assert!(probe.delay(clock.now()) < Duration::from_millis(2), "an idle runtime is on time");
///
/// // Had a handler blocked the only worker for 30 ms, the heartbeat would be overdue by then:
/// let later = clock.now() + Duration::from_millis(30);
/// assert!(probe.delay(later) >= Duration::from_millis(25));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DelayProbe<C = SystemClock> {
    beat: Arc<Beat>,
    interval: Duration,
    _clock: std::marker::PhantomData<fn() -> C>,
}

impl<C: Clock + Clone + Send + Sync + 'static> DelayProbe<C> {
    /// Starts the heartbeat on the current tokio runtime, beating every `interval`.
    ///
    /// # Errors
    ///
    /// Field `interval` when it is under 1 ms or over 1 s; field `runtime` when called outside
    /// a tokio runtime.
    pub fn spawn(clock: C, interval: Duration) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::new(
                "runtime",
                "the delay probe must be started inside a tokio runtime",
            )
        })?;
        Self::spawn_on(&runtime, clock, interval)
    }

    /// Starts the heartbeat on the runtime of `handle`, beating every `interval`.
    ///
    /// # Errors
    ///
    /// Field `interval` when it is under 1 ms or over 1 s.
    pub fn spawn_on(
        handle: &tokio::runtime::Handle,
        clock: C,
        interval: Duration,
    ) -> Result<Self, ConfigError> {
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(
                ConfigError::new("interval", "must be from 1 ms to 1 s").with_value(interval)
            );
        }
        let beat = Arc::new(Beat::default());
        let armed = arm(&beat, &clock, interval);
        handle.spawn(heartbeat(Arc::downgrade(&beat), clock, interval, armed));
        Ok(Self {
            beat,
            interval,
            _clock: std::marker::PhantomData,
        })
    }
}

impl<C> DelayProbe<C> {
    /// How often the heartbeat beats.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How late the heartbeat ran the last time it ran.
    pub fn last_measured(&self) -> Duration {
        Duration::from_nanos(self.beat.measured.load(Ordering::Relaxed))
    }
}

impl<C: Send + Sync + 'static> SchedulingDelay for DelayProbe<C> {
    #[inline]
    fn delay(&self, now: Duration) -> Duration {
        let due = self.beat.due.load(Ordering::Relaxed);
        let now = saturating_nanos(now);
        if due != 0 && now >= due - 1 {
            Duration::from_nanos(now - (due - 1))
        } else {
            self.last_measured()
        }
    }
}

impl<C> fmt::Debug for DelayProbe<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayProbe")
            .field("interval", &self.interval)
            .field("last_measured", &self.last_measured())
            .finish_non_exhaustive()
    }
}

/// Publishes the next due instant (`interval` from now) and returns it.
fn arm<C: Clock>(beat: &Beat, clock: &C, interval: Duration) -> u64 {
    let due = saturating_nanos(clock.now()).saturating_add(saturating_nanos(interval));
    beat.due.store(due.saturating_add(1), Ordering::Relaxed);
    due
}

async fn heartbeat<C: Clock>(beat: Weak<Beat>, clock: C, interval: Duration, mut due: u64) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(beat) = beat.upgrade() else {
            return;
        };
        let now = saturating_nanos(clock.now());
        beat.measured
            .store(now.saturating_sub(due), Ordering::Relaxed);
        due = arm(&beat, &clock, interval);
    }
}
