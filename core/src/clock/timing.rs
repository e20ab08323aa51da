//! [`Timing`]: which requests a layer times, and when a request is placed in time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Clock, saturating_nanos};

/// Which requests a layer times. Every request is placed in time; where the clock has a
/// cheap recent time, response times are measured on a sample.
///
/// A layer that places its events in buckets (a limiter's window of 100 ms buckets) or weighs
/// them by their age (a balancer's averages, decaying over 600 ms) needs no finer instant
/// than the clock's recent time: on [`SystemClock`](crate::SystemClock) the kernel's coarse
/// clock, a few nanoseconds. Only a response time needs the precise `now` (the TSC) at both
/// ends, and those two reads are most of such a layer's cost. So when the clock's recent time
/// ticks at least ten times within the granularity the layer needs, a request is placed at
/// its recent time, and timed (its precise start and end read besides) when it is the first
/// to arrive in a tick of that clock, or, after that, one time in [`ONE_IN`](Timing::ONE_IN)
/// at random. A bucket of steady traffic then holds a timed request for each tick (25 in a
/// 100 ms bucket on a 4 ms tick) and a sixteenth of the rest: at low rates every request is
/// timed, at high rates hundreds per bucket are, drawn at random from all of them.
///
/// On a clock without a recent time of its own ([`ManualClock`](crate::ManualClock) unless
/// given one, `TokioClock`), or one too coarse for the granularity, every request reads `now`
/// once at each end and is timed.
///
/// ```
/// use std::time::Duration;
///
/// use rampart_core::{ManualClock, Timing};
///
/// let ms = Duration::from_millis(1);
/// let clock = ManualClock::new().with_recent_resolution(4 * ms);
/// clock.advance(7 * ms);
/// let timing = Timing::new(&clock, 100 * ms);
/// assert!(timing.is_sampled());
/// // The first request of the tick is timed: its precise start is read.
/// let arrival = timing.arrival(&clock);
/// assert_eq!((arrival.at, arrival.timed_from), (4 * ms, Some(7 * ms)));
/// clock.advance(30 * ms);
/// let finish = arrival.finish(&clock);
/// assert_eq!(finish.at, 36 * ms);
/// assert_eq!(finish.timed.map(|timed| timed.elapsed()), Some(30 * ms));
/// ```
#[derive(Debug)]
pub struct Timing {
    /// Whether requests are placed at the clock's recent time and timed on a sample; if not,
    /// each reads `now` and is timed.
    sampled: bool,
    /// The recent time's resolution, in nanoseconds.
    tick_nanos: u64,
    /// The recent instant (ns) from which the next request to arrive is timed whatever the
    /// draw: written once per tick at most, by the request it times.
    due: AtomicU64,
    /// With a seed ([`with_seed`](Self::with_seed)), the state of the draws: one sequence
    /// for all threads, so that a seeded simulation times the same requests on every run.
    seeded: Option<AtomicU64>,
}

/// A request's arrival: the instant it is placed at, and the precise instant its response
/// time runs from if it is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Where the request is placed (a window's bucket, an average's age), and what a decision
    /// made on its arrival reads: the clock's recent time when sampling, `now` otherwise.
    pub at: Duration,
    /// `Some` for a timed request: its precise start.
    pub timed_from: Option<Duration>,
    /// Whether `at` is a recent time: then so is the instant its end is placed at.
    sampled: bool,
}

/// A request's end, read by [`Arrival::finish`] or [`Timing::completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// Where the end is placed: on the source its arrival was placed on.
    pub at: Duration,
    /// `Some` for a timed request: its precise start and end.
    pub timed: Option<Timed>,
}

/// The precise start and end of a timed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// The clock's `now` when it arrived.
    pub start: Duration,
    /// The clock's `now` when it ended.
    pub end: Duration,
}

impl Timed {
    /// The response time: zero if the clock stepped back.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

impl Arrival {
    /// An arrival at `now`, given by a caller that read the clock's `now`: timed, and placed
    /// at `now`.
    #[inline]
    pub fn given(now: Duration) -> Self {
        Self {
            at: now,
            timed_from: Some(now),
            sampled: false,
        }
    }

