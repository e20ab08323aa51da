//! Applies operations to a breaker layer (one breaker, or a keyed group of them) and to the
//! models side by side, and compares them after every step.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use proptest::test_runner::TestCaseError;
use rampart_breaker::{BreakerConfig, BreakerGroup, Rejected, ResponseFuture, SreBreaker};
use rampart_core::{Clock, ManualClock, Outcome};
use tower::{BoxError, Service};

use super::backend::{Backend, BackendCall, BackendError, Fate, catching};
use super::driver::{Polled, Progress, poll_caught, poll_owned};
use super::model::{BreakerModel, Counts, Membership};
use super::ops::{Breaker, Op};

/// The response future of every layer under test.
pub(crate) type Response = ResponseFuture<BackendCall, ManualClock>;
/// A breaker reading the harness's clock.
pub(crate) type ManualBreaker = SreBreaker<ManualClock>;

/// Where the layer under test finds a call's breaker.
pub(crate) enum Target {
    /// One breaker for every call.
    Single(Arc<ManualBreaker>),
    /// A keyed group's breaker for the request's key.
    Group {
        /// The group the layer uses.
        group: Arc<BreakerGroup<u8, ManualClock>>,
        /// Which breaker serves which key, as the model sees it.
        members: Membership,
    },
}

/// A breaker the harness has seen, with its model. The harness holds it weakly, as a
/// group's caller does, so that the harness keeps no breaker in use: a breaker lives while
/// its group (or the single breaker's layer) holds it, or a live response future does.
struct Instance {
    breaker: Weak<ManualBreaker>,
    model: BreakerModel,
    key: u8,
}

/// A response future the harness holds.
struct Held {
    future: Pin<Box<Response>>,
    /// The breaker that decided the call.
    instance: usize,
    /// The backend call's id, if the breaker admitted the call.
    call: Option<u64>,
    fate: Fate,
    /// An injected panic was caught around a poll: the future waits to be dropped.
    panicked: bool,
}

impl Held {
    /// Whether the future holds its breaker: an admitted call's future does (its completion
    /// guard) until it completes or is dropped, even after a panic caught around its poll; a
    /// rejected call's holds nothing. (A completed future is no longer held.)
    fn holds_breaker(&self) -> bool {
        self.call.is_some()
    }
}

