//! [`BbrLimiter`]: the BBR-style adaptive limiter (admission, completion and the window's
//! statistics), with no tower types. The permits it hands out are in `permit.rs`, its gauges
//! in `metrics.rs`.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::saturating_nanos;
use rampart_core::{
    Arrival, Clock, ConfigError, Criticality, OncePerBucket, PerBucketCache, SystemClock,
    ValidWindowConfig, View,
};

use crate::cpu::CpuUsage;
use crate::events::Transitions;
use crate::ledger::{Ledger, mean_rt_us, passes};
use crate::metrics::LimiterMetrics;
use crate::priority::Priorities;
use crate::{BbrConfig, Gate, Overloaded, SchedulingDelay, SystemCpu};

/// Drops are remembered at this resolution: finer would make every shed request write to a
/// shared cache line.
const DROP_RESOLUTION_NANOS: u64 = 1_000_000;

/// The statistics of the completed buckets, computed once per bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    /// The most completions in one completed bucket (at least 1).
    pub(crate) max_pass: u64,
    /// The lowest mean response time of a completed bucket, in µs (at least 1).
    pub(crate) min_rt_us: f64,
    /// The limit: `floor(L + headroom × √L)`, where `L = max_pass × min_rt × buckets per
    /// second` (Little's law on the best bucket).
    pub(crate) max_inflight: u64,
    /// The mean response time of the newest completed bucket, in µs (0 when empty).
    pub(crate) last_rt_us: f64,
    /// Whether any completed bucket of the window (or the held minimum) has a response time:
    /// without one, `min_rt_us` is a placeholder.
    pub(crate) measured: bool,
}

impl Stats {
    fn pack(self) -> [u64; 5] {
        [
            self.max_pass,
            self.min_rt_us.to_bits(),
            self.max_inflight,
            self.last_rt_us.to_bits(),
            u64::from(self.measured),
        ]
    }

    fn unpack([max_pass, min_rt, max_inflight, last_rt, measured]: [u64; 5]) -> Self {
        Self {
            max_pass,
            min_rt_us: f64::from_bits(min_rt),
            max_inflight,
            last_rt_us: f64::from_bits(last_rt),
            measured: measured != 0,
        }
    }
}

/// What a limiter sees and decides, at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BbrSnapshot {
    /// The CPU usage the limiter reads (0 for a gate that never reads it).
    pub cpu: f64,
    /// Requests admitted and not yet completed.
    pub inflight: u64,
    /// The limit: the concurrency the service has proven it sustains without queueing
    /// (`L = max_pass × min_rt`) and `headroom × √L` more (see [`BbrConfig::headroom`]).
    pub max_inflight: u64,
    /// The most completions in one completed bucket of the window.
    pub max_pass: u64,
    /// The lowest mean response time of a completed bucket of the window.
    pub min_rt: Duration,
    /// The mean response time of the newest completed bucket (zero when it is empty).
    pub last_rt: Duration,
    /// The runtime's scheduling delay (zero without a delay source; see
    /// [`SchedulingDelay`]).
    pub delay: Duration,
    /// Whether the gate says the service is overloaded.
    pub overloaded: bool,
    /// Whether a drop happened less than `cooldown` ago.
    pub cooling_down: bool,
}

