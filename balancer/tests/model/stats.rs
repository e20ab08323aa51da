//! What one endpoint's statistics must hold, as the balancer's docs state them: its requests
//! in flight, and EWMAs of its latency and success that start at the first sample, keep
//! `e^(−Δt/τ)` of the old estimate for a sample `Δt` after the previous one (a clock
//! stepping back is no time passing), and take a slower latency sample at once. Every
//! completion is a latency sample (the model's clock has no recent time: every request is
//! timed); the outcomes of one instant are averaged into one sample of success. A cancelled
//! request changes nothing but the in-flight count; a panic is a failure.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rampart_balancer::EndpointSnapshot;
use rampart_core::Outcome;

#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub(crate) inflight: u64,
    lag_ns: f64,
    success: f64,
    /// The latest completion instant so far.
    stamp: Option<Duration>,
    /// The success average before the current batch, and the instant of the batch it holds.
    settled: (f64, Option<Duration>),
    /// The current batch of outcomes: its instant, successes, outcomes, and the weight the
    /// settled average keeps against it.
    batch: Option<(Duration, u32, u32, f64)>,
    tau_ns: f64,
}

impl Stats {
    pub(crate) fn new(prior_lag: Duration, tau: Duration) -> Self {
        Self {
            inflight: 0,
            lag_ns: prior_lag.as_nanos() as f64,
            success: 1.0,
            stamp: None,
            settled: (1.0, None),
            batch: None,
            tau_ns: tau.as_nanos() as f64,
        }
    }

    pub(crate) fn begin(&mut self) {
        self.inflight += 1;
    }

    /// A request started at `started` ends at `now`: `Some(outcome)` when it completed,
    /// `None` when it was cancelled.
    pub(crate) fn end(&mut self, started: Duration, now: Duration, outcome: Option<Outcome>) {
        self.inflight -= 1;
        let Some(outcome) = outcome else {
            return;
        };
        let sample = now.saturating_sub(started).as_nanos() as f64;
        let kept = self.kept_since(self.stamp, now);
        self.stamp = Some(self.stamp.map_or(now, |stamp| stamp.max(now)));
        self.lag_ns = if sample > self.lag_ns {
            sample
        } else {
            self.lag_ns * kept + sample * (1.0 - kept)
        };
        let success = match outcome {
            Outcome::Success => 1,
            Outcome::Failure => 0,
            Outcome::Ignore => return,
        };
        let (at, good, all, weight) = match self.batch {
            Some(batch) if now <= batch.0 => batch,
            later => {
                if let Some((at, ..)) = later {
                    self.settled = (self.success, Some(at));
                }
                (now, 0, 0, self.kept_since(self.settled.1, now))
            }
        };
        let (good, all) = (good + success, all + 1);
        self.batch = Some((at, good, all, weight));
        let mean = f64::from(good) / f64::from(all);
        self.success = self.settled.0 * weight + mean * (1.0 - weight);
    }

    /// The weight an average last moved at `stamp` keeps at `now`.
    fn kept_since(&self, stamp: Option<Duration>, now: Duration) -> f64 {
        stamp.map_or(0.0, |stamp| {
            (-(now.saturating_sub(stamp).as_nanos() as f64) / self.tau_ns).exp()
        })
    }

    /// Whether a completion has been recorded.
    pub(crate) fn is_warm(&self) -> bool {
        self.stamp.is_some()
    }

    pub(crate) fn lag_ns(&self) -> f64 {
        self.lag_ns
    }

    /// Checks what the balancer shows of the endpoint.
    pub(crate) fn check(&self, seen: &EndpointSnapshot<u8>) -> Result<(), TestCaseError> {
        let key = seen.key;
        prop_assert_eq!(seen.inflight, self.inflight, "endpoint {} in flight", key);
        prop_assert!(
            (seen.success - self.success).abs() <= 1e-9,
            "endpoint {}: success {} where the model has {}",
            key,
            seen.success,
            self.success
        );
        let lag_ns = seen.lag.as_nanos() as f64;
        prop_assert!(
            (lag_ns - self.lag_ns).abs() <= 2.0 + self.lag_ns * 1e-9,
            "endpoint {}: latency {} ns where the model has {} ns",
            key,
            lag_ns,
            self.lag_ns
        );
        prop_assert!(!seen.score.is_nan(), "endpoint {} scores NaN", key);
        Ok(())
    }
}