    /// The precise instant of the arrival: its start if it is timed; otherwise `clock`'s
    /// `now`, read here. Reading it does not time the request: the sample stays a draw, not
    /// weighted towards the requests that asked (those with a deadline).
    pub fn precise<C: Clock>(&self, clock: &C) -> Duration {
        self.timed_from.unwrap_or_else(|| clock.now())
    }

    /// The request's end now, on `clock`: the recent time when it arrived at one (and, if it
    /// is timed, `now` besides), `now` otherwise.
    #[inline]
    pub fn finish<C: Clock>(&self, clock: &C) -> Finish {
        finish(clock, self.sampled, self.timed_from)
    }
}

impl Timing {
    /// One request in this many is timed at random, beyond the first of each clock tick.
    pub const ONE_IN: u32 = 16;

    /// The timing of requests on `clock` for a layer that needs instants no finer than
    /// `granularity` (a window's bucket; an average's time constant): sampled when the clock's
    /// recent time ticks at least ten times within it.
    pub fn new<C: Clock>(clock: &C, granularity: Duration) -> Self {
        let tick = clock.recent_resolution();
        let sampled = !tick.is_zero() && super::recent_is_fine_for(tick, granularity);
        Self {
            sampled,
            tick_nanos: saturating_nanos(tick),
            due: AtomicU64::new(0),
            seeded: None,
        }
    }

    /// This timing with its draws taken from one sequence seeded by `seed`, shared by all
    /// threads, in place of each thread's generator: for a seeded simulation or test, whose
    /// runs must time the same requests when one thread drives them. Each draw then writes a
    /// value all threads share: not for production.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seeded: Some(AtomicU64::new(seed)),
            ..self
        }
    }

    /// Whether requests are placed at the clock's recent time and timed on a sample.
    #[inline]
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// How far apart the instants requests are placed at may be: the recent time's tick when
    /// sampled, zero on the precise clock.
    pub fn tick(&self) -> Duration {
        if self.sampled {
            Duration::from_nanos(self.tick_nanos)
        } else {
            Duration::ZERO
        }
    }

    /// The instant to place an event at now, outside any request (or to compare with the
    /// `at` of arrivals): the recent time when sampling, `now` otherwise.
    #[inline]
    pub fn instant<C: Clock>(&self, clock: &C) -> Duration {
        if self.sampled {
            clock.recent()
        } else {
            clock.now()
        }
    }

    /// The arrival of a request now: one read of the recent time, and one of `now` if the
    /// request is timed; one read of `now` when not sampling.
    #[inline]
    pub fn arrival<C: Clock>(&self, clock: &C) -> Arrival {
        self.arrival_at(self.instant(clock), clock)
    }

    /// The arrival of a request placed at `at`, an [`instant`](Self::instant) of this timing
    /// read just before: for a layer that reads the instant to decide (a balancer's pick)
    /// and draws whether the request is timed only once it goes ahead, so that no draw is
    /// spent on a decision that sends nothing. Reads `now` if the request is timed.
    #[inline]
    pub fn arrival_at<C: Clock>(&self, at: Duration, clock: &C) -> Arrival {
        if !self.sampled {
            return Arrival::given(at);
        }
        Arrival {
            at,
            timed_from: self.draw(at).then(|| clock.now()),
            sampled: true,
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
        match &self.seeded {
            None => fastrand::u32(..Self::ONE_IN) == 0,
            Some(state) => seeded_draw(state),
        }
    }

    /// The end now of a request of this timing timed from `timed_from` (`None`: not timed),
    /// for a caller that kept its start alone.
    #[inline]
    pub fn completion<C: Clock>(&self, clock: &C, timed_from: Option<Duration>) -> Finish {
        finish(clock, self.sampled, timed_from)
    }
}