/// A server-side limiter that admits everything until the service runs hot, then sheds the
/// requests beyond what it has proven it can carry (Kratos's BBR, after TCP BBR).
///
/// Over a rolling window (10 s in 100 buckets) it counts completions per bucket and their
/// response times. The best bucket's throughput and the lowest bucket-mean latency give, by
/// Little's law, the concurrency the service sustains without queueing:
/// `L = max_pass × min_rt × buckets per second`. Its limit adds a little queue to keep the
/// service busy while requests arrive at random: `max_inflight = floor(L + headroom × √L)`
/// ([`BbrConfig::headroom`], 1 by default; 0 gives Kratos's `floor(L)`). A request is shed
/// when
///
/// - more than one request is in flight, and more than `max_inflight`; and
/// - the [`Gate`] says the service is overloaded (by default: the smoothed CPU usage is at or
///   above 80 %), or the last drop was less than `cooldown` (1 s) ago.
///
/// ```
/// use rampart_core::ManualClock;
/// use rampart_ratelimit::{BbrConfig, ManualCpu, Overloaded};
///
/// let cpu = ManualCpu::new(0.2);
/// let limiter = BbrConfig::default().build_with(ManualClock::new(), cpu.clone())?;
/// let first = limiter.acquire().expect("a cool service admits everything");
/// let second = limiter.acquire().expect("a cool service admits everything");
/// cpu.set(0.95); // hot, and nothing has completed yet: the proven capacity is tiny
/// assert_eq!(limiter.acquire().unwrap_err(), Overloaded::new());
/// drop((first, second)); // permits record their completion when dropped
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Cost
///
/// While the service is cool an admission is a few atomic loads and one increment: the
/// permit's reference to the limiter's window, which is also what counts it in flight (and,
/// only while requests of several criticality bands arrive, a second for its band's
/// arrivals). The window's statistics are computed at most once per bucket, into a cache read
/// without a lock. A completion is one window record (one increment; two for a timed
/// request) and the reference's decrement.
///
/// # Clock
///
/// On a clock whose recent time ticks at least ten times per bucket (the default
/// [`SystemClock`]'s kernel coarse clock, 1–4 ms), `acquire`, the layer and a permit's
/// completion place the request at that time, and time a sample of requests (the first of
/// each tick, one in 16 of the rest) by reading the precise `now` at both ends: every
/// completion is counted, and a bucket's mean response time is its timed requests' mean. A
/// request with a deadline reads `now` besides, to measure the time it has left. On any
/// other clock every request reads `now` once at each end and is timed. `acquire_at` and
/// [`Permit::complete_at`] take instants from a caller that has read the clock's `now`; such
/// a request is always timed.
///
/// [`Permit::complete_at`]: crate::Permit::complete_at
pub struct BbrLimiter<C = SystemClock, U = SystemCpu> {
    config: BbrConfig,
    /// The window of completions; its references beyond this one are the requests in flight.
    ledger: Arc<Ledger<C>>,
    stats: PerBucketCache<5>,
    /// Each criticality band's share of the capacity and its cap, for shedding the least
    /// important first.
    priorities: Priorities,
    /// One more than the nanosecond instant of the most recent drop; 0 before any.
    last_drop: AtomicU64,
    /// Claimed by the first request of each bucket, which publishes the gauges.
    published: OncePerBucket,
    buckets_per_second: f64,
    /// The lowest bucket-mean response time in use (µs, as `f64` bits): it may fall at any time
    /// but rise only once the limiter has stopped shedding (see `hold_min_rt`).
    held_min_rt_us: AtomicU64,
    cpu: U,
    /// The runtime's scheduling delay, read when `config.max_delay` is set.
    delay: Option<Arc<dyn SchedulingDelay>>,
    metrics: LimiterMetrics,
    /// Reports the starts and stops of shedding (feature `tracing`).
    events: Transitions,
}

/// # Construction
impl<C: Clock, U: CpuUsage> BbrLimiter<C, U> {
    pub(crate) fn new(config: BbrConfig, clock: C, cpu: U) -> Result<Self, ConfigError> {
        let window = config.validated_window()?;
        Ok(Self::from_valid(config, window, clock, cpu, None))
    }

    /// A limiter of a configuration validated with its window's shape (`window`), which
    /// therefore builds without failing; a member of a keyed group reports with its `key`.
    pub(crate) fn from_valid(
        config: BbrConfig,
        window: ValidWindowConfig,
        clock: C,
        cpu: U,
        key: Option<&str>,
    ) -> Self {
        let window = window.build_with(clock);
        let buckets_per_second = 1.0 / window.bucket_duration().as_secs_f64();
        let metrics = LimiterMetrics::new(&config.name, key);
        Self {
            ledger: Ledger::new(window, metrics.inflight_gauge()),
            metrics,
            events: Transitions::new(&config.name, key),
            stats: PerBucketCache::new(),
            priorities: Priorities::new(),
            last_drop: AtomicU64::new(0),
            published: OncePerBucket::new(),
            buckets_per_second,
            held_min_rt_us: AtomicU64::new(f64::INFINITY.to_bits()),
            cpu,
            delay: None,
            config,
        }
    }

    /// This limiter, reading the runtime's scheduling delay from `delay` (instants from the
    /// limiter's clock) and shedding while it exceeds the configuration's `max_delay`.
    #[must_use]
    pub fn with_delay(self, delay: impl SchedulingDelay) -> Self {
        self.with_shared_delay(Arc::new(delay))
    }

    /// As [`with_delay`](Self::with_delay), with a source other limiters share.
    #[must_use]
    pub(crate) fn with_shared_delay(self, delay: Arc<dyn SchedulingDelay>) -> Self {
        Self {
            delay: Some(delay),
            ..self
        }
    }
}

