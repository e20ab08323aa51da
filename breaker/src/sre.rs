//! [`SreBreaker`]: the adaptive-throttling algorithm, with no tower types.

use std::fmt;
use std::time::Duration;

use rampart_core::{
    ArrivalRates, BucketClock, BucketStats, Clock, ConfigError, Criticality, OncePerBucket,
    Outcome, PerBucketCache, PerStripe, RequestContext, RollingWindow, SystemClock,
    ValidWindowConfig, View, current_criticality, saturating_nanos,
};

use crate::draw::Draws;
use crate::events::Transitions;
use crate::metrics::BreakerMetrics;
use crate::{BreakerConfig, Rejected, Rejections};

/// The part of a bucket's `sum` that counts rejected calls: the low 32 bits count accepts.
///
/// One window holds all three counts: a success adds 1 and a local rejection 2³² to the sum,
/// a failure 1 to the count. So `accepts = sum mod 2³²`, `rejected = sum / 2³²` and
/// `admitted = accepts + count`, and one atomic write per event (`RollingWindow::add_at`)
/// and one read per decision serve all three. (A window would need four billion accepts to
/// carry into the rejected half.)
const REJECTED: u64 = 1 << 32;
const ACCEPTS_MASK: u64 = REJECTED - 1;

/// What each event adds to the window (see [`REJECTED`]).
const SUCCESS: BucketStats = BucketStats { sum: 1, count: 0 };
const FAILURE: BucketStats = BucketStats { sum: 0, count: 1 };
const REJECTION: BucketStats = BucketStats {
    sum: REJECTED,
    count: 0,
};

/// The counts of a span of buckets, unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    admitted: u64,
    accepts: u64,
    rejected: u64,
}

impl Counts {
    fn unpack(stats: BucketStats) -> Self {
        let accepts = stats.sum & ACCEPTS_MASK;
        Self {
            admitted: accepts.saturating_add(stats.count),
            accepts,
            rejected: stats.sum >> 32,
        }
    }

    /// Every call that reached a decision: admitted or rejected.
    fn calls(self) -> u64 {
        self.admitted.saturating_add(self.rejected)
    }
}

/// What a decision looks at: the whole window, and its two newest buckets (the current one
/// and the last completed one), whose success ratio sets the `Adaptive` weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Evidence {
    window: Counts,
    recent: Counts,
}

/// Whether a breaker is rejecting calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BreakerState {
    /// The drop probability is zero: every call goes through.
    Closed,
    /// Calls are rejected with this probability (in (0, 1)).
    Throttling {
        /// The probability that the next call is rejected.
        drop_probability: f64,
    },
}

/// What a breaker's window holds and what it decides from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSnapshot {
    /// Calls that reached the backend and completed (counted by their outcome).
    pub admitted: u64,
    /// Admitted calls the backend accepted (successes).
    pub accepts: u64,
    /// Calls the breaker rejected itself.
    pub rejected: u64,
    /// The weight of rejected calls in `requests` (see [`Rejections`](crate::Rejections)).
    pub rejection_weight: f64,
    /// `admitted + rejection_weight × rejected`.
    pub requests: f64,
    /// The probability that the next call is rejected.
    pub drop_probability: f64,
    /// [`BreakerState::Closed`] when `drop_probability` is zero.
    pub state: BreakerState,
}

