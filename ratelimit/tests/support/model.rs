//! The reference models: what one limiter must count (requests in flight, and the passes and
//! response times of real completions, per bucket) and what it may decide, and which limiter a
//! keyed group serves each key with.

use std::collections::BTreeMap;
use std::time::Duration;

use rampart_ratelimit::{BbrConfig, BbrSnapshot, Gate};
use rampart_testkit::buckets::Buckets;

/// The limiter remembers drops at this resolution (a shed within it of the remembered one
/// does not move it).
const DROP_RESOLUTION: Duration = Duration::from_millis(1);

/// What the signals read at an instant: CPU usage and the runtime's scheduling delay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signals {
    pub(crate) cpu: f64,
    pub(crate) delay: Duration,
}

/// The statistics of a window's completed buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    max_pass: u64,
    /// The lowest bucket-mean response time in µs; infinite when no bucket has one.
    min_rt_us: f64,
    /// The newest completed bucket's mean response time in µs (0 when empty).
    last_rt_us: f64,
}

/// One limiter as it must behave: a request is in flight from its admission until it
/// completes or is dropped; only a completion (a response or an error) counts a pass and its
/// response time, in the bucket of the instant it arrives (or the newest bucket, if the clock
/// stepped back).
///
/// A decision moves the window to its instant (the limiter computes its statistics once per
/// bucket, after moving the window to that bucket), and so does a snapshot of a gate that
/// reads response times; a completion at an earlier instant (the clock stepped back) then
/// counts in the newest bucket.
///
/// While the limiter cools down after a drop, its minimum response time may be one held from
/// an earlier computation, and a computation made then stays cached for the rest of its
/// bucket: the model does not know what was held, so there it checks decisions by their
/// necessary conditions only, and exactly everywhere else.
#[derive(Debug)]
pub(crate) struct LimiterModel {
    config: BbrConfig,
    /// The window's buckets, numbered from the clock's reading when the limiter was built,
    /// and the newest one the window has moved to.
    buckets: Buckets,
    buckets_per_second: f64,
    /// Per bucket: the sum of response times in µs and the number of completions, for the
    /// buckets of the newest window only.
    slots: BTreeMap<u64, (u64, u64)>,
    /// Requests in flight.
    pub(crate) inflight: u64,
    /// One more than the nanosecond instant of the remembered drop; 0 before any.
    last_drop: u64,
    /// Statistics cached for the buckets up to this one may hold a held minimum response time.
    uncertain_through: Option<u64>,
}

impl LimiterModel {
    /// A limiter built from `config` when the clock read `origin`.
    pub(crate) fn new(config: &BbrConfig, origin: Duration) -> Self {
        let window = config.window_config();
        Self {
            config: config.clone(),
            buckets: Buckets::new(origin, window.bucket_duration, window.buckets),
            buckets_per_second: 1.0 / window.bucket_duration.as_secs_f64(),
            slots: BTreeMap::new(),
            inflight: 0,
            last_drop: 0,
            uncertain_through: None,
        }
    }

    /// The statistics of the completed buckets at `now`, from the window.
    fn stats(&self, now: Duration) -> Stats {
        let current = self.buckets.at(now);
        let first = self.buckets.first(current);
        let mut stats = Stats {
            max_pass: 1,
            min_rt_us: f64::INFINITY,
            last_rt_us: 0.0,
        };
        for (&slot, &(sum, count)) in self.slots.range(first..current) {
            stats.max_pass = stats.max_pass.max(count);
            let mean = sum as f64 / count as f64;
            stats.min_rt_us = stats.min_rt_us.min(mean);
            if slot + 1 == current {
                stats.last_rt_us = mean;
            }
        }
        stats
    }

    /// `(min_rt in µs, max_inflight)` from a window minimum, as the crate documents them.
    fn limit(&self, max_pass: u64, min_rt_us: f64) -> (f64, u64) {
        let min_rt_us = if min_rt_us.is_finite() {
            min_rt_us.max(1.0)
        } else {
            1.0
        };
        let proven = max_pass as f64 * min_rt_us * self.buckets_per_second / 1e6;
        let max_inflight = (proven + self.config.headroom * proven.sqrt()).floor() as u64;
        (min_rt_us, max_inflight)
    }