/// # Deciding
impl<C: Clock, U: CpuUsage> BbrLimiter<C, U> {
    /// The arrival of a request now: the instant it is placed at (the clock's recent time when
    /// that is fine enough for the window) and, if it is timed, its precise start.
    #[inline]
    pub(crate) fn arrival(&self) -> Arrival {
        self.ledger.arrival()
    }

    /// The instant the limiter places events at now, for a reading outside any request.
    pub(crate) fn instant(&self) -> Duration {
        self.ledger.timing.instant(self.ledger.window.clock())
    }

    /// Decides for a request of `criticality` (`None`: it said none, and counts as the
    /// default); on admission returns the reference to the ledger that counts the request in
    /// flight until it is dropped.
    #[inline]
    pub(crate) fn admit(
        &self,
        now: Duration,
        criticality: Option<Criticality>,
    ) -> Result<Arc<Ledger<C>>, Overloaded> {
        let counted = criticality.unwrap_or_default();
        let band = counted.band();
        let inflight = Ledger::inflight(&self.ledger);
        let bucket = self.ledger.window.bucket_at(now);
        // Read from the per-bucket cache at most once per decision, and only if needed.
        let stats = OnceCell::new();
        let stats = || *stats.get_or_init(|| self.stats_in(bucket, now));
        self.publish_once_per_bucket(bucket, now, inflight, &stats);
        self.priorities.arrived(counted);
        if self.should_drop(now, inflight, band, &stats) {
            self.metrics.shed(counted.class());
            self.events.shed(|| stats().max_inflight);
            if self.config.enforce {
                return Err(Overloaded::shedding(criticality));
            }
        }
        self.metrics.admitted(counted.class());
        Ok(Arc::clone(&self.ledger))
    }

    /// Whether a request arriving at `now` with `inflight` requests in flight is shed.
    ///
    /// - Scheduling delay: the runtime runs ready work later than `max_delay`, so requests
    ///   are queueing in front of the limiter, where its in-flight count cannot see them (a
    ///   handler that never yields shows the limiter one request in flight). Shedding them
    ///   until the runtime catches up costs it little (a refusal is cheap) and drains the
    ///   queue. Whatever the gate: a one-worker runtime on a larger host never makes the
    ///   host's CPU hot. (The probe reads no delay while the runtime is not busy, so a host
    ///   that preempts the process sheds nothing.)
    /// - In flight: while the gate says the service is overloaded (or a drop of an overloaded
    ///   service was less than `cooldown` ago), more than one request, and more than the cap
    ///   of the request's criticality band: `max_inflight` for traffic of one band; when
    ///   several arrive, a ladder around it, the threshold band at the limit, the bands above
    ///   higher, the bands below lower (see `priority.rs`).
    #[inline]
    fn should_drop(
        &self,
        now: Duration,
        inflight: u64,
        band: usize,
        stats: &impl Fn() -> Stats,
    ) -> bool {
        if self.runtime_late(now) {
            self.remember_drop(now);
            return true;
        }
        if inflight <= 1 {
            return false;
        }
        let overloaded = self.overloaded(stats);
        if !overloaded && !self.cooling_down(now) {
            return self.held_back_while_warm(inflight, band, stats);
        }
        if inflight <= self.priorities.cap(band, stats().max_inflight) {
            return false;
        }
        // With the CPU gate, only a drop of a hot service restarts the cooldown: the CPU stays
        // hot while a server is overloaded, and a drop made because of the cooldown alone
        // would keep it going for ever on a service whose learned limit is below its
        // ordinary concurrency (one worker, 2 ms requests: a limit of 0). A latency gate
        // closes as soon as shedding works, so there every drop restarts it.
        if overloaded || self.config.gate.inflation().is_some() {
            self.remember_drop(now);
        }
        true
    }

    /// Whether a request of `band` is shed before the gate opens: while the CPU is warm (at
    /// or above three quarters of `cpu_threshold`), a band below another band's demand may
    /// not take more than twice `max_inflight` in flight. A step in load queues requests
    /// for as long as the smoothed CPU takes to cross the threshold (a few hundred
    /// milliseconds); this keeps that queue from the more important requests. Traffic of one
    /// band, a cool service or the latency gate alone are never held back.
    #[inline]
    fn held_back_while_warm(&self, inflight: u64, band: usize, stats: &impl Fn() -> Stats) -> bool {
        self.config.gate.uses_cpu()
            && inflight > stats().max_inflight.saturating_mul(2)
            && self.priorities.demand_above(band)
            && self.cpu.usage() >= 0.75 * self.config.cpu_threshold
    }

