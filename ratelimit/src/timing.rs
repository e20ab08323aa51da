//! [`Timing`]: which admitted requests the limiter times. Every completion is counted; where
//! the clock has a cheap recent time, response times are measured on a sample.
//!
//! The limiter places its events in buckets of 100 ms, for which the clock's recent time (on
//! [`SystemClock`](rampart_core::SystemClock) the kernel's coarse clock, a few nanoseconds)
//! is fine enough; only a response time needs the precise `now` (the TSC), at both ends,
//! and those two reads were most of the layer's cost. So when the clock's recent time ticks
//! at least ten times within a bucket, a request is placed at its recent time, and timed
//! (its precise start and end read besides) when it is the first to arrive in a tick of that
//! clock, or, after that, one time in [`ONE_IN`] at random. A bucket of steady traffic
//! then holds a timed request for each tick (25 in a 100 ms bucket on a 4 ms tick) and a
//! sixteenth of the rest: at low rates every request is timed, at high rates hundreds per
//! bucket are. The bucket's mean response time is the mean of the timed ones, drawn at
//! random from all of them; its passes count every completion.
//!
//! On a clock without a recent time of its own ([`ManualClock`](rampart_core::ManualClock),
//! [`TokioClock`](rampart_core::TokioClock)), or one too coarse for the window's buckets,
//! every request reads `now` once at each end and is timed, as an instant given to
//! `acquire_at` always is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::{Clock, saturating_nanos};

/// One request in this many is timed at random, beyond the first of each clock tick.
pub(crate) const ONE_IN: u32 = 16;

/// How a limiter reads the time of its requests (see the module docs).
#[derive(Debug)]
pub(crate) struct Timing {
    /// Whether requests are placed at the clock's recent time and timed on a sample; if not,
    /// each reads `now` and is timed.
    sampled: bool,
    /// The recent time's resolution, in nanoseconds.
    tick_nanos: u64,
    /// The recent instant (ns) from which the next request to arrive is timed whatever the
    /// draw: written once per tick at most, by the request it times.
    due: AtomicU64,
}

/// A request's arrival: the instant it is placed at, and the precise instant its response
/// time runs from if it is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// Where its admission and completion are placed in the window, and what the decision
    /// reads.
    pub(crate) at: Duration,
    /// `Some` for a timed request: its precise start.
    pub(crate) timed_from: Option<Duration>,
}

impl Arrival {
    /// An arrival at `now`, given by a caller that read the clock's `now`: timed.
    pub(crate) fn given(now: Duration) -> Self {
        Self {
            at: now,
            timed_from: Some(now),
        }
    }

    /// The precise instant of the arrival: its start if it is timed; otherwise `clock`'s
    /// `now`, read here. Reading it does not time the request: the sample stays a draw, not
    /// weighted towards the requests that asked (those with a deadline).
    pub(crate) fn precise<C: Clock>(&self, clock: &C) -> Duration {
        self.timed_from.unwrap_or_else(|| clock.now())
    }
}

impl Timing {
    /// The timing of a window of `bucket` buckets on `clock`.
    pub(crate) fn new<C: Clock>(clock: &C, bucket: Duration) -> Self {
        let tick = clock.recent_resolution();
        let sampled = !tick.is_zero() && tick.saturating_mul(10) <= bucket;
        Self {
            sampled,
            tick_nanos: saturating_nanos(tick),
            due: AtomicU64::new(0),
        }
    }

    /// The instant to place an event at now, outside any request: the recent time when
    /// sampling, `now` otherwise.
    pub(crate) fn instant<C: Clock>(&self, clock: &C) -> Duration {
        if self.sampled {
            clock.recent()
        } else {
            clock.now()
        }
    }

    /// The arrival of a request now: one read of the recent time, and one of `now` if the
    /// request is timed; one read of `now` when not sampling.
    #[inline]
    pub(crate) fn arrival<C: Clock>(&self, clock: &C) -> Arrival {
        if !self.sampled {
            return Arrival::given(clock.now());
        }
        let at = clock.recent();
        Arrival {
            at,
            timed_from: self.draw(at).then(|| clock.now()),
        }
    }

