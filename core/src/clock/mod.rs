//! [`Clock`], the time source every rampart component reads, its implementations, and
//! [`saturating_nanos`], the form instants take in atomics. The trait's documentation
//! compares the clocks.

mod bucket;
mod coarse;
mod manual;
mod system;
mod timing;
#[cfg(feature = "tokio")]
mod tokio;

use std::sync::Arc;
use std::time::Duration;

pub use self::bucket::BucketClock;
pub use self::coarse::CoarseClock;
pub use self::manual::ManualClock;
pub use self::system::SystemClock;
pub use self::timing::{Arrival, Finish, Timed, Timing};
#[cfg(feature = "tokio")]
pub use self::tokio::TokioClock;

/// A monotonic time source: the time elapsed since the clock's origin, the one question
/// every rampart component asks about time.
///
/// Instants are plain [`Duration`]s, so they are cheap to copy, compare and pass along: a layer
/// that reads its clock once when a request arrives hands that instant to every window and
/// algorithm it updates, instead of reading the clock again.
///
/// | clock | source | cost here | use it for |
/// | --- | --- | --- | --- |
/// | [`SystemClock`] (default) | `now`: the CPU's invariant TSC, calibrated against the OS monotonic clock (the OS clock where no such TSC exists); `recent`: the kernel's coarse clock | `now` ~10 ns, `recent` ~3 ns | everything in production |
/// | [`CoarseClock`] | a value a background thread refreshes every millisecond | ~1 ns | windows whose buckets are far wider than 1 ms, where a thread is welcome |
/// | [`ManualClock`] | a shared counter moved by hand | ~1 ns | deterministic unit tests |
/// | `TokioClock` (feature `tokio`) | `tokio::time::Instant`, so it follows `tokio::time::pause()` | ~25 ns | simulations under paused time |
///
/// # Two readings: `now` and `recent`
///
/// Some readings must be precise: a response time, which feeds the limiter and the balancer,
/// needs microseconds. Others only place an event in a bucket of a window (a breaker's 300 ms
/// buckets, a retry budget's second-long ones): a reading a few milliseconds old does as
/// well. [`now`](Self::now) is the first kind; [`recent`](Self::recent) the second, and
/// [`BucketClock`] reads a clock's recent time for buckets ten times its
/// [`recent_resolution`](Self::recent_resolution) or wider, its precise time otherwise. A
/// clock without a cheaper source answers `recent` with `now`.
///
/// # Cost in a layer
///
/// A read alone is not a read inside a layer. Alone (`benches/benches/window.rs`, group
/// `clock`) [`SystemClock::now`](Clock::now) takes 9–10 ns on our 2-vCPU benchmark machines,
/// its `recent` (`CLOCK_MONOTONIC_COARSE`, a vDSO call, no thread) 2.7–2.9 ns. Inside a
/// layer the difference depends on the processor: on one machine the time-stamp counter read
/// overlapped the work around it and the breaker's layer cost the same on either; on the
/// current one (a newer Xeon) it does not, and the layer, which reads its clock twice per
/// request, took 66 ns on the TSC against 38 ns on the coarse clock and 34 ns on a clock that
/// does not move (`benches/benches/breaker.rs`, rows `breaker_layer/*`). So the layers that
/// only place events in buckets read `recent` (the breaker, the ratio retry budget); the
/// limiter and the balancer place their requests at `recent` and read `now` besides for a
/// sample of them, whose response times they measure ([`Timing`]); hedging, whose
/// quantiles weigh every response time, reads `now`. [`CoarseClock`] saves 2–3 ns more per read, for a thread that wakes
/// 1 000 times a second: offered, not the default.
///
/// # Monotonicity
///
/// Instants from one clock (and its clones) never go backwards, with one deliberate exception:
/// [`ManualClock::set`] may move a test clock back, to check that consumers survive it. Every
/// consumer in rampart treats a later reading that is smaller than an earlier one as **zero
/// elapsed time** ([`Duration::saturating_sub`]), never as a panic or a reset.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now().saturating_sub(start), Duration::from_millis(250));
///
/// // Stepping back reads as no time passing, not as a panic.
/// let later = clock.now();
/// clock.set(Duration::ZERO);
/// assert_eq!(clock.now().saturating_sub(later), Duration::ZERO);
/// ```
///
/// # Implementing
///
/// Implementations must be cheap to call and safe to share between threads. Instants from
/// different clock *instances* are only comparable when the clock documents a shared origin
/// ([`SystemClock`] and [`CoarseClock`] share one per process; clones of [`ManualClock`] and
/// `TokioClock` share theirs).
pub trait Clock: Send + Sync + 'static {
    /// The time elapsed since this clock's origin.
    fn now(&self) -> Duration;

    /// A recent reading, at most [`recent_resolution`](Self::recent_resolution) old, for
    /// what only places events in buckets far wider than that (a breaker's window, a retry
    /// budget's): cheaper than [`now`](Self::now) where the clock has a cheaper coarse source.
    ///
    /// Readings never go backwards, but they come from a source of their own: a consumer
    /// takes every instant of one quantity (a window's, a response time's two ends) from
    /// `recent` or from `now`, never from both. By default it is `now`.
    #[inline]
    fn recent(&self) -> Duration {
        self.now()
    }

    /// How long [`recent`](Self::recent) may stand still while time passes: zero (the
    /// default) for a clock whose `recent` moves whenever time does, or only by hand (a test's
    /// clock, which a consumer then reads afresh at each event of the instant it stands at).
    #[inline]
    fn recent_resolution(&self) -> Duration {
        Duration::ZERO
    }
}