    /// Whether the runtime runs ready work later than `max_delay`.
    #[inline]
    fn runtime_late(&self, now: Duration) -> bool {
        match (&self.delay, self.config.max_delay) {
            (Some(delay), Some(max_delay)) => delay.delay(now) > max_delay,
            _ => false,
        }
    }

    fn overloaded(&self, stats: &impl Fn() -> Stats) -> bool {
        let cpu_hot = || self.cpu.usage() >= self.config.cpu_threshold;
        let latency_hot = |inflation: f64| {
            let stats = stats();
            stats.last_rt_us > inflation * stats.min_rt_us
        };
        match self.config.gate {
            Gate::Cpu => cpu_hot(),
            Gate::Latency { inflation } => latency_hot(inflation),
            Gate::Either { inflation } => cpu_hot() || latency_hot(inflation),
        }
    }

    fn cooling_down(&self, now: Duration) -> bool {
        let last = self.last_drop.load(Ordering::Relaxed);
        last != 0
            && saturating_nanos(now)
                < (last - 1).saturating_add(saturating_nanos(self.config.cooldown))
    }

    /// Remembers the most recent drop: the cooldown runs from it.
    fn remember_drop(&self, now: Duration) {
        let now = saturating_nanos(now).saturating_add(1);
        let last = self.last_drop.load(Ordering::Relaxed);
        if last == 0 || now >= last.saturating_add(DROP_RESOLUTION_NANOS) {
            self.last_drop.fetch_max(now, Ordering::Relaxed);
        }
    }
}

/// # Statistics
impl<C: Clock, U: CpuUsage> BbrLimiter<C, U> {
    /// The statistics of the completed buckets before `bucket` (the one `now` is in), from the
    /// per-bucket cache; computing them also updates the held minimum response time.
    pub(crate) fn stats_in(&self, bucket: u64, now: Duration) -> Stats {
        Stats::unpack(self.stats.get_or_refresh(bucket, || {
            // Rotated first, so that a completion at an earlier instant recorded after this
            // read lands in the newest bucket, never in one these statistics have summed.
            self.ledger.window.advance_to(now);
            let (stats, held) = self.compute_stats(now);
            self.held_min_rt_us.store(held.to_bits(), Ordering::Relaxed);
            let last_pass = || {
                let completed = self.ledger.window.view_at(now, View::Completed);
                completed
                    .into_iter()
                    .last()
                    .map_or(0, |newest| passes(&newest))
            };
            let moved = self.priorities.refresh(
                bucket,
                stats.max_pass as f64,
                stats.max_inflight,
                last_pass,
            );
            if let Some((from, to)) = moved {
                self.events
                    .threshold_moved(from, to, || self.cooling_down(now));
            }
            stats.pack()
        }))
    }

    /// The statistics of the completed buckets at `now`, and the minimum response time to hold
    /// from now on (µs; infinite while none has been seen).
    ///
    /// Under sustained overload, once the buckets from before it have left the window, the
    /// lowest bucket-mean response time is that of requests that queued behind the limit
    /// itself: a limit learned from it would justify itself, and keep the queue. So while the
    /// limiter is shedding (a drop within `cooldown`), the minimum can fall but not rise; it
    /// follows the window again once shedding has stopped. (TCP BBR drains its queue every
    /// 10 s to re-measure; a shedder cannot drain without refusing work, and needs not: when
    /// the service really has slowed down, the held limit keeps it below capacity, the
    /// gate cools, shedding stops and the minimum is re-learned.)
    fn compute_stats(&self, now: Duration) -> (Stats, f64) {
        let completed = self.ledger.window.view_at(now, View::Completed);
        let (mut max_pass, mut window_min_rt_us, mut last_rt_us) = (1, f64::INFINITY, 0.0);
        for bucket in &completed {
            max_pass = max_pass.max(passes(&bucket));
            let mean = mean_rt_us(&bucket);
            if let Some(mean) = mean {
                window_min_rt_us = window_min_rt_us.min(mean);
            }
            last_rt_us = mean.unwrap_or(0.0);
        }
        let held = f64::from_bits(self.held_min_rt_us.load(Ordering::Relaxed));
        let min_rt_us = if self.cooling_down(now) {
            window_min_rt_us.min(held)
        } else {
            window_min_rt_us
        };
        let stats = self.stats_from(max_pass, min_rt_us, last_rt_us);
        (stats, min_rt_us)
    }

