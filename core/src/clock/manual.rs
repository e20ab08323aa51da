use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Clock, saturating_nanos};

/// A clock that only moves when told to, for deterministic tests.
///
/// It starts at zero. Clones share the same time, so a test keeps one clone and hands the
/// others to the components under test:
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let handed_out = clock.clone();
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(handed_out.now(), Duration::from_secs(1));
/// ```
///
/// [`set`](Self::set) may move the clock backwards; rampart's components read that as zero
/// elapsed time.
///
/// Its [`recent`](Clock::recent) time is its time, unless it is given a recent resolution
/// ([`with_recent_resolution`](Self::with_recent_resolution)): then it lags as the kernel's
/// coarse clock does behind [`SystemClock`](super::SystemClock)'s precise one, for tests of
/// what reads each.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
    /// The recent time's resolution in nanoseconds (0: the recent time is the time).
    tick_nanos: u64,
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock at `start`.
    pub fn starting_at(start: Duration) -> Self {
        let clock = Self::new();
        clock.set(start);
        clock
    }

    /// Moves the clock (and all its clones) forward by `by`, saturating at about 584 years.
    pub fn advance(&self, by: Duration) {
        let by = saturating_nanos(by);
        // `fetch_update` never fails here: the closure always returns `Some`.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }

    /// This clock (sharing its time with its clones), whose recent time is its time rounded
    /// down to a multiple of `resolution`: the time of the last tick of a clock that ticks
    /// every `resolution`, as the kernel's coarse clock keeps it. A zero `resolution` makes
    /// the recent time the time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_core::{Clock, ManualClock};
    ///
    /// let ms = Duration::from_millis(1);
    /// let clock = ManualClock::new().with_recent_resolution(4 * ms);
    /// clock.advance(7 * ms);
    /// assert_eq!((clock.now(), clock.recent()), (7 * ms, 4 * ms));
    /// assert_eq!(clock.recent_resolution(), 4 * ms);
    /// ```
    #[must_use]
    pub fn with_recent_resolution(self, resolution: Duration) -> Self {
        Self {
            tick_nanos: saturating_nanos(resolution),
            ..self
        }
    }

    /// Sets the clock (and all its clones) to `to`, which may be earlier than now.
    pub fn set(&self, to: Duration) {
        self.nanos.store(saturating_nanos(to), Ordering::Release);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    #[inline]
    fn recent(&self) -> Duration {
        let nanos = self.nanos.load(Ordering::Acquire);
        Duration::from_nanos(match self.tick_nanos {
            0 => nanos,
            tick => nanos - nanos % tick,
        })
    }

    #[inline]
    fn recent_resolution(&self) -> Duration {
        Duration::from_nanos(self.tick_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_and_advances_by_exact_amounts() {
        let clock = ManualClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_millis(1500));
        clock.advance(Duration::from_nanos(7));
        assert_eq!(clock.now(), Duration::from_nanos(1_500_000_007));
    }

    #[test]
    fn clones_share_one_time() {
        let a = ManualClock::starting_at(Duration::from_secs(10));
        let b = a.clone();
        b.advance(Duration::from_secs(1));
        assert_eq!(a.now(), Duration::from_secs(11));
        a.set(Duration::from_secs(2));
        assert_eq!(b.now(), Duration::from_secs(2));
    }

    #[test]
    fn its_recent_time_is_its_time_unless_it_has_a_resolution() {
        let ms = Duration::from_millis(1);
        let plain = ManualClock::starting_at(7 * ms);
        assert_eq!(
            (plain.recent(), plain.recent_resolution()),
            (7 * ms, Duration::ZERO)
        );
        let ticking = plain.clone().with_recent_resolution(4 * ms);
        assert_eq!((ticking.now(), ticking.recent()), (7 * ms, 4 * ms));
        plain.advance(ms);
        assert_eq!(ticking.recent(), 8 * ms, "a clone: one time, read on ticks");
        plain.set(Duration::from_nanos(u64::MAX));
        assert!(ticking.recent() <= ticking.now());
    }

    #[test]
    fn advancing_past_the_representable_range_saturates() {
        let clock = ManualClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
    }
}