/// Client-side adaptive throttling (Google SRE book, "Handling Overload"), without tower.
///
/// Over a rolling window it counts the calls that reached the backend (`admitted`), those the
/// backend accepted (`accepts`) and those it rejected itself (`rejected`). Before each call,
/// with `requests = admitted + w·rejected` (`w` set by [`Rejections`](crate::Rejections)):
///
/// - if the window holds fewer than `min_requests` calls, or `requests ≤ k·accepts`, the call
///   goes through;
/// - otherwise it is rejected with probability `(requests − k·accepts) / (requests + 1)`.
///
/// So a healthy backend never sees a rejection, and a failing one receives about `k` calls per
/// success: enough to notice its recovery, few enough to let it recover.
///
/// That probability `p` is a share of the client's traffic, and it falls on the least critical
/// traffic first (see [`Criticality`] and the crate docs' "Criticality"): the breaker counts
/// its calls per criticality band ([`ArrivalRates`], folded once per bucket), and a call of
/// band `b` is rejected with probability `clamp((p − S_b) / s_b, 0, 1)`, where `s_b` is band
/// `b`'s share of the calls and `S_b` the share of the bands below it. The expected share of
/// rejections is still `p`; with all calls in one band (or before the first bucket has ended)
/// every call is rejected with probability `p`, as without criticalities.
///
/// ```
/// use rampart_breaker::{BreakerConfig, BreakerState, Rejected};
/// use rampart_core::{ManualClock, Outcome};
///
/// let breaker = BreakerConfig::default().with_seed(1).build_with(ManualClock::new())?;
/// breaker.allow()?; // a fresh breaker lets everything through
/// for _ in 0..100 {
///     breaker.record(Outcome::Failure);
/// }
/// // 100 failures and no success: reject with probability 100/101.
/// let snapshot = breaker.snapshot();
/// assert!((snapshot.drop_probability - 100.0 / 101.0).abs() < 1e-12);
/// assert!(matches!(breaker.state(), BreakerState::Throttling { .. }));
/// let rejections = (0..1_000).filter(|_| breaker.allow() == Err(Rejected::new())).count();
/// assert!(rejections > 950);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Cost
///
/// A decision reads the current bucket and a cached total of the completed buckets (refreshed
/// once per bucket), never the whole window; a record is one lock-free window write, on the
/// calling CPU's stripe of the window.
///
/// The current bucket is read afresh at most once per [`FRESH`](Self::FRESH) on each CPU (on
/// each stripe of the window), and the CPU's decisions of the same period reuse what it read:
/// each stripe of the bucket sits on a cache line of its own, written by the calls of its CPU,
/// and reading them all at every call would move those lines between the cores at every call
/// of a breaker they share. A success thus weighs in decisions at most `FRESH` after it is
/// recorded (or a tick of the clock's [recent](Clock::recent) time, which stands still
/// between its ticks); at once in a decision of a later period or bucket, or at the instant of
/// the last read on a clock moved by hand (which reads afresh at each decision of the instant
/// it stands at). A failure weighs in at once on its own CPU, whose next decision reads
/// afresh, and as a success does on the others. A breaker with a
/// [seed](BreakerConfig::seed) reads afresh at every decision, so that its decisions depend
/// on its seed and its calls alone, not on which CPU decided when.
///
/// # Clock
///
/// The breaker only places events in buckets (of 300 ms by default), so it reads its clock's
/// [`recent`](Clock::recent) time (a [`BucketClock`]): on [`SystemClock`] the kernel's
/// coarse clock, a few nanoseconds with no time-stamp counter read. `allow` and `record` read
/// it once each; `allow_at` and `record_at` take the instant from a caller that has already
/// read it (see [`now`](Self::now)). The [`Breaker`](crate::Breaker) layer reads it once per
/// event: when it admits a call and when the call's outcome arrives, so that the outcome
/// counts in the bucket of its arrival.
///
/// # Layout
///
/// Aligned to two cache lines: the reference count of an `Arc` it is shared in (a keyed
/// group's, written by every admitted call of the key; a layer's services count theirs per
/// stripe of threads) then shares no line with the fields every call reads.
#[repr(align(128))]
pub struct SreBreaker<C = SystemClock> {
    config: BreakerConfig,
    /// Read through a [`BucketClock`]: the breaker only places events in buckets.
    window: RollingWindow<BucketClock<C>>,
    /// `[sum, count]` of the completed buckets and `[sum, count]` of the newest completed
    /// bucket, for the bucket they were computed in.
    completed: PerBucketCache<4>,
    /// Per stripe of the window, `[instant read (ns), bucket, sum, count]` of the current
    /// bucket as last read afresh, for the [`FRESH`](Self::FRESH) period of that instant;
    /// `None` with a seed (every decision reads afresh).
    current: Option<PerStripe<PerBucketCache<4>>>,
    /// `Adaptive` only: claimed by the first would-be rejection of each bucket, the probe.
    probed: OncePerBucket,
    /// The calls that reached a decision, per criticality band, folded once per bucket.
    arrivals: ArrivalRates,
    draws: Draws,
    pub(crate) metrics: BreakerMetrics,
    /// Starts and stops of throttling, as `tracing` events (feature `tracing`).
    transitions: Transitions,
}

