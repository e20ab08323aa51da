//! The breaker under testkit's model harness: how a decision, a completion or a cancellation
//! counts in its model, its state reads, and the metrics' totals at the end.

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_breaker::{BreakerConfig, BreakerGroup, Rejected, SreBreaker};
use rampart_core::{Clock as _, ManualClock, Outcome};
use rampart_testkit::ensure;
use rampart_testkit::harness::Subject;
use tower::{BoxError, Service};

use super::model::{BreakerModel, Counts};
use super::ops::Breaker;

/// A breaker reading the harness's clock.
pub(crate) type ManualBreaker = SreBreaker<ManualClock>;
/// A layer under test, its backend, and the models.
pub(crate) type Harness<S> = rampart_testkit::harness::Harness<UnderTest, S>;
/// Where the layer under test finds a call's breaker.
pub(crate) type Target =
    rampart_testkit::harness::Target<ManualBreaker, BreakerGroup<u8, ManualClock>>;

/// Breakers built from `config`.
pub(crate) struct UnderTest {
    pub(crate) config: BreakerConfig,
}

impl Subject for UnderTest {
    type Step = Breaker;
    type Member = ManualBreaker;
    type Group = BreakerGroup<u8, ManualClock>;
    type Model = BreakerModel;

    const NOUN: &'static str = "breaker";

    fn window(&self) -> (Duration, Duration) {
        let window = self.config.window_config();
        (window.bucket_duration, window.window())
    }

    fn model(&self, now: Duration) -> BreakerModel {
        BreakerModel::new(&self.config, now)
    }

    fn get_at(group: &Self::Group, key: u8, now: Duration) -> Arc<ManualBreaker> {
        group.get_at(&key, now)
    }

    fn group_len(group: &Self::Group) -> usize {
        group.len()
    }

    fn evict_idle(group: &Self::Group) -> usize {
        group.evict_idle()
    }

    fn is_refusal(err: &BoxError) -> bool {
        err.is::<Rejected>()
    }

    /// Asks each breaker alive for its state, which must follow the model's probability.
    fn step<S: Service<u8>>(harness: &mut Harness<S>, step: &Breaker) -> Result<(), String> {
        let Breaker::State = step;
        let now = harness.clock().now();
        harness.observe_alive(|_, model, breaker| {
            let state = breaker.state();
            model.advance(now);
            model.check_state(now, state)
        })
    }

    fn decided(
        &mut self,
        model: &mut BreakerModel,
        now: Duration,
        called: bool,
        _: &str,
        _: &DebuggingRecorder,
    ) -> Result<(), String> {
        model.decide(now, !called)
    }

    fn call_panicked(&mut self, model: &mut BreakerModel, now: Duration) {
        model.record(now, Outcome::Failure);
    }

    fn completed(
        &mut self,
        model: &mut BreakerModel,
        _: Duration,
        now: Duration,
        outcome: Outcome,
    ) {
        model.record(now, outcome);
    }

    fn poll_panicked(&mut self, model: &mut BreakerModel, now: Duration, _: bool) {
        model.record(now, Outcome::Failure);
    }

    fn dropped(&mut self, model: &mut BreakerModel, now: Duration, panicked: bool) {
        if !panicked {
            model.cancel(now);
        }
    }

    fn check(
        &self,
        model: &mut BreakerModel,
        breaker: &ManualBreaker,
        now: Duration,
    ) -> Result<(), String> {
        model.check(now, &breaker.snapshot())
    }

    /// Compares the `requests_total` counters (summed over their criticalities) with every
    /// outcome the models counted.
    fn finish<S: Service<u8>>(harness: &Harness<S>) -> Result<(), String> {
        let mut expected: Vec<(String, Counts)> = Vec::new();
        for (label, model) in harness.models() {
            match expected.iter_mut().find(|(key, _)| *key == label) {
                Some((_, totals)) => *totals += model.totals,
                None => expected.push((label, model.totals)),
            }
        }
        let metrics = harness.recorder().snapshotter().snapshot().into_vec();
        for (label, totals) in expected {
            // The sum over the `criticality` label: the model counts every class alike.
            let counter = |outcome: &str| -> u64 {
                metrics
                    .iter()
                    .filter_map(|(key, _, _, value)| {
                        let key = key.key();
                        let labelled = |name: &str, wanted: &str| {
                            key.labels().any(|l| l.key() == name && l.value() == wanted)
                        };
                        let matches = key.name() == "rampart_breaker_requests_total"
                            && labelled("outcome", outcome)
                            && (label.is_empty() || labelled("key", &label));
                        match value {
                            DebugValue::Counter(count) if matches => Some(*count),
                            _ => None,
                        }
                    })
                    .sum()
            };
            let failures = totals.admitted - totals.accepts;
            ensure!(
                (counter("success"), counter("failure")) == (totals.accepts, failures),
                "key {label:?}: metrics count {} successes and {} failures, the model {} and {}",
                counter("success"),
                counter("failure"),
                totals.accepts,
                failures
            );
            if harness.subject().config.enforce {
                ensure!(
                    counter("rejected") == totals.rejected,
                    "key {label:?}: metrics count {} rejections, the model {}",
                    counter("rejected"),
                    totals.rejected
                );
            }
        }
        Ok(())
    }
}