    /// Whether the request arriving at recent instant `at` is timed.
    #[inline]
    fn draw(&self, at: Duration) -> bool {
        let nanos = saturating_nanos(at);
        if nanos >= self.due.load(Ordering::Relaxed) {
            // The first of its tick (several threads may each take it: a few more samples).
            self.due
                .store(nanos.saturating_add(self.tick_nanos), Ordering::Relaxed);
            return true;
        }
        fastrand::u32(..ONE_IN) == 0
    }

    /// The completion now of a request timed from `timed_from` (`None`: not timed): the
    /// instant to place it at, and its response time if it was timed.
    #[inline]
    pub(crate) fn completion<C: Clock>(
        &self,
        clock: &C,
        timed_from: Option<Duration>,
    ) -> (Duration, Option<Duration>) {
        match timed_from {
            Some(start) => {
                let end = clock.now();
                let at = if self.sampled { clock.recent() } else { end };
                (at, Some(end.saturating_sub(start)))
            }
            // Only a sampling limiter hands out permits that are not timed.
            None => (clock.recent(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use rampart_core::ManualClock;

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const BUCKET: Duration = Duration::from_millis(100);

    /// A clock at 7 ms on a 4 ms tick: its recent time reads 4 ms, and which reading placed
    /// an event shows in its value.
    fn ticking() -> ManualClock {
        ManualClock::starting_at(7 * MS).with_recent_resolution(4 * MS)
    }

    #[test]
    fn without_a_recent_time_of_its_own_every_request_reads_now_and_is_timed() {
        let clock = ManualClock::new();
        clock.advance(7 * MS);
        let timing = Timing::new(&clock, BUCKET);
        let arrival = timing.arrival(&clock);
        assert_eq!(arrival, Arrival::given(7 * MS));
        clock.advance(3 * MS);
        assert_eq!(
            timing.completion(&clock, arrival.timed_from),
            (10 * MS, Some(3 * MS))
        );
    }

    #[test]
    fn a_tick_too_coarse_for_the_buckets_times_every_request_on_now() {
        let clock = ticking();
        let timing = Timing::new(&clock, 39 * MS);
        for _ in 0..100 {
            assert_eq!(timing.arrival(&clock), Arrival::given(clock.now()));
        }
    }

    #[test]
    fn the_first_request_of_each_tick_is_timed_and_placed_at_the_recent_time() {
        let clock = ticking();
        let timing = Timing::new(&clock, BUCKET);
        for tick in 0..50 {
            let arrival = timing.arrival(&clock);
            assert_eq!(arrival.at, clock.recent(), "tick {tick}");
            assert_eq!(arrival.timed_from, Some(clock.now()), "tick {tick}");
            clock.advance(4 * MS);
        }
    }

    #[test]
    fn within_a_tick_one_request_in_sixteen_is_timed() {
        let clock = ticking();
        let timing = Timing::new(&clock, BUCKET);
        assert!(
            timing.arrival(&clock).timed_from.is_some(),
            "the tick's first"
        );
        let (requests, mut timed) = (160_000, 0);
        for _ in 0..requests {
            let arrival = timing.arrival(&clock);
            assert_eq!(arrival.at, clock.recent());
            if let Some(start) = arrival.timed_from {
                assert_eq!(start, clock.now());
                timed += 1;
            }
        }
        // 10 000 expected, a standard deviation of 97: eight of them either side.
        assert!((9_225..=10_775).contains(&timed), "{timed}");
    }

    #[test]
    fn a_completion_reads_the_recent_time_and_only_a_timed_one_reads_now() {
        let clock = ticking();
        let timing = Timing::new(&clock, BUCKET);
        let start = clock.now();
        clock.advance(30 * MS);
        assert_eq!(
            timing.completion(&clock, None),
            (clock.recent(), None),
            "not timed"
        );
        assert_eq!(
            timing.completion(&clock, Some(start)),
            (clock.recent(), Some(30 * MS))
        );
    }

    #[test]
    fn the_precise_instant_of_an_arrival_is_its_start_or_a_reading_that_leaves_it_untimed() {
        let clock = ticking();
        let untimed = Arrival {
            at: clock.recent(),
            timed_from: None,
        };
        assert_eq!(untimed.precise(&clock), clock.now());
        assert_eq!(untimed.timed_from, None);
        let start = clock.now();
        let timed = Arrival::given(start);
        clock.advance(MS);
        assert_eq!(timed.precise(&clock), start, "its start, not a reading");
    }
}
