use std::sync::OnceLock;
use std::time::Duration;

use super::{Clock, SystemClock};

/// How many kernel ticks a bucket must span at least for [`BucketClock::for_buckets`] to read
/// the coarse clock: a reading then lags by under a tenth of a bucket.
const TICKS_PER_BUCKET: u32 = 10;

/// How many times the probe reads the monotonic clock between two of `SystemClock`'s to place
/// the coarse clock on its timeline.
const ORIGIN_TRIES: usize = 16;

/// The operating system's coarse monotonic clock, placed on [`SystemClock`]'s timeline.
#[derive(Debug)]
struct Coarse {
    /// The interval between the clock's updates (the kernel's timer tick).
    tick: Duration,
    /// `SystemClock`'s origin on the coarse clock's timeline, in nanoseconds (negative when
    /// the origin precedes the coarse clock's zero).
    origin: i64,
}

/// Probed once per process: `None` where no coarse clock exists or it cannot be read.
static COARSE: OnceLock<Option<Coarse>> = OnceLock::new();

#[cfg(any(target_os = "linux", target_os = "android"))]
mod kernel {
    use rustix::time::{ClockId, DynamicClockId, Timespec};

    /// A reading in nanoseconds: the time since boot, far below `i64::MAX` (292 years), and
    /// saturated anyway.
    #[inline]
    // `tv_nsec` is an `i32` on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    fn nanos(time: Timespec) -> i64 {
        time.tv_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(time.tv_nsec))
    }

    /// One reading of `CLOCK_MONOTONIC_COARSE` in nanoseconds. Only called once
    /// [`probe`] has read the same clock without error, so it cannot fail.
    #[inline]
    pub(super) fn coarse_nanos() -> i64 {
        nanos(rustix::time::clock_gettime(ClockId::MonotonicCoarse))
    }

    /// One reading of `CLOCK_MONOTONIC` (the timeline the coarse clock follows) in
    /// nanoseconds, if the kernel gives one.
    pub(super) fn monotonic_nanos() -> Option<i64> {
        rustix::time::clock_gettime_dynamic(DynamicClockId::Known(ClockId::Monotonic))
            .ok()
            .map(nanos)
    }

    /// The coarse clock's tick, if the kernel has the clock (Linux 2.6.32 and later) and
    /// reads it without error.
    pub(super) fn probe() -> Option<std::time::Duration> {
        rustix::time::clock_gettime_dynamic(DynamicClockId::Known(ClockId::MonotonicCoarse))
            .ok()?;
        let tick = nanos(rustix::time::clock_getres(ClockId::MonotonicCoarse));
        u64::try_from(tick)
            .ok()
            .filter(|&tick| tick > 0)
            .map(std::time::Duration::from_nanos)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod kernel {
    pub(super) fn coarse_nanos() -> i64 {
        0
    }

    pub(super) fn monotonic_nanos() -> Option<i64> {
        None
    }

    pub(super) fn probe() -> Option<std::time::Duration> {
        None
    }
}

fn probe() -> Option<Coarse> {
    let tick = kernel::probe()?;
    // `SystemClock` is calibrated against the monotonic clock: find its origin there, from a
    // monotonic reading between two of its own, so that a coarse reading (the monotonic time
    // of the latest tick) is never ahead of `SystemClock`'s. Of a few tries, the one whose two
    // readings are closest, in case the thread was preempted between them.
    let system = SystemClock::new();
    let mut best: Option<(Duration, i64)> = None;
    for _ in 0..ORIGIN_TRIES {
        let before = system.now();
        let monotonic = kernel::monotonic_nanos()?;
        let after = system.now();
        let spread = after.saturating_sub(before);
        let midpoint = i64::try_from((before + spread / 2).as_nanos()).ok()?;
        let origin = monotonic.saturating_sub(midpoint);
        if best.is_none_or(|(closest, _)| spread < closest) {
            best = Some((spread, origin));
        }
    }
    best.map(|(_, origin)| Coarse { tick, origin })
}

fn coarse() -> Option<&'static Coarse> {
    COARSE.get_or_init(probe).as_ref()
}

