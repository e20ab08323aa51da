//! The statistics of one endpoint: EWMA latency and success, and its in-flight requests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::saturating_nanos;
use rampart_core::{Arrival, Finish, Outcome};

/// In-flight requests whose start each endpoint keeps, for [`stalled_lag_ns`]: the bits of
/// one word. Beyond them, requests are counted in flight and their starts not kept: the stall
/// estimate is then made on a sample, the 64 kept (a slot freed is taken by the next request
/// to begin, so the sample renews itself).
const TRACKED: usize = 64;

/// Nothing yet, in [`EndpointStats`]' instants.
const NEVER: u64 = u64::MAX;

/// One endpoint's statistics, shared by the balancer (which reads them to choose) and the
/// response futures of the requests sent to it (which record their completions).
///
/// Every field is an atomic: readers never wait. A request's beginning and its end each
/// take the `writing` flag (one atomic swap; it is let go with a plain store), so that the
/// updates of one endpoint are made one at a time and every count stays exact; a
/// `parking_lot` mutex cost two read-modify-writes per update, and this is the balancer's
/// request path. An update is a few loads, stores and floating-point operations, and never
/// panics; a thread that finds the flag taken spins briefly, then yields.
///
/// Requests arrive and end on the balancer's [`Timing`](rampart_core::Timing): placed at the
/// clock's recent time and timed on a sample where it has a cheap one. The latency EWMA
/// learns from the timed requests, on the precise clock; the success EWMA from every
/// completion, the completions placed at one instant (a tick of the recent time) averaged as
/// one sample, so that a tick's hundreds of completions weigh what they would spread over it.
#[derive(Debug)]
pub(crate) struct EndpointStats {
    /// Taken while a request begins or ends: the one writer of every field below.
    writing: AtomicBool,
    /// Bit `i` set: `starts[i]` is the start (ns) of a request in flight.
    used: AtomicU64,
    /// In line, inside the lane's own aligned lines: boxed (an allocation of 512 bytes, not
    /// aligned to a cache line), two threads sharing a balancer sent 1.6× the requests of one
    /// instead of 1.8× (`--bench stack`, group `stack_tasks`), the mark of lines shared
    /// between the lanes of two CPUs.
    starts: [AtomicU64; TRACKED],
    inflight: AtomicU64,
    /// Requests begun: a shared balancer's pick count.
    begun: AtomicU64,
    /// The latency EWMA in nanoseconds (`f64` bits; 0: nothing known).
    lag_ns: AtomicU64,
    /// The precise end (ns) of the latest timed completion, `NEVER` before the first, whose
    /// sample sets the latency EWMA.
    lag_stamp: AtomicU64,
    /// The outcome EWMA, 1 succeeding, 0 failing (`f64` bits): `settled` and the current
    /// batch's mean, weighed by `batch_weight`.
    success: AtomicU64,
    /// The outcome EWMA before the current batch (`f64` bits).
    settled: AtomicU64,
    /// The instant (ns) of the batch folded into `settled`, `NEVER` before the first.
    settled_at: AtomicU64,
    /// The instant (ns) the current batch's completions are placed at, `NEVER` before the
    /// first.
    batch_at: AtomicU64,
    /// The current batch's successes (high 32 bits) and completions (low 32 bits).
    batch_counts: AtomicU64,
    /// The weight `settled` keeps against the current batch (`f64` bits).
    batch_weight: AtomicU64,
    weight: AtomicU64,
    /// The decay time constant, in nanoseconds.
    tau_ns: f64,
    /// How much older than the latency EWMA an in-flight request must look to count as slow:
    /// one tick of the recent time its start and the pick's instant are read on (none on the
    /// precise clock).
    slack_ns: f64,
}

/// A request in flight on an endpoint: its slot among the tracked starts (`TRACKED`: none)
/// and its arrival.
#[derive(Debug)]
pub(crate) struct Ticket {
    slot: usize,
    pub(crate) arrival: Arrival,
}

/// The `writing` flag of an [`EndpointStats`], held: let go when dropped.
struct Writing<'a>(&'a AtomicBool);