/// Whether a recent time that may stand still for `tick` is fine enough for instants of
/// `granularity` (a window's bucket, an average's time constant): when it ticks at least ten
/// times within it. [`BucketClock`] and [`Timing`] both ask.
#[inline]
pub(crate) fn recent_is_fine_for(tick: Duration, granularity: Duration) -> bool {
    tick.saturating_mul(10) <= granularity
}

/// A clock behind a pointer reads the clock it points to, in each of its readings.
macro_rules! forward_clock {
    ($($pointer:ident),*) => {$(
        impl<C: Clock + ?Sized> Clock for $pointer<C> {
            #[inline]
            fn now(&self) -> Duration {
                (**self).now()
            }

            #[inline]
            fn recent(&self) -> Duration {
                (**self).recent()
            }

            #[inline]
            fn recent_resolution(&self) -> Duration {
                (**self).recent_resolution()
            }
        }
    )*};
}

forward_clock!(Arc, Box);

/// Converts a duration to whole nanoseconds, saturating at `u64::MAX` (about 584 years): the
/// form instants and durations take in atomics.
///
/// A [`Clock`] reads as a [`Duration`], which does not fit an `AtomicU64`. Components that
/// keep an instant in one (the time a key was last used, when a cooldown started, the latest
/// reading of a clock driven by a simulation) convert it with this function, so that every
/// component saturates the same way rather than truncating `Duration::as_nanos`'s `u128`
/// differently. Differences of two converted instants saturate at zero
/// (`later.saturating_sub(earlier)`), as [`Duration::saturating_sub`] does.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use rampart_core::{Clock, ManualClock, saturating_nanos};
///
/// assert_eq!(saturating_nanos(Duration::from_micros(3)), 3_000);
/// assert_eq!(saturating_nanos(Duration::MAX), u64::MAX);
///
/// // An instant kept in an atomic, read back as a duration.
/// let clock = ManualClock::starting_at(Duration::from_secs(2));
/// let last_seen = AtomicU64::new(saturating_nanos(clock.now()));
/// clock.advance(Duration::from_millis(1_500));
/// let since = saturating_nanos(clock.now()).saturating_sub(last_seen.load(Ordering::Relaxed));
/// assert_eq!(Duration::from_nanos(since), Duration::from_millis(1_500));
/// ```
#[inline]
pub const fn saturating_nanos(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(duration.subsec_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_nanos_is_exact_in_range_and_saturates_beyond() {
        assert_eq!(
            saturating_nanos(Duration::from_nanos(1_234_567_891)),
            1_234_567_891
        );
        assert_eq!(saturating_nanos(Duration::MAX), u64::MAX);
        assert_eq!(
            saturating_nanos(Duration::from_secs(u64::MAX / 1_000_000_000 + 1)),
            u64::MAX
        );
    }

    #[test]
    fn shared_pointers_to_a_clock_read_the_clock() {
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let boxed: Box<dyn Clock> = Box::new(clock.clone());
        clock.advance(Duration::from_secs(3));
        assert_eq!(shared.now(), Duration::from_secs(3));
        assert_eq!(boxed.now(), Duration::from_secs(3));
        assert_eq!(shared.recent(), Duration::from_secs(3));
        let coarse: Box<dyn Clock> = Box::new(CoarseClock::new());
        assert_eq!(coarse.recent_resolution(), CoarseClock::resolution());
    }
}