/// A clock for what only needs to know which bucket of a rolling window an instant falls in:
/// the operating system's coarse monotonic clock, read in a few nanoseconds without a
/// background thread. The breaker's default.
///
/// On Linux it reads `CLOCK_MONOTONIC_COARSE` (through the kernel's vDSO, with the
/// [`rustix`](https://docs.rs/rustix) crate): the monotonic time of the kernel's latest timer
/// tick, so a reading lags the true time by about one tick (1–10 ms, by the kernel's `HZ`;
/// [`resolution`](Self::resolution) says which), more while the kernel is late with a tick,
/// as on a busy virtual machine. It needs no thread, unlike [`CoarseClock`], and no
/// time-stamp counter read, unlike [`SystemClock`]: about 5 ns against 15–20 ns for the TSC
/// on our 2-vCPU benchmark machine (`benches/benches/window.rs`, group `clock`).
///
/// [`for_buckets`](Self::for_buckets) reads the coarse clock only where a bucket spans at least
/// ten ticks (a reading then lags by under a tenth of a bucket), and [`SystemClock`]
/// otherwise; so does every `BucketClock` where the coarse clock does not exist (other
/// operating systems) or cannot be read. Either way its readings never decrease.
///
/// # Not for latencies
///
/// Two readings a few milliseconds apart may differ by a whole tick or by nothing: measure
/// response times with [`SystemClock`].
///
/// # Origin
///
/// Its instants are placed on [`SystemClock`]'s timeline when the process first reads it: at
/// that moment a reading is never ahead of `SystemClock`'s, and lags it by about a tick. The
/// two clocks then drift
/// apart by the time-stamp counter's calibration error (parts per million: a millisecond in
/// a quarter of an hour at 1 ppm), so a component reads all its instants from one of them.
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{BucketClock, Clock};
///
/// // A window of 100 ms buckets: the coarse clock if its tick is 10 ms or less.
/// let clock = BucketClock::for_buckets(Duration::from_millis(100));
/// assert!(clock.resolution() <= Duration::from_millis(10));
/// let earlier = clock.now();
/// assert!(clock.now() >= earlier);
///
/// // Buckets of 1 µs are finer than any kernel tick: the precise clock.
/// let fine = BucketClock::for_buckets(Duration::from_micros(1));
/// assert!(!fine.is_coarse());
/// assert_eq!(fine.resolution(), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BucketClock {
    /// The coarse clock, or `None` to read `SystemClock`.
    coarse: Option<&'static Coarse>,
    precise: SystemClock,
}

impl BucketClock {
    /// The coarse clock, or [`SystemClock`] where it does not exist. The first call in a
    /// process probes the coarse clock (and calibrates `SystemClock`).
    pub fn new() -> Self {
        Self {
            coarse: coarse(),
            precise: SystemClock::new(),
        }
    }

    /// The coarse clock if `bucket` spans at least ten of its ticks, [`SystemClock`]
    /// otherwise: the clock for a rolling window of buckets that wide.
    pub fn for_buckets(bucket: Duration) -> Self {
        Self {
            coarse: coarse().filter(|coarse| coarse.tick * TICKS_PER_BUCKET <= bucket),
            precise: SystemClock::new(),
        }
    }

    /// The precise clock: reads [`SystemClock`].
    pub fn precise() -> Self {
        Self {
            coarse: None,
            precise: SystemClock::new(),
        }
    }

    /// Whether this clock reads the coarse clock (rather than [`SystemClock`]).
    pub fn is_coarse(&self) -> bool {
        self.coarse.is_some()
    }

    /// The interval between the readings' updates: the kernel's tick for the coarse clock (a
    /// reading lags the true time by about as much), zero for the precise one.
    pub fn resolution(&self) -> Duration {
        self.coarse.map_or(Duration::ZERO, |coarse| coarse.tick)
    }
}

impl Default for BucketClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for BucketClock {
    #[inline]
    fn now(&self) -> Duration {
        match self.coarse {
            Some(coarse) => {
                // Non-negative once the probe has run (the coarse clock lags the monotonic
                // one by less than a tick, and `SystemClock`'s origin precedes the probe by
                // more); clamped at zero anyway.
                let nanos = kernel::coarse_nanos().saturating_sub(coarse.origin);
                Duration::from_nanos(nanos.max(0) as u64)
            }
            None => self.precise.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_never_decrease() {
        for clock in [BucketClock::new(), BucketClock::precise()] {
            let mut previous = clock.now();
            for _ in 0..10_000 {
                let now = clock.now();
                assert!(now >= previous, "{now:?} < {previous:?}");
                previous = now;
            }
        }
    }

    #[test]
    fn buckets_of_fewer_than_ten_ticks_read_the_precise_clock() {
        let any = BucketClock::new();
        if !any.is_coarse() {
            // No coarse clock here: every bucket width reads the precise clock.
            assert!(!BucketClock::for_buckets(Duration::from_secs(3600)).is_coarse());
            return;
        }
        let tick = any.resolution();
        assert!(tick > Duration::ZERO);
        assert!(BucketClock::for_buckets(tick * 10).is_coarse());
        let just_under = (tick * 10).saturating_sub(Duration::from_nanos(1));
        assert!(!BucketClock::for_buckets(just_under).is_coarse());
        assert_eq!(BucketClock::precise().resolution(), Duration::ZERO);
    }

    #[test]
    fn follows_the_system_clock_never_ahead_of_it() {
        // Each coarse reading is taken between two precise ones, so the inequalities hold
        // however the thread is preempted. The slack covers the calibration error (parts per
        // million over the test's milliseconds) and the origin's probe; the lag is bounded
        // loosely (a kernel tick is 1 to 10 ms, and a busy virtual machine delays ticks), to
        // catch an origin on the wrong timeline, not to time the kernel.
        let clock = BucketClock::new();
        let system = SystemClock::new();
        let slack = Duration::from_micros(50);
        let start = system.now();
        let first = clock.now();
        let mut moved = false;
        while system.now() < start + Duration::from_secs(10) && !moved {
            let before = system.now();
            let now = clock.now();
            let after = system.now();
            assert!(now <= after + slack, "{now:?} ahead of {after:?}");
            assert!(
                now + Duration::from_millis(250) >= before,
                "{now:?} far behind {before:?}"
            );
            moved = now > first;
            std::thread::yield_now();
        }
        assert!(moved, "the clock never moved");
    }
}