impl<C> SreBreaker<C> {
    /// How long a CPU's read of the current bucket serves its decisions (see "Cost" above):
    /// 10 µs, a three-hundred-thousandth of the default 3 s window.
    pub const FRESH: Duration = Duration::from_micros(10);
}

/// # Construction
impl<C: Clock> SreBreaker<C> {
    pub(crate) fn new(config: BreakerConfig, clock: C) -> Result<Self, ConfigError> {
        let window = config.validated_window()?;
        Ok(Self::from_valid(config, window, clock, None))
    }

    /// A breaker built from a configuration that passed validation, `window` being its
    /// window's shape; its metrics also carry a `key` label when it is a member of a keyed
    /// group.
    pub(crate) fn from_valid(
        config: BreakerConfig,
        window: ValidWindowConfig,
        clock: C,
        key: Option<&str>,
    ) -> Self {
        Self {
            probed: OncePerBucket::new(),
            arrivals: ArrivalRates::new(),
            draws: Draws::new(config.seed),
            metrics: BreakerMetrics::new(&config.name, key),
            transitions: Transitions::new(&config.name, key),
            completed: PerBucketCache::new(),
            // A seed asks for reproducible decisions: no read that depends on which CPU made it.
            current: config
                .seed
                .is_none()
                .then(|| PerStripe::new(window.config().stripes, PerBucketCache::new)),
            window: window.build_with(BucketClock::new(clock, window.config().bucket_duration)),
            config,
        }
    }
}

/// # Deciding and recording
impl<C: Clock> SreBreaker<C> {
    /// Decides whether a call may go ahead now; a rejection counts as a rejected request.
    ///
    /// The call's criticality is the current [`RequestContext`]'s
    /// ([`current_criticality`]): [`Criticality::CRITICAL`] outside any scope.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the call is rejected (never with `enforce = false`), carrying the
    /// scope's criticality if it has one.
    #[inline]
    pub fn allow(&self) -> Result<(), Rejected> {
        self.allow_at(self.now())
    }

    /// Decides whether a call may go ahead at instant `now` (the breaker's [`now`](Self::now)),
    /// its criticality the current [`RequestContext`]'s, as [`allow`](Self::allow).
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the call is rejected (never with `enforce = false`).
    #[inline]
    pub fn allow_at(&self, now: Duration) -> Result<(), Rejected> {
        self.admit_at(now, RequestContext::current().criticality(), None)
    }

    /// Decides whether a call of `criticality` may go ahead now.
    ///
    /// # Errors
    ///
    /// [`Rejected`] carrying `criticality` when the call is rejected (never with
    /// `enforce = false`).
    #[inline]
    pub fn allow_for(&self, criticality: Criticality) -> Result<(), Rejected> {
        self.allow_for_at(self.now(), criticality)
    }

    /// Decides whether a call of `criticality` may go ahead at instant `now` (the breaker's
    /// [`now`](Self::now)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rampart_breaker::BreakerConfig;
    /// use rampart_core::{Clock, Criticality, ManualClock, Outcome};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = BreakerConfig::default().with_seed(1).build_with(clock.clone())?;
    /// // 100 calls go through (nothing recorded yet): 60 sheddable ones, which the backend
    /// // refuses, and 40 critical ones, which it serves.
    /// let now = clock.now();
    /// let calls = [(Criticality::SHEDDABLE, Outcome::Failure, 60), (Criticality::CRITICAL, Outcome::Success, 40)];
    /// for (criticality, _, count) in calls {
    ///     for _ in 0..count {
    ///         breaker.allow_for_at(now, criticality)?;
    ///     }
    /// }
    /// for (criticality, outcome, count) in calls {
    ///     for _ in 0..count {
    ///         breaker.record_for_at(now, criticality, outcome);
    ///     }
    /// }
    /// clock.advance(Duration::from_millis(300)); // a bucket ends: the bands' shares are known
    /// let now = clock.now();
    /// let p = breaker.drop_probability_at(now); // (100 − 2 × 40) / 101
    /// assert!((p - 20.0 / 101.0).abs() < 1e-12);
    /// // All of it falls on the sheddable calls, 60 % of the traffic.
    /// let sheddable = breaker.drop_probability_for_at(now, Criticality::SHEDDABLE);
    /// assert!((sheddable - p / 0.6).abs() < 1e-12);
    /// assert_eq!(breaker.drop_probability_for_at(now, Criticality::CRITICAL), 0.0);
    /// assert!((0..1_000).all(|_| breaker.allow_for_at(now, Criticality::CRITICAL).is_ok()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Rejected`] carrying `criticality` when the call is rejected (never with
    /// `enforce = false`).
    #[inline]
    pub fn allow_for_at(&self, now: Duration, criticality: Criticality) -> Result<(), Rejected> {
        self.admit_at(now, Some(criticality), None)
    }

