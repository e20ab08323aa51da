//! The limiter under testkit's model harness: the signals it reads, how a decision (read from
//! the `requests_total` counters), a completion or a request leaving flight counts in its
//! model, and its comparison with the model.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_core::{ManualClock, Outcome};
use rampart_ratelimit::{BbrConfig, BbrGroup, BbrLimiter, ManualCpu, ManualDelay, Overloaded};
use rampart_testkit::ensure;
use rampart_testkit::harness::Subject;
use tower::{BoxError, Service};

use super::model::{LimiterModel, Signals};
use super::ops::Signal;

/// A limiter reading the harness's clock and CPU.
pub(crate) type Limiter = BbrLimiter<ManualClock, ManualCpu>;
/// A layer under test, its backend, its signals, and the models.
pub(crate) type Harness<S> = rampart_testkit::harness::Harness<UnderTest, S>;
/// Where the layer under test finds a request's limiter.
pub(crate) type Target =
    rampart_testkit::harness::Target<Limiter, BbrGroup<u8, ManualClock, ManualCpu>>;

/// The signals the limiters read, which the harness sets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// The CPU usage every limiter reads.
    pub(crate) cpu: ManualCpu,
    /// The scheduling delay every limiter reads.
    pub(crate) delay: ManualDelay,
}

impl Sources {
    /// A CPU reading `cpu` and no scheduling delay.
    pub(crate) fn new(cpu: f64) -> Self {
        Self {
            cpu: ManualCpu::new(cpu),
            delay: ManualDelay::new(),
        }
    }
}

/// Limiters built from `config`, reading `sources`.
pub(crate) struct UnderTest {
    config: BbrConfig,
    sources: Sources,
    /// What `sources` read now, as the models see it.
    signals: Signals,
}

impl UnderTest {
    /// Limiters built from `config`, reading `sources` (its delay set to none).
    pub(crate) fn new(config: BbrConfig, sources: Sources) -> Self {
        let signals = Signals {
            cpu: rampart_ratelimit::CpuUsage::usage(&sources.cpu),
            delay: Duration::ZERO,
        };
        sources.delay.set(signals.delay);
        Self {
            config,
            sources,
            signals,
        }
    }
}

/// `rampart_ratelimit_requests_total` by key label and outcome since the last reading.
fn counters(recorder: &DebuggingRecorder) -> HashMap<(String, String), u64> {
    let mut counters = HashMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key = key.key();
        let (DebugValue::Counter(count), "rampart_ratelimit_requests_total") = (value, key.name())
        else {
            continue;
        };
        let label = |name: &str| {
            key.labels()
                .find(|label| label.key() == name)
                .map_or_else(String::new, |label| label.value().to_owned())
        };
        *counters
            .entry((label("key"), label("outcome")))
            .or_default() += count;
    }
    counters
}

impl Subject for UnderTest {
    type Step = Signal;
    type Member = Limiter;
    type Group = BbrGroup<u8, ManualClock, ManualCpu>;
    type Model = LimiterModel;

    const NOUN: &'static str = "limiter";

    fn window(&self) -> (Duration, Duration) {
        let window = self.config.window_config();
        (window.bucket_duration, window.window())
    }

    fn model(&self, now: Duration) -> LimiterModel {
        LimiterModel::new(&self.config, now)
    }

    fn get_at(group: &Self::Group, key: u8, now: Duration) -> Arc<Limiter> {
        group.get_at(&key, now)
    }

    fn group_len(group: &Self::Group) -> usize {
        group.len()
    }

    fn evict_idle(group: &Self::Group) -> usize {
        group.evict_idle()
    }

    fn is_refusal(err: &BoxError) -> bool {
        err.is::<Overloaded>()
    }

    fn step<S: Service<u8>>(harness: &mut Harness<S>, step: &Signal) -> Result<(), String> {
        let this = harness.subject_mut();
        match *step {
            Signal::Cpu(cpu) => {
                this.sources.cpu.set(cpu);
                this.signals.cpu = cpu;
            }
            Signal::Delay(ms) => {
                this.signals.delay = Duration::from_millis(ms);
                this.sources.delay.set(this.signals.delay);
            }
        }
        Ok(())
    }

    /// Reads the decision from the counters: one request counted admitted or shed (both in a
    /// dry run's shed), admitted exactly when it reached the backend.
    fn decided(
        &mut self,
        model: &mut LimiterModel,
        now: Duration,
        called: bool,
        label: &str,
        recorder: &DebuggingRecorder,
    ) -> Result<(), String> {
        let counters = counters(recorder);
        let count = |outcome: &str| {
            counters
                .get(&(label.to_owned(), outcome.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let (admitted, shed) = (count("admitted"), count("shed"));
        let enforce = self.config.enforce;
        ensure!(
            shed <= 1 && admitted == u64::from(shed == 0 || !enforce),
            "one request counted {admitted} admitted and {shed} shed"
        );
        ensure!(
            called == (admitted == 1),
            "the backend was called: {called}, though the limiter counted {admitted} admitted"
        );
        model.decide(now, shed == 1, self.signals)
    }

    /// The permit is dropped while unwinding: out of flight, nothing recorded.
    fn call_panicked(&mut self, model: &mut LimiterModel, _: Duration) {
        model.leave();
    }

    fn completed(
        &mut self,
        model: &mut LimiterModel,
        started: Duration,
        now: Duration,
        _: Outcome,
    ) {
        model.complete(started, now);
    }

    /// Caught around the poll, the future (and its permit) lives on until dropped.
    fn poll_panicked(&mut self, model: &mut LimiterModel, _: Duration, dropped: bool) {
        if dropped {
            model.leave();
        }
    }

    fn dropped(&mut self, model: &mut LimiterModel, _: Duration, _: bool) {
        model.leave();
    }

    fn check(
        &self,
        model: &mut LimiterModel,
        limiter: &Limiter,
        now: Duration,
    ) -> Result<(), String> {
        let snapshot = limiter.snapshot();
        model.check(now, &snapshot, self.signals)
    }
}