/// A seeded timing's draw: the next of the sequence of `state`, one in
/// [`ONE_IN`](Timing::ONE_IN) true. A load and a store, not a read-modify-write: threads
/// drawing at once may draw the same value, so a seeded run is reproducible when one thread
/// drives it (as a simulation or a test on paused time does). Out of line: the request path
/// of an unseeded timing keeps only the branch.
#[inline(never)]
fn seeded_draw(state: &AtomicU64) -> bool {
    // SplitMix64: a Weyl sequence through a 64-bit mix.
    let mut z = state
        .load(Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.store(z, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.is_multiple_of(u64::from(Timing::ONE_IN))
}

/// A request's end on `clock`, placed on the recent time when `sampled`.
#[inline]
fn finish<C: Clock>(clock: &C, sampled: bool, timed_from: Option<Duration>) -> Finish {
    match timed_from {
        Some(start) => {
            let end = clock.now();
            let at = if sampled { clock.recent() } else { end };
            Finish {
                at,
                timed: Some(Timed { start, end }),
            }
        }
        // Only a sampled arrival is not timed.
        None => Finish {
            at: if sampled { clock.recent() } else { clock.now() },
            timed: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::ManualClock;

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
        let finish = arrival.finish(&clock);
        assert_eq!(finish, timing.completion(&clock, arrival.timed_from));
        assert_eq!(finish.at, 10 * MS);
        assert_eq!(finish.timed.map(|timed| timed.elapsed()), Some(3 * MS));
    }

    #[test]
    fn a_tick_too_coarse_for_the_buckets_times_every_request_on_now() {
        let clock = ticking();
        let timing = Timing::new(&clock, 39 * MS);
        assert!(!timing.is_sampled());
        assert_eq!(timing.tick(), Duration::ZERO);
        for _ in 0..100 {
            assert_eq!(timing.arrival(&clock), Arrival::given(clock.now()));
        }
    }

    #[test]
    fn the_first_request_of_each_tick_is_timed_and_placed_at_the_recent_time() {
        let clock = ticking();
        let timing = Timing::new(&clock, BUCKET);
        assert_eq!(timing.tick(), 4 * MS);
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
    fn with_a_seed_the_same_requests_are_timed_on_every_run_one_in_sixteen() {
        let clock = ticking();
        let pattern = |seed| {
            let timing = Timing::new(&clock, BUCKET).with_seed(seed);
            (0..16_000)
                .map(|_| timing.arrival(&clock).timed_from.is_some())
                .collect::<Vec<_>>()
        };
        let first = pattern(7);
        assert_eq!(first, pattern(7), "the same seed times the same requests");
        assert_ne!(first, pattern(8), "another seed, others");
        // The tick's first, then 1 000 expected of the rest, a standard deviation of 31.
        assert!(first[0]);
        let timed = first[1..].iter().filter(|&&timed| timed).count();
        assert!((750..=1_250).contains(&timed), "{timed}");
    }

    #[test]
    fn an_arrival_at_an_instant_read_before_is_placed_there() {
        let clock = ticking();
        let timing = Timing::new(&clock, BUCKET);
        let at = timing.instant(&clock);
        clock.advance(5 * MS);
        let arrival = timing.arrival_at(at, &clock);
        assert_eq!(arrival.at, 4 * MS, "where the decision was made");
        assert_eq!(
            arrival.timed_from,
            Some(12 * MS),
            "the tick's first: timed now"
        );
        let precise = ManualClock::starting_at(3 * MS);
        let timing = Timing::new(&precise, BUCKET);
        let at = timing.instant(&precise);
        precise.advance(MS);
        assert_eq!(timing.arrival_at(at, &precise), Arrival::given(3 * MS));
    }

    #[test]
    fn a_completion_reads_the_recent_time_and_only_a_timed_one_reads_now() {
        let clock = ticking();
        let timing = Timing::new(&clock, BUCKET);
        let start = clock.now();
        clock.advance(30 * MS);
        assert_eq!(
            timing.completion(&clock, None),
            Finish {
                at: clock.recent(),
                timed: None
            },
            "not timed"
        );
        assert_eq!(
            timing.completion(&clock, Some(start)),
            Finish {
                at: clock.recent(),
                timed: Some(Timed {
                    start,
                    end: clock.now()
                })
            }
        );
    }

    #[test]
    fn the_precise_instant_of_an_arrival_is_its_start_or_a_reading_that_leaves_it_untimed() {
        let clock = ticking();
        let untimed = Arrival {
            at: clock.recent(),
            timed_from: None,
            sampled: true,
        };
        assert_eq!(untimed.precise(&clock), clock.now());
        assert_eq!(untimed.timed_from, None);
        let start = clock.now();
        let timed = Arrival::given(start);
        clock.advance(MS);
        assert_eq!(timed.precise(&clock), start, "its start, not a reading");
    }
}