    /// As [`allow_at`](Self::allow_at), with the uniform draw in [0, 1) supplied by the
    /// caller: the call is rejected when `draw <` its drop probability. For deterministic
    /// tests and simulations.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the call is rejected (never with `enforce = false`).
    pub fn allow_at_with_draw(&self, now: Duration, draw: f64) -> Result<(), Rejected> {
        self.admit_at(now, RequestContext::current().criticality(), Some(draw))
    }

    /// As [`allow_for_at`](Self::allow_for_at), with the uniform draw in [0, 1) supplied by
    /// the caller, as [`allow_at_with_draw`](Self::allow_at_with_draw).
    ///
    /// # Errors
    ///
    /// [`Rejected`] carrying `criticality` when the call is rejected (never with
    /// `enforce = false`).
    pub fn allow_for_at_with_draw(
        &self,
        now: Duration,
        criticality: Criticality,
        draw: f64,
    ) -> Result<(), Rejected> {
        self.admit_at(now, Some(criticality), Some(draw))
    }

    /// The decision for a call at `now` that said the criticality `said` (`None`: the
    /// default, and a rejection that carries none), drawing from the breaker's draws unless
    /// given `draw`.
    #[inline]
    pub(crate) fn admit_at(
        &self,
        now: Duration,
        said: Option<Criticality>,
        draw: Option<f64>,
    ) -> Result<(), Rejected> {
        let criticality = said.unwrap_or_default();
        let (bucket, evidence) = self.evidence_at(now);
        // Counted after the evidence, which folds the counts of a bucket that has ended.
        self.arrivals.record(criticality);
        let total = self.publish(self.decide(evidence));
        if total == 0.0 {
            return Ok(());
        }
        let probability = self.share_for(total, criticality);
        if probability == 0.0 {
            return Ok(());
        }
        let draw = draw.unwrap_or_else(|| self.draws.next_unit());
        if draw >= probability || self.probe(bucket) {
            return Ok(());
        }
        self.metrics.rejected(criticality.class());
        if self.config.enforce {
            self.window.add_at(now, REJECTION);
            Err(said.map_or(Rejected::new(), Rejected::of))
        } else {
            Ok(())
        }
    }

    /// The probability that a call of `criticality` is rejected when the breaker's total drop
    /// probability is `total`: `total` allocated from the lowest band upward, by each band's
    /// share of the calls.
    #[inline]
    fn share_for(&self, total: f64, criticality: Criticality) -> f64 {
        if !self.arrivals.mixed() {
            // Every call is of the default band: it takes the whole probability.
            return total;
        }
        let rates = self.arrivals.rates();
        let all: f64 = rates.iter().sum();
        if all <= 0.0 {
            // No bucket has ended yet: nothing to allocate by.
            return total;
        }
        let band = criticality.band();
        let below: f64 = rates[..band].iter().sum();
        allocate(total, below / all, rates[band] / all)
    }

    /// Whether the bands other than the default one have gone quiet: each below a thousandth
    /// of the calls.
    fn others_quiet(&self) -> bool {
        let rates = self.arrivals.rates();
        let all: f64 = rates.iter().sum();
        let default = Criticality::default().band();
        rates
            .iter()
            .enumerate()
            .all(|(band, &rate)| band == default || rate < all * 0.001)
    }

    /// The probability that a call of `criticality` at `now` is rejected: the drop
    /// probability allocated to its band (see the type's docs), the total alone when the
    /// breaker has no calls of other bands to reject first.
    pub fn drop_probability_for_at(&self, now: Duration, criticality: Criticality) -> f64 {
        let total = self.drop_probability_at(now);
        if total == 0.0 {
            return 0.0;
        }
        self.share_for(total, criticality)
    }

    /// Records the outcome of an admitted call now, as a call of the current
    /// [`RequestContext`]'s criticality (for the metrics' `criticality` label).
    #[inline]
    pub fn record(&self, outcome: Outcome) {
        self.record_at(self.now(), outcome);
    }