/// A layer under test, its backend, and the models.
pub(crate) struct Harness<S> {
    clock: ManualClock,
    backend: Backend,
    service: S,
    config: BreakerConfig,
    target: Target,
    instances: Vec<Instance>,
    held: Vec<Held>,
    recorder: DebuggingRecorder,
    /// Backend calls the model expects.
    calls: u64,
    bucket: Duration,
    window: Duration,
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

impl<S> Harness<S>
where
    S: Service<u8, Response = u64, Error = BoxError, Future = Response>,
{
    /// A harness around `service`, which wraps `backend` and finds its breakers in `target`
    /// (built from `config`, reporting into `recorder`, reading `clock`).
    pub(crate) fn new(
        clock: ManualClock,
        backend: Backend,
        service: S,
        config: BreakerConfig,
        target: Target,
        recorder: DebuggingRecorder,
    ) -> Self {
        let window = config.window_config();
        let mut harness = Self {
            clock,
            backend,
            service,
            target,
            instances: Vec::new(),
            held: Vec::new(),
            recorder,
            calls: 0,
            bucket: window.bucket_duration,
            window: window.window(),
            config,
        };
        if let Target::Single(breaker) = &harness.target {
            let model = BreakerModel::new(&harness.config, harness.clock.now());
            harness.instances.push(Instance {
                breaker: Arc::downgrade(breaker),
                model,
                key: 0,
            });
        }
        harness
    }

    /// Runs `ops`, checking the layer against the models after each, then drops what is
    /// still live and checks the metrics' totals.
    pub(crate) fn run(mut self, ops: &[Op], progress: &Progress) -> Result<(), TestCaseError> {
        for (step, op) in ops.iter().enumerate() {
            self.apply(op)
                .and_then(|()| self.check())
                .map_err(|why| self.failure(step, op, &why))?;
            progress.step();
        }
        while !self.held.is_empty() {
            self.apply(&Op::Drop { pick: 0 })
                .and_then(|()| self.check())
                .map_err(|why| self.failure(ops.len(), &Op::Drop { pick: 0 }, &why))?;
        }
        self.check_metrics()
            .map_err(|why| self.failure(ops.len(), &Op::Drop { pick: 0 }, &why))
    }

    fn failure(&self, step: usize, op: &Op, why: &str) -> TestCaseError {
        TestCaseError::fail(format!(
            "step {step} ({op:?}) at {:?}: {why}",
            self.clock.now()
        ))
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        let now = self.clock.now();
        match *op {
            Op::Call { key, panics } => self.call(key, panics)?,
            Op::Decide { pick, fate } => self.decide(pick, fate),
            Op::Poll { pick, owned } => self.poll(pick, owned)?,
            Op::Complete { pick, fate, owned } => {
                self.decide(pick, fate);
                self.poll(pick, owned)?;
            }
            Op::Drop { pick } => self.drop_future(pick),
            Op::Ready(ready) => {
                self.backend.set_ready(ready);
                self.poll_ready()?;
            }
            Op::Advance { .. }
            | Op::PastWindow { .. }
            | Op::StepBack { .. }
            | Op::Year
            | Op::EndOfTime { .. } => {
                op.move_clock(&self.clock, self.bucket, self.window);
            }
            Op::Layer(Breaker::State) => self.observe_states()?,
            Op::EvictIdle => {
                let busy = self.busy();
                if let Target::Group { group, members } = &mut self.target {
                    let evicted = group.evict_idle();
                    let expected = members.evict_idle(now, |index| busy.contains(&index));
                    ensure!(
                        evicted == expected,
                        "evict_idle removed {evicted} keys, the model {expected}"
                    );
                }
            }
        }
        Ok(())
    }

    /// Polls the layer's readiness, which must be the backend's.
    fn poll_ready(&mut self) -> Result<bool, String> {
        let mut cx = Context::from_waker(Waker::noop());
        let ready = match self.service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Pending => false,
            Poll::Ready(Err(err)) => return Err(format!("poll_ready failed: {err}")),
        };
        ensure!(
            ready == self.backend.is_ready(),
            "poll_ready says ready = {ready}, the backend {}",
            self.backend.is_ready()
        );
        Ok(ready)
    }

    fn call(&mut self, key: u8, panics: bool) -> Result<(), String> {
        if !self.poll_ready()? {
            return Ok(());
        }
        let now = self.clock.now();
        // The breakers in use while the group looks the key up, before this call's future.
        let busy = self.busy();
        let calls_before = self.backend.calls();
        self.backend.set_panic_in_call(panics);
        let (service, recorder) = (&mut self.service, &self.recorder);
        let future = catching(|| metrics::with_local_recorder(recorder, || service.call(key)));
        self.backend.set_panic_in_call(false);
        let instances = &self.instances;
        let existing = match &mut self.target {
            Target::Single(_) => Some(0),
            Target::Group { members, .. } => members.get(
                key,
                now,
                |index| busy.contains(&index),
                |index| instances[index].breaker.strong_count() == 0,
            ),
        };
        let instance = match existing {
            Some(instance) => instance,
            None => self.adopt(key, now)?,
        };
        let admitted = self.backend.calls() > calls_before;
        let model = &mut self.instances[instance].model;
        model.decide(now, !admitted)?;
        if admitted {
            self.calls += 1;
        }
        ensure!(
            future.is_none() == (admitted && panics),
            "call panicked: {}, admitted: {admitted}, the backend panics: {panics}",
            future.is_none()
        );
        match future {
            None => model.record(now, Outcome::Failure),
            Some(future) => self.held.push(Held {
                future: Box::pin(future),
                instance,
                call: admitted.then(|| self.calls - 1),
                fate: Fate::Pending,
                panicked: false,
            }),
        }
        Ok(())
    }