    fn stats_from(&self, max_pass: u64, min_rt_us: f64, last_rt_us: f64) -> Stats {
        let measured = min_rt_us.is_finite();
        let min_rt_us = if measured { min_rt_us.max(1.0) } else { 1.0 };
        let proven = max_pass as f64 * min_rt_us * self.buckets_per_second / 1e6;
        let max_inflight = (proven + self.config.headroom * proven.sqrt()).floor() as u64;
        Stats {
            max_pass,
            min_rt_us,
            max_inflight,
            last_rt_us,
            measured,
        }
    }

    /// Publishes the gauges once per bucket, from whichever request arrives first in it.
    #[inline]
    fn publish_once_per_bucket(
        &self,
        bucket: u64,
        now: Duration,
        inflight: u64,
        stats: &impl Fn() -> Stats,
    ) {
        if self.published.claim(bucket) {
            self.report(now, inflight, || stats().max_inflight);
        }
    }

    /// Sets the gauges from the state at `now` (`inflight` requests in flight, a limit of
    /// `max_inflight()`), and reports the end of shedding once the cooldown has passed.
    pub(crate) fn report(&self, now: Duration, inflight: u64, max_inflight: impl FnOnce() -> u64) {
        self.metrics.publish(
            inflight,
            self.cpu.usage(),
            max_inflight(),
            self.delay_reading(now),
        );
        self.events.bucket_began(|| self.cooling_down(now));
    }

    /// The scheduling delay at `now`, for a limiter that reads one.
    fn delay_reading(&self, now: Duration) -> Option<Duration> {
        match (&self.delay, self.config.max_delay) {
            (Some(delay), Some(_)) => Some(delay.delay(now)),
            _ => None,
        }
    }

    /// The limit at `now`, computed without changing the window or the cached statistics.
    pub(crate) fn max_inflight_at(&self, now: Duration) -> u64 {
        self.compute_stats(now).0.max_inflight
    }
}

/// # Observing
impl<C: Clock, U: CpuUsage> BbrLimiter<C, U> {
    /// What the limiter sees and decides, now.
    pub fn snapshot(&self) -> BbrSnapshot {
        self.snapshot_at(self.instant())
    }

    /// What the limiter sees and decides, at `now`.
    pub fn snapshot_at(&self, now: Duration) -> BbrSnapshot {
        let (stats, _) = self.compute_stats(now);
        BbrSnapshot {
            cpu: if self.config.gate.uses_cpu() {
                self.cpu.usage()
            } else {
                0.0
            },
            inflight: self.inflight(),
            max_inflight: stats.max_inflight,
            max_pass: stats.max_pass,
            min_rt: Duration::from_secs_f64(stats.min_rt_us / 1e6),
            last_rt: Duration::from_secs_f64(stats.last_rt_us / 1e6),
            delay: self
                .delay
                .as_ref()
                .map_or(Duration::ZERO, |delay| delay.delay(now)),
            overloaded: self.overloaded(&|| self.stats_in(self.ledger.window.bucket_at(now), now)),
            cooling_down: self.cooling_down(now),
        }
    }
}

impl<C, U> BbrLimiter<C, U> {
    /// The configuration the limiter was built with.
    pub fn config(&self) -> &BbrConfig {
        &self.config
    }

    /// The limiter's clock: instants passed to `acquire_at` and `complete_at` must come from it.
    pub fn clock(&self) -> &C {
        self.ledger.window.clock()
    }

    /// The limiter's CPU signal.
    pub fn cpu(&self) -> &U {
        &self.cpu
    }

    /// The number of the window's bucket `now` falls in.
    pub(crate) fn window_bucket_at(&self, now: Duration) -> u64 {
        self.ledger.window.bucket_at(now)
    }

    /// How many of the window's buckets make a second.
    pub(crate) fn buckets_per_second(&self) -> f64 {
        self.buckets_per_second
    }

    /// Requests admitted and not yet completed.
    pub(crate) fn inflight(&self) -> u64 {
        Ledger::inflight(&self.ledger)
    }

    /// Whether a request is in flight: a keyed group keeps such a limiter, whose permits hold
    /// only its ledger.
    pub(crate) fn has_inflight(&self) -> bool {
        self.inflight() > 0
    }

    pub(crate) fn metrics(&self) -> &LimiterMetrics {
        &self.metrics
    }
}

impl<C: fmt::Debug, U: fmt::Debug> fmt::Debug for BbrLimiter<C, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BbrLimiter")
            .field("config", &self.config)
            .field("inflight", &self.inflight())
            .field("cpu", &self.cpu)
            .field("reads_delay", &self.delay.is_some())
            .finish_non_exhaustive()
    }
}