    /// Records the outcome of an admitted call of `criticality` now.
    #[inline]
    pub fn record_for(&self, criticality: Criticality, outcome: Outcome) {
        self.record_for_at(self.now(), criticality, outcome);
    }

    /// `Adaptive` only: whether this would-be rejection is the bucket's probe, let through
    /// so that a recovered backend is noticed within a bucket.
    #[inline]
    fn probe(&self, bucket: u64) -> bool {
        if self.config.rejections != Rejections::Adaptive {
            return false;
        }
        self.probed.claim(bucket)
    }

    /// The probability that a call at `now` is rejected (also published as the
    /// `rampart_breaker_drop_probability` gauge).
    #[inline]
    pub fn drop_probability_at(&self, now: Duration) -> f64 {
        let (_, evidence) = self.evidence_at(now);
        self.publish(self.decide(evidence))
    }

    /// Sets the drop-probability gauge and, when the probability starts or stops being
    /// zero, reports the transition.
    #[inline]
    pub(crate) fn publish(&self, probability: f64) -> f64 {
        if let Some(before) = self.metrics.drop_probability(probability) {
            self.transitions.probability_changed(before, probability);
        }
        probability
    }

    /// The bucket of `now`, and the counts a decision at `now` rests on: the cached completed
    /// buckets plus the current one.
    #[inline]
    fn evidence_at(&self, now: Duration) -> (u64, Evidence) {
        let (bucket, current) = self.current_at(now);
        let [sum, count, last_sum, last_count] = self.completed.get_or_refresh(bucket, || {
            let completed = self.window.view_at(now, View::Completed);
            let totals = completed.totals();
            let last = completed.iter().last().unwrap_or_default();
            // Once per bucket, as the totals: the calls counted per band since the last fold
            // become the bands' rates (a fold of a bucket already folded does nothing); when
            // another band has just begun to arrive, the default band's rate starts from the
            // newest bucket's calls, all of the default band until then.
            self.arrivals.fold(bucket, || Counts::unpack(last).calls());
            if self.arrivals.mixed() && self.others_quiet() {
                self.arrivals.unmix();
            }
            [totals.sum, totals.count, last.sum, last.count]
        });
        let evidence = Evidence {
            window: Counts::unpack(current + BucketStats { sum, count }),
            recent: Counts::unpack(
                current
                    + BucketStats {
                        sum: last_sum,
                        count: last_count,
                    },
            ),
        };
        (bucket, evidence)
    }

    /// The bucket of `now` and what it holds so far: as this CPU read it in the
    /// [`FRESH`](Self::FRESH) period of `now` at an earlier instant of the same bucket, or
    /// read afresh (moving the window to `now`, so that an outcome a caller records later at
    /// this same instant lands in the newest bucket rather than in one that has since
    /// expired).
    #[inline]
    fn current_at(&self, now: Duration) -> (u64, BucketStats) {
        let Some(current) = &self.current else {
            return self.window.advance_and_read(now);
        };
        let nanos = saturating_nanos(now);
        let mut read = None;
        let [read_at, bucket, sum, count] =
            current
                .here()
                .get_or_refresh(nanos / saturating_nanos(Self::FRESH), || {
                    let (bucket, current) = self.window.advance_and_read(now);
                    read = Some((bucket, current));
                    [nanos, bucket, current.sum, current.count]
                });
        if let Some(read) = read {
            return read;
        }
        // A read at this very instant serves only a clock whose recent time stands still
        // between its ticks: a clock that stands still by hand (a test's) reads afresh, so
        // that an outcome recorded at the instant of a decision weighs in the next one.
        let served = read_at < nanos || !self.window.clock().recent_resolution().is_zero();
        if served && bucket == self.window.bucket_at(now) {
            return (bucket, BucketStats { sum, count });
        }
        self.window.advance_and_read(now)
    }

    /// The drop probability for the given evidence: the hot path, which skips the weight
    /// (two divisions) whenever it cannot matter.
    #[inline]
    fn decide(&self, evidence: Evidence) -> f64 {
        let Counts {
            admitted,
            accepts,
            rejected,
        } = evidence.window;
        if admitted + rejected < self.config.min_requests {
            return 0.0;
        }
        let accepted = self.config.k * accepts as f64;
        if rejected == 0 {
            return probability(admitted as f64, accepted);
        }
        probability(self.requests(evidence).1, accepted)
    }