    /// Takes in the breaker the group has just made for `key`.
    fn adopt(&mut self, key: u8, now: Duration) -> Result<usize, String> {
        let Target::Group { group, members } = &mut self.target else {
            unreachable!("only groups make breakers");
        };
        // At the instant of its creation: not a new use of the key. (A weak reference keeps
        // the allocation of a breaker that is gone, so a new one never has its address.)
        let breaker = group.get_at(&key, now);
        ensure!(
            self.instances
                .iter()
                .all(|instance| !std::ptr::eq(instance.breaker.as_ptr(), Arc::as_ptr(&breaker))),
            "key {key} was served by a breaker the group held before"
        );
        let index = self.instances.len();
        members.insert(key, index, now);
        self.instances.push(Instance {
            breaker: Arc::downgrade(&breaker),
            model: BreakerModel::new(&self.config, now),
            key,
        });
        Ok(index)
    }

    fn pick(&self, pick: usize) -> Option<usize> {
        (!self.held.is_empty()).then(|| pick % self.held.len())
    }

    fn decide(&mut self, pick: usize, fate: Fate) {
        let Some(index) = self.pick(pick) else { return };
        let held = &mut self.held[index];
        if let (Some(call), false) = (held.call, held.panicked) {
            self.backend.decide(call, fate);
            held.fate = fate;
        }
    }

    fn poll(&mut self, pick: usize, owned: bool) -> Result<(), String> {
        let Some(index) = self.pick(pick) else {
            return Ok(());
        };
        if self.held[index].panicked {
            // A future is never polled again after a panic: its owner drops it.
            self.drop_future(pick);
            return Ok(());
        }
        let now = self.clock.now();
        let held = self.held.swap_remove(index);
        let (future, polled) = if owned {
            poll_owned(held.future)
        } else {
            let mut future = held.future;
            let polled = poll_caught(&mut future);
            (Some(future), polled)
        };
        self.settle(held.instance, held.call, held.fate, now, &polled)?;
        let panicked = matches!(polled, Polled::Panicked);
        if let (Some(future), Polled::Pending | Polled::Panicked) = (future, polled) {
            self.held.push(Held {
                future,
                panicked,
                ..held
            });
        }
        Ok(())
    }

    /// Checks what a poll of a call decided by breaker `instance` gave against the call's
    /// fate, and counts the outcome.
    fn settle(
        &mut self,
        instance: usize,
        call: Option<u64>,
        fate: Fate,
        now: Duration,
        polled: &Polled<Result<u64, BoxError>>,
    ) -> Result<(), String> {
        let model = &mut self.instances[instance].model;
        let Some(call) = call else {
            ensure!(
                matches!(polled, Polled::Ready(Err(err)) if err.is::<Rejected>()),
                "a rejected call's future gave {polled:?}"
            );
            return Ok(());
        };
        match (fate, polled) {
            (Fate::Pending, Polled::Pending) => {}
            (Fate::Succeed, Polled::Ready(Ok(id))) if *id == call => {
                model.record(now, Outcome::Success);
            }
            (Fate::Fail, Polled::Ready(Err(err))) if err.is::<BackendError>() => {
                model.record(now, Outcome::Failure);
            }
            (Fate::Panic, Polled::Panicked) => model.record(now, Outcome::Failure),
            (fate, polled) => return Err(format!("call {call} decided {fate:?} gave {polled:?}")),
        }
        Ok(())
    }

    fn drop_future(&mut self, pick: usize) {
        let Some(index) = self.pick(pick) else { return };
        let held = self.held.swap_remove(index);
        let now = self.clock.now();
        let cancelled = held.call.is_some() && !held.panicked;
        drop(held.future);
        if cancelled {
            self.instances[held.instance].model.cancel(now);
        }
    }

