use std::time::Duration;

use super::Clock;

/// A clock read for events placed in buckets of one width: its [`recent`](Clock::recent)
/// time where that stands still for at most a tenth of a bucket, its precise time otherwise.
///
/// A breaker's or a retry budget's window only needs to know which bucket an event falls in,
/// so on [`SystemClock`](super::SystemClock) it reads the kernel's coarse clock (a few
/// nanoseconds) rather than the time-stamp counter (10–15 ns), as long as the kernel's tick
/// is a tenth of a bucket or less; with narrower buckets it reads the precise time. The choice
/// is made once, when it is built, so every reading comes from one source.
///
/// ```
/// use std::time::Duration;
/// use rampart_core::{BucketClock, Clock, ManualClock, SystemClock};
///
/// // A test's clock has no coarser reading: the bucket clock reads it as it is.
/// let manual = ManualClock::new();
/// let clock = BucketClock::new(manual.clone(), Duration::from_millis(100));
/// manual.advance(Duration::from_micros(7));
/// assert_eq!(clock.now(), Duration::from_micros(7));
///
/// // The system clock's recent time serves buckets of 300 ms.
/// let clock = BucketClock::new(SystemClock::new(), Duration::from_millis(300));
/// assert!(clock.recent_resolution() <= Duration::from_millis(30));
/// ```
#[derive(Debug, Clone)]
pub struct BucketClock<C> {
    clock: C,
    recent: bool,
    /// How long its readings may stand still: the clock's recent resolution when it reads
    /// the recent time, zero otherwise. Asked of the clock once, here, not at every read.
    resolution: Duration,
}

impl<C: Clock> BucketClock<C> {
    /// Reads `clock` for buckets of `bucket`.
    pub fn new(clock: C, bucket: Duration) -> Self {
        let tick = clock.recent_resolution();
        let recent = super::recent_is_fine_for(tick, bucket);
        let resolution = if recent { tick } else { Duration::ZERO };
        Self {
            clock,
            recent,
            resolution,
        }
    }
}

impl<C> BucketClock<C> {
    /// The clock it reads.
    pub fn inner(&self) -> &C {
        &self.clock
    }
}

impl<C: Clock> Clock for BucketClock<C> {
    #[inline]
    fn now(&self) -> Duration {
        if self.recent {
            self.clock.recent()
        } else {
            self.clock.now()
        }
    }

    #[inline]
    fn recent(&self) -> Duration {
        self.now()
    }

    #[inline]
    fn recent_resolution(&self) -> Duration {
        self.resolution
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CoarseClock, ManualClock};

    const MS: Duration = Duration::from_millis(1);

    /// At 7 ms on a 4 ms tick: its recent time reads 4 ms.
    fn ticking() -> ManualClock {
        ManualClock::starting_at(7 * MS).with_recent_resolution(4 * MS)
    }

    #[test]
    fn buckets_of_ten_ticks_or_more_read_the_recent_time() {
        let clock = BucketClock::new(ticking(), 40 * MS);
        assert_eq!(clock.now(), 4 * MS);
        assert_eq!(clock.recent_resolution(), 4 * MS);
    }

    #[test]
    fn narrower_buckets_read_the_precise_time() {
        let clock = BucketClock::new(ticking(), 39 * MS);
        assert_eq!(clock.now(), 7 * MS);
        assert_eq!(clock.recent(), 7 * MS);
        assert_eq!(clock.recent_resolution(), Duration::ZERO);
    }

    #[test]
    fn a_coarse_clock_keeps_its_resolution() {
        let clock = BucketClock::new(CoarseClock::new(), Duration::from_millis(100));
        assert_eq!(clock.recent_resolution(), CoarseClock::resolution());
    }
}
