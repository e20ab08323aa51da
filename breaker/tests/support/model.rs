//! The reference models: what one breaker's window must hold and what it may decide, and
//! which breaker a keyed group serves each key with.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::time::Duration;

use rampart_breaker::{BreakerConfig, BreakerSnapshot, BreakerState, Rejections};
use rampart_core::Outcome;
use rampart_testkit::buckets::Buckets;

/// How close the model's probabilities must be to the breaker's.
const TOLERANCE: f64 = 1e-9;

/// Calls counted by a breaker: admitted and completed, accepted (successes), rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Admitted calls that completed (successes and failures).
    pub(crate) admitted: u64,
    /// Admitted calls that succeeded.
    pub(crate) accepts: u64,
    /// Calls the breaker rejected.
    pub(crate) rejected: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.admitted += other.admitted;
        self.accepts += other.accepts;
        self.rejected += other.rejected;
    }
}

/// One breaker as it must behave: every outcome counts in the bucket of the instant it
/// arrives (or the newest bucket, if the clock stepped back), and stays there for one window.
#[derive(Debug)]
pub(crate) struct BreakerModel {
    config: BreakerConfig,
    /// The window's buckets, numbered from the clock's reading when the breaker was built,
    /// and the newest one the breaker has moved to: an event at an older instant joins it.
    buckets: Buckets,
    /// Counts per bucket, for the buckets of the newest window only.
    slots: BTreeMap<u64, Counts>,
    /// The bucket of the latest call admitted while the drop probability was positive: with
    /// `Adaptive`, a rejection presupposes that its bucket's probe went through.
    throttled_admission: Option<u64>,
    /// Every outcome and rejection since the breaker was built.
    pub(crate) totals: Counts,
}

impl BreakerModel {
    /// A breaker built from `config` when the clock read `origin`.
    pub(crate) fn new(config: &BreakerConfig, origin: Duration) -> Self {
        let window = config.window_config();
        Self {
            config: config.clone(),
            buckets: Buckets::new(origin, window.bucket_duration, window.buckets),
            slots: BTreeMap::new(),
            throttled_admission: None,
            totals: Counts::default(),
        }
    }

    /// Moves to the bucket of `now`, as any decision or record at `now` does.
    pub(crate) fn advance(&mut self, now: Duration) {
        self.buckets.advance(now);
    }

    fn add(&mut self, now: Duration, counts: Counts) {
        let newest = self.buckets.advance(now);
        *self.slots.entry(newest).or_default() += counts;
        self.totals += counts;
        let first = self.buckets.first(newest);
        self.slots = self.slots.split_off(&first);
    }

    /// An admitted call's outcome arrives at `now`.
    pub(crate) fn record(&mut self, now: Duration, outcome: Outcome) {
        let counts = match outcome {
            Outcome::Success => Counts {
                admitted: 1,
                accepts: 1,
                rejected: 0,
            },
            Outcome::Failure => Counts {
                admitted: 1,
                ..Counts::default()
            },
            Outcome::Ignore => return,
        };
        self.add(now, counts);
    }

    /// An admitted call's response future was dropped at `now` before completing.
    pub(crate) fn cancel(&mut self, now: Duration) {
        self.record(now, self.config.on_cancel);
    }

    /// The whole window at `now`, and its two newest buckets.
    fn window(&self, now: Duration) -> (Counts, Counts) {
        let last = self.buckets.at(now);
        let first = self.buckets.first(last);
        let recent_first = first.max(last.saturating_sub(1));
        let (mut window, mut recent) = (Counts::default(), Counts::default());
        for (&slot, &counts) in self.slots.range(first..=last) {
            window += counts;
            if slot >= recent_first {
                recent += counts;
            }
        }
        (window, recent)
    }

    /// `(rejection weight, requests, drop probability)` at `now`, as the crate documents them.
    fn decision(&self, now: Duration) -> (f64, f64, f64) {
        let (window, recent) = self.window(now);
        let judged = if recent.admitted > 0 { recent } else { window };
        let k = self.config.k;
        let weight = self
            .config
            .rejections
            .weight(judged.accepts, judged.admitted, k);
        let requests = window.admitted as f64 + weight * window.rejected as f64;
        let accepted = k * window.accepts as f64;
        let probability = if window.admitted + window.rejected < self.config.min_requests
            || requests <= accepted
        {
            0.0
        } else {
            ((requests - accepted) / (requests + 1.0)).clamp(0.0, 1.0)
        };
        (weight, requests, probability)
    }

    /// A call arrives at `now` and the breaker `rejected` it or not: checks that the
    /// decision was allowed, and counts a rejection.
    pub(crate) fn decide(&mut self, now: Duration, rejected: bool) -> Result<(), String> {
        let bucket = self.buckets.advance(now);
        let (_, _, probability) = self.decision(now);
        if !rejected {
            if probability > 0.0 {
                self.throttled_admission = Some(bucket);
            }
            return Ok(());
        }
        if !self.config.enforce {
            return Err("a dry run rejected a call".into());
        }
        if probability <= 0.0 {
            return Err("rejected a call while the drop probability is 0".into());
        }
        if self.config.rejections == Rejections::Adaptive
            && self.throttled_admission != Some(bucket)
        {
            return Err("rejected a call before its bucket's probe went through".into());
        }
        self.add(
            now,
            Counts {
                rejected: 1,
                ..Counts::default()
            },
        );
        Ok(())
    }

    /// Compares the breaker's snapshot at `now` with the model.
    pub(crate) fn check(&self, now: Duration, snapshot: &BreakerSnapshot) -> Result<(), String> {
        let (window, _) = self.window(now);
        let actual = Counts {
            admitted: snapshot.admitted,
            accepts: snapshot.accepts,
            rejected: snapshot.rejected,
        };
        if actual != window {
            return Err(format!(
                "the window holds {actual:?}, the model {window:?} (buckets {:?}, newest {})",
                self.slots,
                self.buckets.newest()
            ));
        }
        let (weight, requests, probability) = self.decision(now);
        let close = |a: f64, b: f64| (a - b).abs() <= TOLERANCE;
        if !close(snapshot.rejection_weight, weight)
            || !close(snapshot.requests, requests)
            || !close(snapshot.drop_probability, probability)
        {
            return Err(format!(
                "snapshot {snapshot:?}, model: weight {weight}, requests {requests}, \
                 probability {probability}"
            ));
        }
        let closed = matches!(snapshot.state, BreakerState::Closed);
        if closed != (snapshot.drop_probability == 0.0) {
            return Err(format!(
                "state disagrees with the probability: {snapshot:?}"
            ));
        }
        Ok(())
    }

    /// Compares the breaker's state at `now` (read through its decision path, which caches
    /// the completed buckets) with the model's probability.
    pub(crate) fn check_state(&self, now: Duration, state: BreakerState) -> Result<(), String> {
        let (_, _, probability) = self.decision(now);
        let agrees = match state {
            BreakerState::Closed => probability == 0.0,
            BreakerState::Throttling { drop_probability } => {
                probability > 0.0 && (drop_probability - probability).abs() <= TOLERANCE
            }
        };
        if agrees {
            Ok(())
        } else {
            Err(format!(
                "state {state:?}, the model's probability {probability}"
            ))
        }
    }
}