impl Drop for Writing<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl EndpointStats {
    /// Statistics starting from `prior_lag` (the median of warm peers, or zero), decaying
    /// with time constant `tau`, whose requests arrive on a timing whose instants tick every
    /// `tick` (zero on the precise clock).
    pub(crate) fn new(prior_lag: Duration, tau: Duration, tick: Duration) -> Self {
        let lag_ns = prior_lag.as_nanos() as f64;
        Self {
            writing: AtomicBool::new(false),
            used: AtomicU64::new(0),
            starts: std::array::from_fn(|_| AtomicU64::new(0)),
            inflight: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            lag_ns: AtomicU64::new(lag_ns.to_bits()),
            lag_stamp: AtomicU64::new(NEVER),
            success: AtomicU64::new(1.0_f64.to_bits()),
            settled: AtomicU64::new(1.0_f64.to_bits()),
            settled_at: AtomicU64::new(NEVER),
            batch_at: AtomicU64::new(NEVER),
            batch_counts: AtomicU64::new(0),
            batch_weight: AtomicU64::new(0.0_f64.to_bits()),
            weight: AtomicU64::new(1.0_f64.to_bits()),
            tau_ns: tau.as_nanos() as f64,
            slack_ns: tick.as_nanos() as f64,
        }
    }

    /// Takes the `writing` flag, waiting for the thread that holds it (one that is beginning
    /// or ending a request on this endpoint) to let it go.
    #[inline]
    fn write(&self) -> Writing<'_> {
        if self.writing.swap(true, Ordering::Acquire) {
            self.write_contended();
        }
        Writing(&self.writing)
    }

    #[cold]
    #[inline(never)]
    fn write_contended(&self) {
        let mut spins = 0_u32;
        loop {
            while self.writing.load(Ordering::Relaxed) {
                if spins < 100 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    // The holder may have been preempted: let it run.
                    std::thread::yield_now();
                }
            }
            if !self.writing.swap(true, Ordering::Acquire) {
                return;
            }
        }
    }

    /// Starts tracking a request arriving at `arrival`.
    #[inline]
    pub(crate) fn begin(&self, arrival: Arrival) -> Ticket {
        let _writing = self.write();
        let used = self.used.load(Ordering::Relaxed);
        let slot = (!used).trailing_zeros() as usize;
        if let Some(start) = self.starts.get(slot) {
            start.store(saturating_nanos(arrival.at), Ordering::Relaxed);
            // Released: a reader that sees the bit sees the start.
            self.used.store(used | (1 << slot), Ordering::Release);
        }
        increment(&self.inflight);
        increment(&self.begun);
        Ticket { slot, arrival }
    }

    /// Records the end of a request: `Some((outcome, finish))` when it completed, at `finish`
    /// (`Ignore` updates the latency only; only a timed request teaches the latency), `None`
    /// when it was cancelled (nothing but the in-flight count changes: a client giving up
    /// says nothing about the endpoint).
    pub(crate) fn end(&self, ticket: &Ticket, completed: Option<(Outcome, Finish)>) {
        let _writing = self.write();
        if ticket.slot < TRACKED {
            let used = self.used.load(Ordering::Relaxed);
            self.used
                .store(used & !(1 << ticket.slot), Ordering::Release);
        }
        let inflight = self.inflight.load(Ordering::Relaxed);
        self.inflight
            .store(inflight.saturating_sub(1), Ordering::Relaxed);
        let Some((outcome, finish)) = completed else {
            return;
        };
        if let Some(timed) = finish.timed {
            self.learn_latency(nanos_f64(timed.elapsed()), saturating_nanos(timed.end));
        }
        let success = match outcome {
            Outcome::Success => true,
            Outcome::Failure => false,
            Outcome::Ignore => return,
        };
        self.learn_outcome(success, saturating_nanos(finish.at));
    }

    /// Folds a latency `sample` ending at precise instant `end_ns` into the EWMA. Held under
    /// the `writing` flag.
    #[inline]
    fn learn_latency(&self, sample: f64, end_ns: u64) {
        let stamp = self.lag_stamp.load(Ordering::Relaxed);
        let weight = self.weight_since(stamp, end_ns);
        // The latest completion: a clock stepping back is no time passing.
        if stamp == NEVER || end_ns > stamp {
            self.lag_stamp
                .store(end_ns.min(NEVER - 1), Ordering::Relaxed);
        }
        let lag = self.lag_ns();
        // Peak-sensitive: a slower sample replaces the estimate at once.
        let lag = if sample > lag {
            sample
        } else {
            lag * weight + sample * (1.0 - weight)
        };
        self.lag_ns.store(lag.to_bits(), Ordering::Relaxed);
    }

    /// Adds an outcome placed at instant `at_ns` to the success EWMA. The completions of one
    /// instant form a batch, averaged into one sample; a later instant folds the batch into
    /// the settled average and starts the next (an earlier one, a clock stepping back, joins
    /// the current batch). Held under the `writing` flag.
    #[inline]
    fn learn_outcome(&self, success: bool, at_ns: u64) {
        let batch_at = self.batch_at.load(Ordering::Relaxed);
        let (mut weight, mut counts) = (
            f64::from_bits(self.batch_weight.load(Ordering::Relaxed)),
            self.batch_counts.load(Ordering::Relaxed),
        );
        let mut settled = f64::from_bits(self.settled.load(Ordering::Relaxed));
        if batch_at == NEVER || at_ns > batch_at {
            let mut settled_at = self.settled_at.load(Ordering::Relaxed);
            if batch_at != NEVER {
                // The published average is the finished batch folded in.
                settled = self.success();
                settled_at = batch_at;
                self.settled.store(settled.to_bits(), Ordering::Relaxed);
                self.settled_at.store(settled_at, Ordering::Relaxed);
            }
            weight = self.weight_since(settled_at, at_ns);
            counts = 0;
            self.batch_at.store(at_ns.min(NEVER - 1), Ordering::Relaxed);
            self.batch_weight.store(weight.to_bits(), Ordering::Relaxed);
        }
        // Successes above, completions below: each saturates on its own half.
        let (good, all) = (counts >> 32, counts & u64::from(u32::MAX));
        let all = (all + 1).min(u64::from(u32::MAX));
        let good = (good + u64::from(success)).min(all);
        self.batch_counts.store(good << 32 | all, Ordering::Relaxed);
        let mean = good as f64 / all as f64;
        let average = settled * weight + mean * (1.0 - weight);
        self.success.store(average.to_bits(), Ordering::Relaxed);
    }

    /// The weight an average last moved at `stamp` (ns; `NEVER`: never) keeps at `now_ns`.
    #[inline]
    fn weight_since(&self, stamp: u64, now_ns: u64) -> f64 {
        if stamp == NEVER {
            0.0
        } else {
            decay(now_ns.saturating_sub(stamp) as f64 / self.tau_ns)
        }
    }

    /// The latency to expect at `now` (an instant of the arrivals' source): the EWMA, or the
    /// mean age of the in-flight requests older than it (by more than a tick of that source)
    /// when they are the majority: a stalled endpoint looks slow before any of its requests
    /// completes. Reads without waiting.
    #[inline]
    pub(crate) fn effective_lag_ns(&self, now: Duration) -> f64 {
        let lag = self.lag_ns();
        let inflight = self.inflight();
        if inflight == 0 {
            return lag;
        }
        // The set bits alone, lowest first: as many steps as requests kept, not 64.
        let mut used = self.used.load(Ordering::Acquire);
        let starts = std::iter::from_fn(|| {
            let slot = used.trailing_zeros() as usize;
            let start = self.starts.get(slot)?;
            used &= used - 1;
            Some(start.load(Ordering::Relaxed))
        });
        stalled_lag_ns(starts, lag, self.slack_ns, now)
    }

    #[inline]
    pub(crate) fn lag_ns(&self) -> f64 {
        f64::from_bits(self.lag_ns.load(Ordering::Relaxed))
    }

    /// The EWMA latency, saturating at [`Duration::MAX`].
    pub(crate) fn lag(&self) -> Duration {
        saturating_duration(self.lag_ns())
    }

    #[inline]
    pub(crate) fn success(&self) -> f64 {
        f64::from_bits(self.success.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn weight(&self) -> f64 {
        f64::from_bits(self.weight.load(Ordering::Relaxed))
    }

    pub(crate) fn set_weight(&self, weight: f64) {
        self.weight.store(weight.to_bits(), Ordering::Relaxed);
    }

    /// The requests begun on it.
    pub(crate) fn begun(&self) -> u64 {
        self.begun.load(Ordering::Relaxed)
    }

    /// Whether a latency has been measured.
    pub(crate) fn is_warm(&self) -> bool {
        self.lag_stamp.load(Ordering::Relaxed) != NEVER
    }

    /// Whether an outcome (a success or a failure) has been learnt.
    pub(crate) fn has_outcomes(&self) -> bool {
        self.batch_at.load(Ordering::Relaxed) != NEVER
    }
}

/// Adds one to a count only the holder of the `writing` flag writes: a load and a store.
#[inline]
fn increment(count: &AtomicU64) {
    let value = count.load(Ordering::Relaxed);
    count.store(value.saturating_add(1), Ordering::Relaxed);
}

/// `e^(-x)` for `x ≥ 0`: the weight an average keeps after `x` time constants. Below
/// 2⁻¹⁰ (on the precise clock, a busy endpoint's completions come well within a thousandth
/// of the 600 ms time constant) it is `1 - x + x²/2`, within `x³/6 < 2·10⁻¹⁰` of it and a
/// fraction of `exp`'s cost, which is the largest single cost of a completion otherwise. On
/// a ticking clock the success average's batches are a tick apart (a 150th of τ on a 4 ms
/// tick): `exp` then runs once per tick, at the batch's first completion.
#[inline]
fn decay(x: f64) -> f64 {
    if x < 1.0 / 1024.0 {
        1.0 - x * (1.0 - 0.5 * x)
    } else {
        (-x).exp()
    }
}

/// `duration` in nanoseconds as an `f64`: `duration.as_nanos() as f64`, converted from a
/// `u64` when it fits one (a single instruction; a `u128` conversion is a library call on the
/// request path), which gives the same value.
#[inline]
fn nanos_f64(duration: Duration) -> f64 {
    let nanos = duration.as_nanos();
    match u64::try_from(nanos) {
        Ok(nanos) => nanos as f64,
        Err(_) => wide_nanos_f64(nanos),
    }
}

/// The `u128` conversion, out of line: inlined, the optimiser sees that both of
/// [`nanos_f64`]'s branches give the same value and keeps this one alone, a library call at
/// every completion.
#[cold]
#[inline(never)]
fn wide_nanos_f64(nanos: u128) -> f64 {
    nanos as f64
}

/// `lag`, or the mean age at `now` of the in-flight requests older than it by more than
/// `slack` when they are the majority: `starts` are the kept starts of requests in flight, all
/// in nanoseconds. On instants a tick apart (`slack`), a request begun in the previous tick
/// looks a tick old however young it is: without the slack, at each tick every request in
/// flight would look slow on an endpoint faster than a tick.
fn stalled_lag_ns(starts: impl Iterator<Item = u64>, lag: f64, slack: f64, now: Duration) -> f64 {
    let now = saturating_nanos(now);
    let (mut total, mut slow, mut slow_age) = (0_u64, 0_u64, 0.0);
    for start in starts {
        total += 1;
        let age = now.saturating_sub(start) as f64;
        if age > lag + slack {
            slow += 1;
            slow_age += age;
        }
    }
    if slow > total / 2 {
        lag.max(slow_age / slow as f64)
    } else {
        lag
    }
}

/// `nanos` nanoseconds as a [`Duration`], saturating: at [`Duration::MAX`] beyond its range
/// (a latency measured on a clock near the end of that range, once rounded to `f64`), at zero
/// for anything not positive.
pub(crate) fn saturating_duration(nanos: f64) -> Duration {
    Duration::try_from_secs_f64(nanos / 1e9).unwrap_or(if nanos > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// Arrivals and ends on the precise clock, for the tests of this crate.
#[cfg(test)]
impl EndpointStats {
    /// [`begin`](Self::begin) for a request arriving, timed, at `now`.
    pub(crate) fn begin_now(&self, now: Duration) -> Ticket {
        self.begin(Arrival::given(now))
    }

    /// [`end`](Self::end) at `now` of a request begun by [`begin_now`](Self::begin_now).
    pub(crate) fn end_now(&self, ticket: &Ticket, now: Duration, outcome: Option<Outcome>) {
        let clock = rampart_core::ManualClock::starting_at(now);
        self.end(
            ticket,
            outcome.map(|outcome| (outcome, ticket.arrival.finish(&clock))),
        );
    }
}

#[cfg(test)]
mod tests {
    use rampart_core::{Clock, ManualClock};

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TAU: Duration = Duration::from_millis(600);

    fn complete(stats: &EndpointStats, at: Duration, latency: Duration, outcome: Outcome) {
        let ticket = stats.begin_now(at.saturating_sub(latency));
        stats.end_now(&ticket, at, Some(outcome));
    }

    #[test]
    fn the_first_sample_sets_the_value_and_later_ones_decay_in_with_time() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        complete(&stats, 100 * MS, 10 * MS, Outcome::Success);
        assert_eq!(stats.lag_ns(), 10e6);
        // 600 ms later (one τ) a 4 ms sample: w = e⁻¹.
        complete(&stats, 700 * MS, 4 * MS, Outcome::Success);
        let w = (-1.0_f64).exp();
        assert!(
            (stats.lag_ns() - (10e6 * w + 4e6 * (1.0 - w))).abs() < 1.0,
            "{}",
            stats.lag_ns()
        );
        // A slower sample replaces the estimate at once.
        complete(&stats, 701 * MS, 30 * MS, Outcome::Success);
        assert_eq!(stats.lag_ns(), 30e6);
    }

    #[test]
    fn success_decays_with_time_and_ignored_outcomes_leave_it() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        complete(&stats, 10 * MS, MS, Outcome::Failure);
        assert_eq!(stats.success(), 0.0, "the first sample sets it");
        complete(&stats, 610 * MS, MS, Outcome::Success);
        assert!((stats.success() - (1.0 - (-1.0_f64).exp())).abs() < 1e-12);
        let before = stats.success();
        complete(&stats, 1_210 * MS, MS, Outcome::Ignore);
        assert_eq!(stats.success(), before);
    }

    #[test]
    fn the_completions_of_one_instant_are_averaged_into_one_sample() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        for outcome in [Outcome::Success, Outcome::Failure, Outcome::Success] {
            complete(&stats, 10 * MS, MS, outcome);
        }
        complete(&stats, 10 * MS, MS, Outcome::Success);
        assert_eq!(stats.success(), 0.75, "the first batch sets it: 3 of 4");
        // One τ later a batch of two failures and two successes: w = e⁻¹ of 0.75 kept.
        let w = (-1.0_f64).exp();
        for outcome in [Outcome::Failure, Outcome::Failure, Outcome::Success] {
            complete(&stats, 610 * MS, MS, outcome);
        }
        // A clock stepping back joins the batch under way.
        complete(&stats, 600 * MS, MS, Outcome::Success);
        assert!((stats.success() - (0.75 * w + 0.5 * (1.0 - w))).abs() < 1e-12);
        // The next instant folds that batch in: its first completion weighs what a whole
        // batch would.
        let settled = stats.success();
        complete(&stats, 1_210 * MS, MS, Outcome::Failure);
        assert!((stats.success() - settled * w).abs() < 1e-12);
    }

    #[test]
    fn untimed_completions_teach_the_success_alone_and_only_a_timed_one_warms() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, 4 * MS);
        let clock = ManualClock::starting_at(7 * MS).with_recent_resolution(4 * MS);
        let timing = rampart_core::Timing::new(&clock, TAU);
        // The first of the tick is timed; of the rest, one in sixteen.
        let untimed = std::iter::repeat_with(|| timing.arrival(&clock))
            .find(|arrival| arrival.timed_from.is_none())
            .expect("an untimed arrival");
        assert_eq!(untimed.at, 4 * MS);
        let ticket = stats.begin(untimed);
        clock.advance(40 * MS);
        let finish = ticket.arrival.finish(&clock);
        assert_eq!(finish.timed, None);
        stats.end(&ticket, Some((Outcome::Failure, finish)));
        assert_eq!((stats.success(), stats.lag_ns()), (0.0, 0.0));
        assert!(!stats.is_warm(), "no latency measured yet");
        let ticket = stats.begin_now(clock.now());
        clock.advance(3 * MS);
        stats.end_now(&ticket, clock.now(), Some(Outcome::Success));
        assert_eq!(stats.lag_ns(), 3e6);
        assert!(stats.is_warm());
    }

    #[test]
    fn on_ticking_instants_a_request_must_look_a_tick_older_than_the_latency_to_be_slow() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, 4 * MS);
        complete(&stats, 8 * MS, MS, Outcome::Success); // lag 1 ms
        // Begun in the previous tick: 4 ms old on ticking instants, however young.
        let held = [stats.begin_now(8 * MS), stats.begin_now(8 * MS)];
        assert_eq!(
            stats.effective_lag_ns(12 * MS),
            1e6,
            "within a tick: not slow"
        );
        // Three ticks later they are slow: their age is the estimate.
        assert_eq!(stats.effective_lag_ns(20 * MS), 12e6);
        for ticket in &held {
            stats.end_now(ticket, 20 * MS, None);
        }
    }

    #[test]
    fn a_cancelled_request_changes_nothing_but_the_in_flight_count() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        complete(&stats, 10 * MS, MS, Outcome::Success);
        let ticket = stats.begin_now(20 * MS);
        assert_eq!(stats.inflight(), 1);
        stats.end_now(&ticket, 900 * MS, None);
        assert_eq!(
            (stats.inflight(), stats.success(), stats.lag_ns()),
            (0, 1.0, 1e6)
        );
    }

    #[test]
    fn old_in_flight_requests_raise_the_effective_latency_when_they_are_the_majority() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        complete(&stats, 10 * MS, 10 * MS, Outcome::Success); // lag 10 ms
        let old = [stats.begin_now(20 * MS), stats.begin_now(20 * MS)];
        let young = stats.begin_now(115 * MS);
        // At 120 ms: two requests aged 100 ms (older than 10 ms), one aged 5 ms.
        assert_eq!(stats.effective_lag_ns(120 * MS), 100e6);
        let more_young = [stats.begin_now(119 * MS), stats.begin_now(119 * MS)];
        assert_eq!(
            stats.effective_lag_ns(120 * MS),
            10e6,
            "2 of 5 old: no longer a majority"
        );
        for ticket in old.iter().chain(&more_young).chain([&young]) {
            stats.end_now(ticket, 130 * MS, None);
        }
        assert_eq!(stats.inflight(), 0);
    }

    #[test]
    fn the_decay_weight_is_within_two_parts_in_ten_billion_of_exp() {
        let mut rng = fastrand::Rng::with_seed(1);
        let edges = [
            0.0,
            1e-12,
            1e-6,
            1.0 / 1024.0 - 1e-12,
            1.0 / 1024.0,
            0.5,
            1.0,
            40.0,
        ];
        let samples = (0..10_000).map(|_| rng.f64() * 2.0_f64.powi(-rng.i32(0..40)));
        for x in edges.into_iter().chain(samples) {
            let error = (decay(x) - (-x).exp()).abs();
            assert!(error < 2e-10, "{x}: {error}");
        }
        assert_eq!(decay(0.0), 1.0);
        assert!(decay(f64::INFINITY) == 0.0);
    }

    #[test]
    fn latencies_convert_to_durations_saturating() {
        assert_eq!(saturating_duration(1.5e6), Duration::from_micros(1_500));
        let max_nanos = Duration::MAX.as_nanos() as f64;
        for beyond in [max_nanos, 2.0 * max_nanos, f64::MAX, f64::INFINITY] {
            assert_eq!(saturating_duration(beyond), Duration::MAX, "{beyond}");
        }
        for nothing in [0.0, -1.0, f64::NEG_INFINITY, f64::NAN] {
            assert_eq!(saturating_duration(nothing), Duration::ZERO, "{nothing}");
        }
    }

    #[test]
    fn nanoseconds_convert_as_a_128_bit_conversion_would() {
        let mut rng = fastrand::Rng::with_seed(1);
        let edges = [0, 1, (1 << 53) + 1, u64::MAX - 1, u64::MAX].map(u128::from);
        let samples = (0..10_000).map(|_| u128::from(rng.u64(..)) >> rng.u32(0..64));
        for nanos in edges
            .into_iter()
            .chain(samples)
            .chain([u128::from(u64::MAX) + 1])
        {
            let secs = (nanos / 1_000_000_000) as u64;
            let duration = Duration::new(secs, (nanos % 1_000_000_000) as u32);
            assert_eq!(
                nanos_f64(duration).to_bits(),
                (nanos as f64).to_bits(),
                "{nanos}"
            );
        }
        let max = Duration::MAX;
        assert_eq!(nanos_f64(max).to_bits(), (max.as_nanos() as f64).to_bits());
    }

    #[test]
    fn beyond_the_kept_starts_requests_are_counted_and_the_kept_ones_judge_a_stall() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        complete(&stats, 10 * MS, 10 * MS, Outcome::Success); // lag 10 ms
        // 32 young requests and 32 old ones hold every kept slot; 64 old ones beyond them
        // are counted, their starts not kept.
        let young: Vec<Ticket> = (0..TRACKED / 2)
            .map(|_| stats.begin_now(119 * MS))
            .collect();
        let old: Vec<Ticket> = (0..TRACKED / 2).map(|_| stats.begin_now(20 * MS)).collect();
        let beyond: Vec<Ticket> = (0..TRACKED).map(|_| stats.begin_now(20 * MS)).collect();
        assert_eq!(stats.inflight(), 128);
        assert!(beyond.iter().all(|ticket| ticket.slot == TRACKED));
        assert_eq!(
            stats.effective_lag_ns(120 * MS),
            10e6,
            "32 old of the 64 kept: not a majority"
        );
        // A young request ends; the next to begin, an old one, takes its slot.
        stats.end_now(&young[0], 120 * MS, None);
        let reused = stats.begin_now(20 * MS);
        assert_eq!(reused.slot, young[0].slot, "a freed slot is taken again");
        assert_eq!(stats.inflight(), 128);
        // 33 old of the 64 kept: a majority; their mean age is 100 ms.
        assert_eq!(stats.effective_lag_ns(120 * MS), 100e6);
        for ticket in young[1..]
            .iter()
            .chain(&old)
            .chain(&beyond)
            .chain([&reused])
        {
            stats.end_now(ticket, 130 * MS, None);
        }
        assert_eq!(
            (stats.inflight(), stats.used.load(Ordering::Relaxed)),
            (0, 0)
        );
    }

    #[test]
    fn concurrent_beginnings_and_ends_keep_every_count_exact() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        let (threads, rounds) = (4_u64, 20_000_u64);
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let stats = &stats;
                scope.spawn(move || {
                    let mut held = Vec::new();
                    for round in 0..rounds {
                        let now = Duration::from_micros(round);
                        held.push(stats.begin_now(now));
                        // Up to 40 per thread in flight: beyond the tracked slots in all.
                        if held.len() > 40 || round % 3 == thread % 3 {
                            let ticket = held.swap_remove(0);
                            let outcome = (round % 2 == 0).then_some(Outcome::Success);
                            stats.end_now(&ticket, now + MS, outcome);
                        }
                        assert!(stats.inflight() <= threads * 41);
                    }
                    for ticket in held {
                        stats.end_now(&ticket, MS, None);
                    }
                });
            }
        });
        assert_eq!(stats.inflight(), 0);
        assert_eq!(stats.used.load(Ordering::Relaxed), 0);
        assert_eq!(stats.begun(), threads * rounds);
        assert!(!stats.writing.load(Ordering::Relaxed));
        assert!(stats.lag_ns() > 0.0 && stats.success() == 1.0);
    }

    #[test]
    fn slots_are_reused() {
        let stats = EndpointStats::new(Duration::ZERO, TAU, Duration::ZERO);
        for _ in 0..100 {
            let ticket = stats.begin_now(MS);
            assert_eq!(ticket.slot, 0);
            stats.end_now(&ticket, 2 * MS, Some(Outcome::Success));
        }
        assert_eq!(stats.used.load(Ordering::Relaxed), 0);
        assert_eq!(stats.begun(), 100);
    }
}

#[cfg(test)]
mod ratchet {
    use super::*;

    #[test]
    fn rare_errors_do_not_ratchet_success_down() {
        // Kratos's integer success EWMA, at 1 000 completions per second with 0.1 % errors,
        // decays to 0.399 in 1 000 s; the true average is 0.999.
        let stats = EndpointStats::new(Duration::ZERO, Duration::from_millis(600), Duration::ZERO);
        let mut lowest = 1.0_f64;
        for n in 1..=1_000_000_u64 {
            let now = Duration::from_millis(n);
            let ticket = stats.begin_now(now.saturating_sub(Duration::from_micros(500)));
            let outcome = if n % 1_000 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            stats.end_now(&ticket, now, Some(outcome));
            lowest = lowest.min(stats.success());
        }
        // The last completion was one of the errors: a dip of 1 − e^(−1/600) ≈ 0.0017.
        assert!(stats.success() > 0.997, "{}", stats.success());
        assert!(lowest >= 0.99, "never below 0.99: {lowest}");
    }
}