    /// The breakers that live response futures hold.
    fn busy(&self) -> Vec<usize> {
        self.held
            .iter()
            .filter(|held| held.holds_breaker())
            .map(|held| held.instance)
            .collect()
    }

    /// The breakers alive: the single one or those the group holds, and those live futures
    /// hold; every other breaker must be gone (a group drops the breaker of a key it evicts,
    /// and no call in flight may hold it).
    fn alive(&self) -> Result<Vec<(usize, Arc<ManualBreaker>)>, String> {
        let busy = self.busy();
        let held_by_target = |index: usize| match &self.target {
            Target::Single(_) => index == 0,
            Target::Group { members, .. } => members.holds(index),
        };
        if let Target::Group { group, members } = &self.target {
            ensure!(
                group.len() == members.len(),
                "the group holds {} keys, the model {}",
                group.len(),
                members.len()
            );
        }
        let mut alive = Vec::new();
        for (index, instance) in self.instances.iter().enumerate() {
            let expected = held_by_target(index) || busy.contains(&index);
            match instance.breaker.upgrade() {
                Some(breaker) if expected => alive.push((index, breaker)),
                Some(_) => {
                    return Err(format!(
                        "breaker {index} (key {}) lives on, though the model evicted it \
                         and no call in flight holds it",
                        instance.key
                    ));
                }
                None if expected => {
                    return Err(format!(
                        "breaker {index} (key {}) is gone, though {}",
                        instance.key,
                        if held_by_target(index) {
                            "the model holds it"
                        } else {
                            "a call in flight holds it"
                        }
                    ));
                }
                None => {}
            }
        }
        Ok(alive)
    }

    /// Asks each breaker alive for its state, which must follow the model's probability.
    fn observe_states(&mut self) -> Result<(), String> {
        let now = self.clock.now();
        for (index, breaker) in self.alive()? {
            let instance = &mut self.instances[index];
            let state = breaker.state();
            instance.model.advance(now);
            instance
                .model
                .check_state(now, state)
                .map_err(|why| format!("breaker {index} (key {}): {why}", instance.key))?;
        }
        Ok(())
    }

    /// Compares every breaker alive with its model, and the backend with the calls.
    fn check(&self) -> Result<(), String> {
        let now = self.clock.now();
        for (index, breaker) in self.alive()? {
            let instance = &self.instances[index];
            instance
                .model
                .check(now, &breaker.snapshot())
                .map_err(|why| format!("breaker {index} (key {}): {why}", instance.key))?;
        }
        let alive = self.held.iter().filter(|held| held.call.is_some()).count();
        ensure!(
            self.backend.alive() == alive,
            "{} backend futures alive, the model {alive}",
            self.backend.alive()
        );
        ensure!(
            self.backend.calls() == self.calls,
            "{} backend calls, the model {}",
            self.backend.calls(),
            self.calls
        );
        Ok(())
    }

    /// Compares the `requests_total` counters with every outcome the models counted.
    fn check_metrics(&self) -> Result<(), String> {
        let mut expected: Vec<(String, Counts)> = Vec::new();
        for instance in &self.instances {
            let label = match self.target {
                Target::Single(_) => String::new(),
                Target::Group { .. } => format!("{:?}", instance.key),
            };
            match expected.iter_mut().find(|(key, _)| *key == label) {
                Some((_, totals)) => *totals += instance.model.totals,
                None => expected.push((label, instance.model.totals)),
            }
        }
        let metrics = self.recorder.snapshotter().snapshot().into_vec();
        for (label, totals) in expected {
            let counter = |outcome: &str| {
                metrics
                    .iter()
                    .find_map(|(key, _, _, value)| {
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
                    .unwrap_or(0)
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
            if self.config.enforce {
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
