//! Applies operations to a limiter layer (one limiter, or a keyed group of them) and to the
//! models side by side, and compares them after every step.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use proptest::test_runner::TestCaseError;
use rampart_core::{Clock, ManualClock};
use rampart_ratelimit::{
    BbrConfig, BbrGroup, BbrLimiter, ManualCpu, ManualDelay, Overloaded, ResponseFuture,
};
use tower::{BoxError, Service};

use super::backend::{Backend, BackendCall, BackendError, Fate, catching};
use super::driver::{Polled, Progress, poll_caught, poll_owned};
use super::model::{LimiterModel, Membership, Signals};
use super::ops::{Op, Signal};

/// The response future of every layer under test.
pub(crate) type Response = ResponseFuture<BackendCall, ManualClock, ManualCpu>;
/// A limiter reading the harness's clock and CPU.
pub(crate) type Limiter = BbrLimiter<ManualClock, ManualCpu>;

/// Where the layer under test finds a request's limiter.
pub(crate) enum Target {
    /// One limiter for every request.
    Single(Arc<Limiter>),
    /// A keyed group's limiter for the request's key.
    Group {
        /// The group the layer uses.
        group: Arc<BbrGroup<u8, ManualClock, ManualCpu>>,
        /// Which limiter serves which key, as the model sees it.
        members: Membership,
    },
}

/// The signals the limiters read, which the harness sets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// The CPU usage every limiter reads.
    pub(crate) cpu: ManualCpu,
    /// The scheduling delay every limiter reads.
    pub(crate) delay: ManualDelay,
}

/// A limiter the harness has seen, with its model. The harness holds it weakly, as a
/// group's caller does, so that the harness keeps no limiter in use: a limiter lives while
/// its group (or the single limiter's layer) holds it, or a live response future does.
struct Instance {
    limiter: Weak<Limiter>,
    model: LimiterModel,
    key: u8,
}

/// A response future the harness holds.
struct Held {
    future: Pin<Box<Response>>,
    /// The limiter that decided the request.
    instance: usize,
    /// The backend call's id, if the request reached the backend.
    call: Option<u64>,
    /// When the request was admitted.
    started: Duration,
    fate: Fate,
    /// An injected panic was caught around a poll: the future waits to be dropped.
    panicked: bool,
}

impl Held {
    /// Whether the future holds its limiter: an admitted request's future does (its permit)
    /// until it completes or is dropped, even after a panic caught around its poll; a shed
    /// request's holds nothing. (A completed future is no longer held.)
    fn holds_limiter(&self) -> bool {
        self.call.is_some()
    }
}

/// A layer under test, its backend, its signals, and the models.
pub(crate) struct Harness<S> {
    clock: ManualClock,
    backend: Backend,
    service: S,
    config: BbrConfig,
    target: Target,
    sources: Sources,
    signals: Signals,
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
    /// A harness around `service`, which wraps `backend` and finds its limiters in `target`
    /// (built from `config`, reading `clock` and `sources`, reporting into `recorder`).
    pub(crate) fn new(
        clock: ManualClock,
        backend: Backend,
        service: S,
        config: BbrConfig,
        target: Target,
        sources: Sources,
        recorder: DebuggingRecorder,
    ) -> Self {
        let window = config.window_config();
        let signals = Signals {
            cpu: rampart_ratelimit::CpuUsage::usage(&sources.cpu),
            delay: Duration::ZERO,
        };
        sources.delay.set(signals.delay);
        let mut harness = Self {
            clock,
            backend,
            service,
            target,
            sources,
            signals,
            instances: Vec::new(),
            held: Vec::new(),
            recorder,
            calls: 0,
            bucket: window.bucket_duration,
            window: window.window(),
            config,
        };
        if let Target::Single(limiter) = &harness.target {
            let model = LimiterModel::new(&harness.config, harness.clock.now());
            harness.instances.push(Instance {
                limiter: Arc::downgrade(limiter),
                model,
                key: 0,
            });
        }
        harness
    }