    /// `(rejection weight, requests)` for the given evidence.
    fn requests(&self, evidence: Evidence) -> (f64, f64) {
        // `Adaptive` judges the backend by its newest outcomes when there are any.
        let judged = if evidence.recent.admitted > 0 {
            evidence.recent
        } else {
            evidence.window
        };
        let weight = self
            .config
            .rejections
            .weight(judged.accepts, judged.admitted, self.config.k);
        let window = evidence.window;
        (
            weight,
            window.admitted as f64 + weight * window.rejected as f64,
        )
    }
}

/// # The weight of rejected calls
impl Rejections {
    /// The weight `w` of rejected calls, given the window's accepts and admitted calls.
    pub fn weight(self, accepts: u64, admitted: u64, k: f64) -> f64 {
        match self {
            Self::Sre => 1.0,
            Self::Ignore => 0.0,
            Self::Adaptive => {
                let success = if admitted == 0 {
                    0.0
                } else {
                    accepts as f64 / admitted as f64
                };
                if k <= 1.0 {
                    // (1 − s) / 0: every failure counts fully, a perfect record not at all.
                    if success < 1.0 { 1.0 } else { 0.0 }
                } else {
                    ((1.0 - success) / (1.0 - 1.0 / k)).clamp(0.0, 1.0)
                }
            }
        }
    }
}

/// A band's rejection probability when a total `total` is allocated from the lowest band
/// upward: `clamp((total − below) / own, 0, 1)`, where `below` is the share of the calls in the
/// bands below it and `own` its own share (a band with no share is rejected outright once the
/// bands below are exhausted).
#[inline]
fn allocate(total: f64, below: f64, own: f64) -> f64 {
    let excess = total - below;
    if excess <= 0.0 {
        0.0
    } else if excess >= own {
        1.0
    } else {
        excess / own
    }
}

/// `max(0, (requests − accepted) / (requests + 1))`, with `accepted = k · accepts`.
#[inline]
fn probability(requests: f64, accepted: f64) -> f64 {
    if requests <= accepted {
        0.0
    } else {
        ((requests - accepted) / (requests + 1.0)).clamp(0.0, 1.0)
    }
}

/// # Observing
impl<C: Clock> SreBreaker<C> {
    /// The breaker's reading of its clock, the instant `allow_at` and `record_at` take: its
    /// [`recent`](Clock::recent) time when that stands still for at most a tenth of a bucket
    /// (a [`BucketClock`]), its precise time otherwise.
    #[inline]
    pub fn now(&self) -> Duration {
        self.window.clock().now()
    }

    /// The window's counts and the decision they lead to, now.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.snapshot_at(self.now())
    }

    /// The window's counts and the decision they lead to, at `now`.
    pub fn snapshot_at(&self, now: Duration) -> BreakerSnapshot {
        // Exact: the whole window read afresh, not the per-bucket cache.
        let view = self.window.view_at(now, View::IncludingCurrent);
        let recent = view
            .iter()
            .skip(view.len().saturating_sub(2))
            .fold(BucketStats::default(), |total, bucket| total + bucket);
        let counts = Counts::unpack(view.totals());
        let evidence = Evidence {
            window: counts,
            recent: Counts::unpack(recent),
        };
        let (rejection_weight, requests) = self.requests(evidence);
        let drop_probability = self.decide(evidence);
        BreakerSnapshot {
            admitted: counts.admitted,
            accepts: counts.accepts,
            rejected: counts.rejected,
            rejection_weight,
            requests,
            drop_probability,
            state: state_of(drop_probability),
        }
    }

    /// Whether the breaker is rejecting calls now.
    pub fn state(&self) -> BreakerState {
        state_of(self.drop_probability_at(self.now()))
    }
}

impl<C> SreBreaker<C> {
    /// Records the outcome of an admitted call at instant `now` (the breaker's
    /// [`now`](Self::now)). [`Outcome::Ignore`] records nothing.
    ///
    /// `now` should be the instant the outcome arrived. An instant older than the window's
    /// newest bucket (the clock stepped back) counts in the newest bucket; but an outcome
    /// recorded at its call's admission instant, with no write since to move the window on,
    /// lands in that instant's bucket, already expired if the call took longer than the
    /// window: it would be lost.
    ///
    /// The call counts as one of the current [`RequestContext`]'s criticality in the metrics;
    /// [`record_for_at`](Self::record_for_at) names it.
    #[inline]
    pub fn record_at(&self, now: Duration, outcome: Outcome) {
        self.record_for_at(now, current_criticality(), outcome);
    }