    fn cooling_down(&self, now: Duration) -> bool {
        self.last_drop != 0
            && nanos(now) < (self.last_drop - 1).saturating_add(nanos(self.config.cooldown))
    }

    fn remember_drop(&mut self, now: Duration) {
        let now = nanos(now).saturating_add(1);
        if self.last_drop == 0 || now >= self.last_drop.saturating_add(nanos(DROP_RESOLUTION)) {
            self.last_drop = self.last_drop.max(now);
        }
    }

    /// Moves the window to the bucket of `now`.
    fn advance(&mut self, now: Duration) {
        self.buckets.advance(now);
    }

    /// The limiter may compute its statistics at `now` (a decision, or a snapshot): if it cools
    /// down, they may hold a minimum response time the model does not know, for the rest of
    /// this bucket.
    fn may_compute(&mut self, now: Duration) {
        if self.cooling_down(now) {
            let bucket = self.buckets.at(now);
            self.uncertain_through = self.uncertain_through.max(Some(bucket));
        }
    }

    /// Whether the limiter's cached statistics at `now` are certainly the window's.
    fn certain(&self, now: Duration) -> bool {
        self.uncertain_through
            .is_none_or(|through| self.buckets.at(now) > through)
            && !self.cooling_down(now)
    }

    /// Whether the gate says overloaded, from the window's statistics.
    fn overloaded(&self, now: Duration, signals: Signals) -> bool {
        let stats = self.stats(now);
        let cpu_hot = signals.cpu >= self.config.cpu_threshold;
        let (min_rt_us, _) = self.limit(stats.max_pass, stats.min_rt_us);
        let latency_hot = |inflation: f64| stats.last_rt_us > inflation * min_rt_us;
        match self.config.gate {
            Gate::Cpu => cpu_hot,
            Gate::Latency { inflation } => latency_hot(inflation),
            Gate::Either { inflation } => cpu_hot || latency_hot(inflation),
        }
    }

    /// A request arrives at `now` and the limiter `shed` it (or, in a dry run, would have):
    /// checks the decision, and counts the request.
    pub(crate) fn decide(
        &mut self,
        now: Duration,
        shed: bool,
        signals: Signals,
    ) -> Result<(), String> {
        self.advance(now);
        let late = self
            .config
            .max_delay
            .is_some_and(|max_delay| signals.delay > max_delay);
        let inflight = self.inflight;
        let cooling = self.cooling_down(now);
        let expected = if late {
            Some(true)
        } else if inflight <= 1 {
            Some(false)
        } else if self.certain(now) {
            let stats = self.stats(now);
            let (_, max_inflight) = self.limit(stats.max_pass, stats.min_rt_us);
            Some(self.overloaded(now, signals) && inflight > max_inflight)
        } else if self.config.gate == Gate::Cpu && signals.cpu < self.config.cpu_threshold {
            // Only the cooldown can shed: then the held limit decides.
            (!cooling).then_some(false)
        } else {
            None
        };
        if let Some(expected) = expected
            && expected != shed
        {
            return Err(format!(
                "shed: {shed}, the model: {expected} ({inflight} in flight, {signals:?}, \
                 cooling down: {cooling}, window stats {:?})",
                self.stats(now)
            ));
        }
        // A drop restarts the cooldown when the runtime was late or the gate open (not when
        // only the cooldown shed it).
        let restarts = late
            || match self.config.gate {
                Gate::Cpu => signals.cpu >= self.config.cpu_threshold,
                Gate::Latency { .. } | Gate::Either { .. } => true,
            };
        if shed && restarts {
            self.remember_drop(now);
        }
        // After the drop: with tracing, the first shed of an episode reads the statistics.
        self.may_compute(now);
        if !shed || !self.config.enforce {
            self.inflight += 1;
        }
        Ok(())
    }

