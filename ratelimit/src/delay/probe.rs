//! [`DelayProbe`]: a heartbeat task that measures how late the tokio runtime runs it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rampart_core::saturating_nanos;
use rampart_core::{Clock, ConfigError, SystemClock, check};

use super::SchedulingDelay;
use crate::cpu::runtime::{busy_share, total_busy};

/// The shortest heartbeat interval: tokio's timer fires on whole milliseconds.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The longest: a slower heartbeat would notice a stuck runtime too late to matter.
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// The default busy floor: below it, a late heartbeat is the host's doing, not a queue's.
const BUSY_FLOOR: f64 = 0.8;
/// How often the heartbeat measures how busy the runtime's workers are.
const BUSY_WINDOW: Duration = Duration::from_millis(100);

/// What the heartbeat publishes and readers read.
#[derive(Debug, Default)]
struct Beat {
    /// One more than the instant (nanoseconds of the clock) the heartbeat is due to run next;
    /// 0 before the first.
    due: AtomicU64,
    /// How late the heartbeat ran the last time, in nanoseconds.
    measured: AtomicU64,
    /// The share of the last measured window its workers were busy, as `f64` bits.
    busy: AtomicU64,
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
/// A heartbeat is also late when the host, not the runtime, is busy: another process or a
/// noisy neighbour preempts the worker threads, and the heartbeat runs late though no queue of
/// the server's own holds it back. So the probe also measures, every 100 ms, the share of time
/// the runtime's workers were busy (tokio's `worker_total_busy_duration`), and reads zero delay
/// while it is under the busy floor (80 % by default): a runtime with a queue in front of its
/// handlers is a busy one.
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
/// // (A busy floor of 0: this idle test runtime's delays count too.)
/// let probe = DelayProbe::spawn(clock.clone(), Duration::from_millis(5))?.with_busy_floor(0.0);
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
    busy_floor: f64,
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
        check::duration_in("interval", interval, MIN_INTERVAL..=MAX_INTERVAL)?;
        let beat = Arc::new(Beat::default());
        let armed = arm(&beat, &clock, interval);
        let busy = Busy::new(handle.metrics(), saturating_nanos(clock.now()));
        handle.spawn(heartbeat(
            Arc::downgrade(&beat),
            clock,
            interval,
            armed,
            busy,
        ));
        Ok(Self {
            beat,
            interval,
            busy_floor: BUSY_FLOOR,
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

    /// The share of time the runtime's workers were busy over the last measured window
    /// (100 ms), in [0, 1].
    pub fn busy(&self) -> f64 {
        f64::from_bits(self.beat.busy.load(Ordering::Relaxed))
    }

    /// The same probe, reading a delay only while its runtime is at least `floor` busy (0.8 by
    /// default; 0 reads every delay, whatever its cause). A floor outside [0, 1] is clamped,
    /// NaN keeps the default.
    #[must_use]
    pub fn with_busy_floor(self, floor: f64) -> Self {
        Self {
            busy_floor: if floor.is_nan() {
                BUSY_FLOOR
            } else {
                floor.clamp(0.0, 1.0)
            },
            ..self
        }
    }
}

impl<C: Send + Sync + 'static> SchedulingDelay for DelayProbe<C> {
    #[inline]
    fn delay(&self, now: Duration) -> Duration {
        if self.busy_floor > 0.0 && self.busy() < self.busy_floor {
            return Duration::ZERO;
        }
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
            .field("busy", &self.busy())
            .field("busy_floor", &self.busy_floor)
            .finish_non_exhaustive()
    }
}

/// Publishes the next due instant (`interval` from now) and returns it.
fn arm<C: Clock>(beat: &Beat, clock: &C, interval: Duration) -> u64 {
    let due = saturating_nanos(clock.now()).saturating_add(saturating_nanos(interval));
    beat.due.store(due.saturating_add(1), Ordering::Relaxed);
    due
}

async fn heartbeat<C: Clock>(
    beat: Weak<Beat>,
    clock: C,
    interval: Duration,
    mut due: u64,
    mut busy: Busy,
) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(beat) = beat.upgrade() else {
            return;
        };
        let now = saturating_nanos(clock.now());
        beat.measured
            .store(now.saturating_sub(due), Ordering::Relaxed);
        if let Some(share) = busy.measure(now) {
            beat.busy.store(share.to_bits(), Ordering::Relaxed);
        }
        due = arm(&beat, &clock, interval);
    }
}

/// Measures the share of time a runtime's workers are busy, window by window.
struct Busy {
    metrics: tokio::runtime::RuntimeMetrics,
    /// The workers' total busy time and the instant (nanoseconds of the probe's clock) at the
    /// start of the current window.
    since: (Duration, u64),
}

impl Busy {
    fn new(metrics: tokio::runtime::RuntimeMetrics, now: u64) -> Self {
        let since = (total_busy(&metrics), now);
        Self { metrics, since }
    }

    /// The busy share of the window ending `now`, once it is at least [`BUSY_WINDOW`] long.
    fn measure(&mut self, now: u64) -> Option<f64> {
        let elapsed = now.saturating_sub(self.since.1);
        if elapsed < saturating_nanos(BUSY_WINDOW) {
            return None;
        }
        let busy = total_busy(&self.metrics);
        let share = busy_share(
            busy.saturating_sub(self.since.0),
            Duration::from_nanos(elapsed),
            self.metrics.num_workers(),
        );
        self.since = (busy, now);
        Some(share)
    }
}