    /// Records the outcome of an admitted call of `criticality` at instant `now`, as
    /// [`record_at`](Self::record_at) does.
    #[inline]
    pub fn record_for_at(&self, now: Duration, criticality: Criticality, outcome: Outcome) {
        let class = criticality.class();
        match outcome {
            Outcome::Success => {
                self.window.add_at(now, SUCCESS);
                self.metrics.success(class);
            }
            Outcome::Failure => {
                self.window.add_at(now, FAILURE);
                // This CPU's next decision reads the current bucket afresh: a failure weighs
                // in at once where it was seen, and within `FRESH` (or the clock's tick)
                // elsewhere.
                if let Some(current) = &self.current {
                    current.here().invalidate();
                }
                self.metrics.failure(class);
            }
            Outcome::Ignore => {}
        }
    }

    /// The configuration the breaker was built with.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The breaker's clock.
    pub fn clock(&self) -> &C {
        self.window.clock().inner()
    }
}

fn state_of(drop_probability: f64) -> BreakerState {
    if drop_probability > 0.0 {
        BreakerState::Throttling { drop_probability }
    } else {
        BreakerState::Closed
    }
}

/// # Gauges on an idle process
///
/// Decisions set the `rampart_breaker_drop_probability` gauge; without calls it would keep
/// the value of the last one. These methods set it from the window at the current instant.
impl<C: Clock> SreBreaker<C> {}