    /// A request admitted at `started` completes at `now` (a response or an error).
    pub(crate) fn complete(&mut self, started: Duration, now: Duration) {
        let rt_us = now
            .saturating_sub(started)
            .as_nanos()
            .div_ceil(1_000)
            .clamp(1, u128::from(u64::MAX)) as u64;
        let bucket = self.buckets.advance(now);
        let (sum, count) = self.slots.entry(bucket).or_default();
        *sum = sum.wrapping_add(rt_us);
        *count += 1;
        let first = self.buckets.first(bucket);
        self.slots = self.slots.split_off(&first);
        self.leave();
    }

    /// A request leaves flight without completing (dropped, or its future panicked).
    pub(crate) fn leave(&mut self) {
        self.inflight -= 1;
    }

    /// Compares the limiter's snapshot at `now` with the model.
    pub(crate) fn check(
        &mut self,
        now: Duration,
        snapshot: &BbrSnapshot,
        signals: Signals,
    ) -> Result<(), String> {
        let stats = self.stats(now);
        let (window_min_rt_us, window_max_inflight) = self.limit(stats.max_pass, stats.min_rt_us);
        let cooling = self.cooling_down(now);
        let cpu = if matches!(self.config.gate, Gate::Latency { .. }) {
            0.0
        } else {
            signals.cpu
        };
        let certain = self.certain(now);
        let overloaded = self.overloaded(now, signals);
        let as_duration = |us: f64| Duration::from_secs_f64(us / 1e6);
        let mut wrong = Vec::new();
        if snapshot.inflight != self.inflight {
            wrong.push(format!("in flight: the model {}", self.inflight));
        }
        if snapshot.max_pass != stats.max_pass {
            wrong.push(format!("max_pass: the model {}", stats.max_pass));
        }
        if snapshot.last_rt != as_duration(stats.last_rt_us) {
            wrong.push(format!("last_rt: the model {} µs", stats.last_rt_us));
        }
        if snapshot.cooling_down != cooling {
            wrong.push(format!("cooling down: the model {cooling}"));
        }
        if snapshot.delay != signals.delay {
            wrong.push(format!("delay: the model {:?}", signals.delay));
        }
        if snapshot.cpu != cpu {
            wrong.push(format!("cpu: the model {cpu}"));
        }
        if cooling {
            // The minimum response time may be held lower than the window's (or, with no
            // response time in the window, be any held one).
            if stats.min_rt_us.is_finite()
                && (snapshot.min_rt > as_duration(window_min_rt_us)
                    || snapshot.max_inflight > window_max_inflight)
            {
                wrong.push(format!(
                    "while cooling down, min_rt and max_inflight above the window's \
                     {window_min_rt_us} µs and {window_max_inflight}"
                ));
            }
        } else if snapshot.min_rt != as_duration(window_min_rt_us)
            || snapshot.max_inflight != window_max_inflight
        {
            wrong.push(format!(
                "min_rt, max_inflight: the model {window_min_rt_us} µs, {window_max_inflight}"
            ));
        }
        let cpu_hot = signals.cpu >= self.config.cpu_threshold;
        let overloaded_known = match self.config.gate {
            Gate::Cpu => Some(cpu_hot),
            _ if certain => Some(overloaded),
            Gate::Either { .. } if cpu_hot => Some(true),
            _ => None,
        };
        if let Some(expected) = overloaded_known
            && snapshot.overloaded != expected
        {
            wrong.push(format!("overloaded: the model {expected}"));
        }
        // A snapshot of a gate that reads response times reads the statistics (computing them
        // after moving the window, the first time in a bucket).
        let reads_stats = match self.config.gate {
            Gate::Cpu => false,
            Gate::Latency { .. } => true,
            Gate::Either { .. } => !cpu_hot,
        };
        if reads_stats {
            self.advance(now);
            self.may_compute(now);
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "snapshot {snapshot:?} disagrees: {}; window {:?}, newest bucket {}",
                wrong.join("; "),
                self.slots,
                self.buckets.newest()
            ))
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