    /// Runs `ops`, checking the layer against the models after each, then drops what is
    /// still live.
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
        Ok(())
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
            Op::Layer(Signal::Cpu(cpu)) => {
                self.sources.cpu.set(cpu);
                self.signals.cpu = cpu;
            }
            Op::Layer(Signal::Delay(ms)) => {
                self.signals.delay = Duration::from_millis(ms);
                self.sources.delay.set(self.signals.delay);
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
        // The limiters in use while the group looks the key up, before this request's future.
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
                |index| instances[index].limiter.strong_count() == 0,
            ),
        };
        let instance = match existing {
            Some(instance) => instance,
            None => self.adopt(key, now)?,
        };
        let called = self.backend.calls() > calls_before;
        let counters = self.counters();
        let label = self.label(instance);
        let count = |outcome: &str| {
            counters
                .get(&(label.clone(), outcome.to_owned()))
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
        let model = &mut self.instances[instance].model;
        model.decide(now, shed == 1, self.signals)?;
        if called {
            self.calls += 1;
        }
        ensure!(
            future.is_none() == (called && panics),
            "call panicked: {}, called: {called}, the backend panics: {panics}",
            future.is_none()
        );
        match future {
            // The permit is dropped while unwinding: out of flight, nothing recorded.
            None => model.leave(),
            Some(future) => self.held.push(Held {
                future: Box::pin(future),
                instance,
                call: called.then(|| self.calls - 1),
                started: now,
                fate: Fate::Pending,
                panicked: false,
            }),
        }
        Ok(())
    }

    /// The `key` label of a limiter's metrics (empty outside a group).
    fn label(&self, instance: usize) -> String {
        match self.target {
            Target::Single(_) => String::new(),
            Target::Group { .. } => format!("{:?}", self.instances[instance].key),
        }
    }

    /// `rampart_ratelimit_requests_total` by key label and outcome since the last reading.
    fn counters(&self) -> HashMap<(String, String), u64> {
        let mut counters = HashMap::new();
        for (key, _, _, value) in self.recorder.snapshotter().snapshot().into_vec() {
            let key = key.key();
            let (DebugValue::Counter(count), "rampart_ratelimit_requests_total") =
                (value, key.name())
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

    /// Takes in the limiter the group has just made for `key`.
    fn adopt(&mut self, key: u8, now: Duration) -> Result<usize, String> {
        let Target::Group { group, members } = &mut self.target else {
            unreachable!("only groups make limiters");
        };
        // At the instant of its creation: not a new use of the key. (A weak reference keeps
        // the allocation of a limiter that is gone, so a new one never has its address.)
        let limiter = group.get_at(&key, now);
        ensure!(
            self.instances
                .iter()
                .all(|instance| !std::ptr::eq(instance.limiter.as_ptr(), Arc::as_ptr(&limiter))),
            "key {key} was served by a limiter the group held before"
        );
        let index = self.instances.len();
        members.insert(key, index, now);
        self.instances.push(Instance {
            limiter: Arc::downgrade(&limiter),
            model: LimiterModel::new(&self.config, now),
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
        let parts = held_parts(&held);
        let (future, polled) = if owned {
            poll_owned(held.future)
        } else {
            let mut future = held.future;
            let polled = poll_caught(&mut future);
            (Some(future), polled)
        };
        self.settle(&parts, now, &polled, future.is_none())?;
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

    /// Checks what a poll gave against the request's fate, and counts it: a completion, or
    /// (`dropped` with a panic) a request leaving flight.
    fn settle(
        &mut self,
        held: &Parts,
        now: Duration,
        polled: &Polled<Result<u64, BoxError>>,
        dropped: bool,
    ) -> Result<(), String> {
        let model = &mut self.instances[held.instance].model;
        let Some(call) = held.call else {
            ensure!(
                matches!(polled, Polled::Ready(Err(err)) if err.is::<Overloaded>()),
                "a shed request's future gave {polled:?}"
            );
            return Ok(());
        };
        match (held.fate, polled) {
            (Fate::Pending, Polled::Pending) => {}
            (Fate::Succeed, Polled::Ready(Ok(id))) if *id == call => {
                model.complete(held.started, now);
            }
            (Fate::Fail, Polled::Ready(Err(err))) if err.is::<BackendError>() => {
                model.complete(held.started, now);
            }
            (Fate::Panic, Polled::Panicked) => {
                // Caught around the poll, the future (and its permit) lives on until dropped.
                if dropped {
                    model.leave();
                }
            }
            (fate, polled) => return Err(format!("call {call} decided {fate:?} gave {polled:?}")),
        }
        Ok(())
    }

    fn drop_future(&mut self, pick: usize) {
        let Some(index) = self.pick(pick) else { return };
        let held = self.held.swap_remove(index);
        drop(held.future);
        if held.call.is_some() {
            self.instances[held.instance].model.leave();
        }
    }

    /// The limiters that live response futures hold.
    fn busy(&self) -> Vec<usize> {
        self.held
            .iter()
            .filter(|held| held.holds_limiter())
            .map(|held| held.instance)
            .collect()
    }

    /// The limiters alive: the single one or those the group holds, and those live futures
    /// hold; every other limiter must be gone (a group drops the limiter of a key it evicts,
    /// and no request in flight may hold it).
    fn alive(&self) -> Result<Vec<(usize, Arc<Limiter>)>, String> {
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
            match instance.limiter.upgrade() {
                Some(limiter) if expected => alive.push((index, limiter)),
                Some(_) => {
                    return Err(format!(
                        "limiter {index} (key {}) lives on, though the model evicted it \
                         and no request in flight holds it",
                        instance.key
                    ));
                }
                None if expected => {
                    return Err(format!(
                        "limiter {index} (key {}) is gone, though {}",
                        instance.key,
                        if held_by_target(index) {
                            "the model holds it"
                        } else {
                            "a request in flight holds it"
                        }
                    ));
                }
                None => {}
            }
        }
        Ok(alive)
    }

    /// Compares every limiter alive with its model, and the backend with the calls.
    fn check(&mut self) -> Result<(), String> {
        let now = self.clock.now();
        for (index, limiter) in self.alive()? {
            let instance = &mut self.instances[index];
            let snapshot = limiter.snapshot();
            instance
                .model
                .check(now, &snapshot, self.signals)
                .map_err(|why| format!("limiter {index} (key {}): {why}", instance.key))?;
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
}

/// What `settle` needs of a held future.
struct Parts {
    instance: usize,
    call: Option<u64>,
    started: Duration,
    fate: Fate,
}

fn held_parts(held: &Held) -> Parts {
    Parts {
        instance: held.instance,
        call: held.call,
        started: held.started,
        fate: held.fate,
    }
}