impl<C: fmt::Debug> fmt::Debug for SreBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SreBreaker")
            .field("config", &self.config)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rampart_core::{ManualClock, Stripes, WindowConfig};

    use super::*;

    /// A breaker on `clock` whose window has one stripe, so that every decision of the test's
    /// thread, on whatever CPU, shares one read of the current bucket (unless `seed`).
    fn one_stripe<C: Clock + Clone>(clock: &C, seed: Option<u64>) -> SreBreaker<C> {
        let config = BreakerConfig {
            seed,
            ..BreakerConfig::default()
        };
        let window = WindowConfig::spanning(config.window, config.buckets)
            .with_stripes(Stripes::Exactly(1))
            .validated()
            .expect("valid");
        SreBreaker::from_valid(config, window, clock.clone(), None)
    }

    /// A breaker as [`one_stripe`] builds it, throttling hard once `advance` has moved the
    /// clock (100 failures recorded there), and that instant.
    fn throttling<C: Clock + Clone>(
        clock: &C,
        seed: Option<u64>,
        advance: impl FnOnce(),
    ) -> (SreBreaker<C>, Duration) {
        let breaker = one_stripe(clock, seed);
        advance();
        let read = clock.now();
        for _ in 0..100 {
            breaker.record_at(read, Outcome::Failure);
        }
        assert!(breaker.drop_probability_at(read) > 0.9);
        (breaker, read)
    }

    /// Successes enough to end the throttling, once a decision sees them.
    fn recover<C: Clock>(breaker: &SreBreaker<C>, at: Duration) {
        for _ in 0..1_000 {
            breaker.record_at(at, Outcome::Success);
        }
    }

    #[test]
    fn a_read_of_the_current_bucket_serves_later_decisions_for_fresh() {
        let clock = ManualClock::new();
        let (breaker, read) = throttling(&clock, None, || {
            clock.advance(SreBreaker::<ManualClock>::FRESH * 3);
        });
        recover(&breaker, read + Duration::from_micros(1));
        let within = read + Duration::from_micros(9);
        assert!(
            breaker.drop_probability_at(within) > 0.9,
            "the read at {read:?} still serves"
        );
        let after = read + SreBreaker::<ManualClock>::FRESH;
        assert_eq!(breaker.drop_probability_at(after), 0.0, "read afresh");
    }

    #[test]
    fn a_failure_makes_its_cpus_next_decision_read_afresh() {
        let clock = ManualClock::new();
        let breaker = one_stripe(&clock, None);
        clock.advance(SreBreaker::<ManualClock>::FRESH * 3);
        let read = clock.now();
        assert_eq!(breaker.drop_probability_at(read), 0.0);
        for _ in 0..100 {
            breaker.record_at(read + Duration::from_micros(1), Outcome::Failure);
        }
        assert!(breaker.drop_probability_at(read + Duration::from_micros(9)) > 0.9);
    }

    #[test]
    fn a_seeded_breaker_reads_afresh_at_every_decision() {
        let clock = ManualClock::new();
        let (breaker, read) = throttling(&clock, Some(1), || {
            clock.advance(SreBreaker::<ManualClock>::FRESH * 3);
        });
        recover(&breaker, read + Duration::from_micros(1));
        assert_eq!(
            breaker.drop_probability_at(read + Duration::from_micros(9)),
            0.0
        );
    }

    #[test]
    fn a_decision_at_the_instant_of_the_last_read_reads_afresh_on_a_clock_moved_by_hand() {
        let clock = ManualClock::new();
        let (breaker, read) = throttling(&clock, None, || clock.advance(Duration::from_secs(1)));
        recover(&breaker, read);
        assert_eq!(breaker.drop_probability_at(read), 0.0);
    }

    /// On a clock whose recent time stands still between ticks of a millisecond.
    #[test]
    fn a_read_serves_the_instant_it_was_made_at_on_a_clock_that_ticks() {
        let clock = ManualClock::new().with_recent_resolution(Duration::from_millis(1));
        let (breaker, read) = throttling(&clock, None, || clock.advance(Duration::from_secs(1)));
        recover(&breaker, read);
        assert!(breaker.drop_probability_at(read) > 0.9, "served");
        let after = read + SreBreaker::<ManualClock>::FRESH;
        assert_eq!(breaker.drop_probability_at(after), 0.0, "read afresh");
    }

    #[test]
    fn the_packing_keeps_three_counts_apart() {
        let stats = BucketStats {
            sum: 3 * REJECTED + 7,
            count: 3,
        };
        assert_eq!(
            Counts::unpack(stats),
            Counts {
                admitted: 10,
                accepts: 7,
                rejected: 3
            }
        );
    }

    #[test]
    fn allocation_fills_the_lowest_bands_first_and_keeps_the_total() {
        // Bands with shares 0.6 (below) and 0.4 (above).
        let (low, high) = (0.6, 0.4);
        let per_band = |total: f64| (allocate(total, 0.0, low), allocate(total, low, high));
        let (l, h) = per_band(0.2);
        assert!((l - 0.2 / 0.6).abs() < 1e-12 && h == 0.0, "{l} {h}");
        let (l, h) = per_band(0.8);
        assert!(l == 1.0 && (h - 0.5).abs() < 1e-12, "{l} {h}");
        for total in [0.0, 0.1, 0.6, 0.75, 0.99] {
            let (l, h) = per_band(total);
            assert!((low * l + high * h - total).abs() < 1e-12, "{total}");
        }
        assert_eq!(allocate(0.3, 0.0, 1.0), 0.3, "one band: the total itself");
        assert_eq!(
            allocate(0.3, 0.2, 0.0),
            1.0,
            "no share, the bands below exhausted"
        );
        assert_eq!(
            allocate(0.3, 0.3, 0.0),
            0.0,
            "no share, nothing left for it"
        );
    }

    #[test]
    fn adaptive_weight_follows_the_success_ratio_of_admitted_calls() {
        let k = 2.0;
        let weight = |accepts, admitted| Rejections::Adaptive.weight(accepts, admitted, k);
        assert_eq!(weight(0, 0), 1.0, "nothing admitted: counts fully");
        assert_eq!(weight(0, 10), 1.0, "all failing");
        assert_eq!(weight(5, 10), 1.0, "at the SRE equilibrium s = 1/k");
        assert!((weight(6, 10) - 0.8).abs() < 1e-12);
        assert!((weight(9, 10) - 0.2).abs() < 1e-12);
        assert_eq!(
            weight(10, 10),
            0.0,
            "all succeeding: rejections do not count"
        );
        assert_eq!(Rejections::Adaptive.weight(9, 10, 1.0), 1.0);
        assert_eq!(Rejections::Adaptive.weight(10, 10, 1.0), 0.0);
        assert_eq!(Rejections::Sre.weight(10, 10, k), 1.0);
        assert_eq!(Rejections::Ignore.weight(0, 10, k), 0.0);
    }
}
