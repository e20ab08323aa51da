//! The harness of a layer's model test: applies [operations](crate::ops) to a layer (one
//! instance, or a keyed group of them) wrapping a hand-driven [`Backend`], and to the
//! layer's reference models side by side, and compares them after every step. The breaker's
//! and the rate limiter's model tests share it; what differs between them (how a decision,
//! a completion or a drop counts in the model, how an instance is compared with its model)
//! is their [`Subject`].
//!
//! The harness holds every instance weakly, as a group's caller does, so that it keeps none
//! in use: an instance lives while its group (or the single instance's layer) holds it, or a
//! live response future does. After every step it checks the group's size, that exactly the
//! instances the group holds or requests in flight hold are alive, each of them against its
//! model, and the backend's live and total calls.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use proptest::test_runner::TestCaseError;
use rampart_core::{Clock as _, ManualClock, Outcome};
use tower::{BoxError, Layer, Service};

use crate::backend::{Backend, BackendError, Fate, catching};
use crate::bounds::Bounds;
use crate::driver::{Polled, Progress, poll_caught, poll_owned};
use crate::membership::Membership;
use crate::ops::{Op, Steps};

/// Returns `Err` with the formatted message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// A layer under a model test: its instances, their group and models, and how each event
/// counts in a model.
pub trait Subject: Sized {
    /// The layer's own steps.
    type Step: Steps;
    /// One instance (a breaker, a limiter).
    type Member;
    /// A keyed group of instances.
    type Group;
    /// The reference model of one instance.
    type Model;

    /// What messages call an instance ("breaker", "limiter").
    const NOUN: &'static str;

    /// The duration of a bucket of the instances' window, and of the whole window.
    fn window(&self) -> (Duration, Duration);

    /// The model of an instance built at `now`.
    fn model(&self, now: Duration) -> Self::Model;

    /// The instance `group` serves `key` with at `now`, made if it holds none.
    fn get_at(group: &Self::Group, key: u8, now: Duration) -> Arc<Self::Member>;

    /// How many keys `group` holds.
    fn group_len(group: &Self::Group) -> usize;

    /// Evicts `group`'s idle keys, returning how many.
    fn evict_idle(group: &Self::Group) -> usize;

    /// Whether `err` is the layer's refusal of a request.
    fn is_refusal(err: &BoxError) -> bool;

    /// Applies one of the layer's own steps.
    ///
    /// # Errors
    ///
    /// What the step found wrong.
    fn step<S: Service<u8>>(
        harness: &mut Harness<Self, S>,
        step: &Self::Step,
    ) -> Result<(), String>;

    /// Checks and counts the decision on a request: `called` says whether it reached the
    /// backend; `label` is its instance's `key` label (empty outside a group).
    ///
    /// # Errors
    ///
    /// A decision the model does not allow.
    fn decided(
        &mut self,
        model: &mut Self::Model,
        now: Duration,
        called: bool,
        label: &str,
        recorder: &DebuggingRecorder,
    ) -> Result<(), String>;

    /// The backend's `call` panicked at `now` on an admitted request.
    fn call_panicked(&mut self, model: &mut Self::Model, now: Duration);

    /// A request admitted at `started` completed at `now` with `outcome`.
    fn completed(
        &mut self,
        model: &mut Self::Model,
        started: Duration,
        now: Duration,
        outcome: Outcome,
    );

    /// A poll of an admitted request's future panicked at `now`; `dropped` says whether the
    /// future was dropped while unwinding.
    fn poll_panicked(&mut self, model: &mut Self::Model, now: Duration, dropped: bool);

    /// An admitted request's future was dropped at `now` before completing, after a panic
    /// caught around a poll if `panicked`.
    fn dropped(&mut self, model: &mut Self::Model, now: Duration, panicked: bool);

    /// Compares `member` with its model at `now`.
    ///
    /// # Errors
    ///
    /// The difference.
    fn check(
        &self,
        model: &mut Self::Model,
        member: &Self::Member,
        now: Duration,
    ) -> Result<(), String>;

    /// Checks what the run leaves, once every future is gone (the metrics' totals, say).
    ///
    /// # Errors
    ///
    /// The difference.
    fn finish<S: Service<u8>>(harness: &Harness<Self, S>) -> Result<(), String> {
        let _ = harness;
        Ok(())
    }
}

/// Where the layer under test finds a request's instance.
pub enum Target<M, G> {
    /// One instance for every request.
    Single(Arc<M>),
    /// A keyed group's instance for the request's key.
    Group {
        /// The group the layer uses.
        group: Arc<G>,
        /// Which instance serves which key, as the model sees it.
        members: Membership,
    },
}

impl<M, G> Target<M, G> {
    /// The target of a layer over `group`, bounded by `bounds`.
    pub fn group(group: Arc<G>, bounds: &Bounds) -> Self {
        Target::Group {
            group,
            members: Membership::new(bounds.max_keys, bounds.idle_timeout),
        }
    }
}

impl<M, G> fmt::Debug for Target<M, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Single(_) => f.write_str("Single"),
            Target::Group { members, .. } => f
                .debug_struct("Group")
                .field("members", members)
                .finish_non_exhaustive(),
        }
    }
}

/// An instance the harness has seen, with its model.
struct Instance<M, Model> {
    member: Weak<M>,
    model: Model,
    key: u8,
}

/// A response future the harness holds.
struct Held<F> {
    future: Pin<Box<F>>,
    /// The instance that decided the request.
    instance: usize,
    /// The backend call's id, if the request reached the backend.
    call: Option<u64>,
    /// When the request was decided.
    started: Duration,
    fate: Fate,
    /// An injected panic was caught around a poll: the future waits to be dropped.
    panicked: bool,
}

/// A layer under test, its backend, and the models.
pub struct Harness<L: Subject, S: Service<u8>> {
    subject: L,
    clock: ManualClock,
    backend: Backend,
    service: S,
    target: Target<L::Member, L::Group>,
    instances: Vec<Instance<L::Member, L::Model>>,
    held: Vec<Held<Response<S>>>,
    recorder: DebuggingRecorder,
    /// Backend calls the model expects.
    calls: u64,
    bucket: Duration,
    window: Duration,
}

impl<L: Subject, S: Service<u8>> fmt::Debug for Harness<L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("now", &self.clock.now())
            .field("target", &self.target)
            .field("instances", &self.instances.len())
            .field("held", &self.held.len())
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// The instances alive, by index.
type Alive<M> = Vec<(usize, Arc<M>)>;

/// The response future of a service under test.
type Response<S> = <S as Service<u8>>::Future;

impl<L: Subject, S: Service<u8>> Harness<L, S> {
    /// The layer under test's own part.
    pub fn subject(&self) -> &L {
        &self.subject
    }

    /// The layer under test's own part, to change.
    pub fn subject_mut(&mut self) -> &mut L {
        &mut self.subject
    }

    /// The clock every instance reads.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The recorder every instance reports into.
    pub fn recorder(&self) -> &DebuggingRecorder {
        &self.recorder
    }

    /// Every instance seen, in the order made: its key label (empty outside a group) and
    /// model.
    pub fn models(&self) -> impl Iterator<Item = (String, &L::Model)> {
        (0..self.instances.len()).map(|index| (self.label(index), &self.instances[index].model))
    }

    /// The `key` label of instance `index`'s metrics (empty outside a group).
    pub fn label(&self, index: usize) -> String {
        match self.target {
            Target::Single(_) => String::new(),
            Target::Group { .. } => format!("{:?}", self.instances[index].key),
        }
    }

    /// Applies `observe` to every instance alive and its model (checking first that exactly
    /// the instances the target or live futures hold are alive),
    /// naming the instance in what it finds wrong.
    ///
    /// # Errors
    ///
    /// An instance alive or gone that should not be, or what `observe` found.
    pub fn observe_alive(
        &mut self,
        mut observe: impl FnMut(&L, &mut L::Model, &L::Member) -> Result<(), String>,
    ) -> Result<(), String> {
        for (index, member) in self.alive()? {
            let instance = &mut self.instances[index];
            observe(&self.subject, &mut instance.model, &member)
                .map_err(|why| format!("{} {index} (key {}): {why}", L::NOUN, instance.key))?;
        }
        Ok(())
    }

    /// The instances that live response futures hold: an admitted request's future holds its
    /// instance until it completes or is dropped, even after a panic caught around its poll;
    /// a refused request's holds nothing. (A completed future is no longer held.)
    fn busy(&self) -> Vec<usize> {
        self.held
            .iter()
            .filter(|held| held.call.is_some())
            .map(|held| held.instance)
            .collect()
    }

    /// The instances alive: the single one or those the group holds, and those live futures
    /// hold; every other instance must be gone (a group drops the instance of a key it
    /// evicts, and no request in flight may hold it).
    ///
    /// # Errors
    ///
    /// An instance alive or gone that should not be, or a group of the wrong size.
    fn alive(&self) -> Result<Alive<L::Member>, String> {
        let busy = self.busy();
        let held_by_target = |index: usize| match &self.target {
            Target::Single(_) => index == 0,
            Target::Group { members, .. } => members.holds(index),
        };
        if let Target::Group { group, members } = &self.target {
            ensure!(
                L::group_len(group) == members.len(),
                "the group holds {} keys, the model {}",
                L::group_len(group),
                members.len()
            );
        }
        let mut alive = Vec::new();
        for (index, instance) in self.instances.iter().enumerate() {
            let expected = held_by_target(index) || busy.contains(&index);
            match instance.member.upgrade() {
                Some(member) if expected => alive.push((index, member)),
                Some(_) => {
                    return Err(format!(
                        "{} {index} (key {}) lives on, though the model evicted it and no \
                         request in flight holds it",
                        L::NOUN,
                        instance.key
                    ));
                }
                None if expected => {
                    return Err(format!(
                        "{} {index} (key {}) is gone, though {}",
                        L::NOUN,
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
}

impl<L, S> Harness<L, S>
where
    L: Subject,
    S: Service<u8, Response = u64, Error = BoxError>,
{
    /// A harness around `service`, which wraps `backend` and finds its instances in `target`
    /// (made as `subject` says, reading `clock`, reporting into `recorder`).
    pub fn new(
        subject: L,
        clock: ManualClock,
        backend: Backend,
        service: S,
        target: Target<L::Member, L::Group>,
        recorder: DebuggingRecorder,
    ) -> Self {
        let (bucket, window) = subject.window();
        let mut harness = Self {
            subject,
            clock,
            backend,
            service,
            target,
            instances: Vec::new(),
            held: Vec::new(),
            recorder,
            calls: 0,
            bucket,
            window,
        };
        if let Target::Single(member) = &harness.target {
            let model = harness.subject.model(harness.clock.now());
            harness.instances.push(Instance {
                member: Arc::downgrade(member),
                model,
                key: 0,
            });
        }
        harness
    }

    /// Runs `ops`, checking the layer against the models after each, then drops what is
    /// still live and checks what the run leaves ([`Subject::finish`]).
    ///
    /// # Errors
    ///
    /// The first difference, with its step.
    pub fn run(mut self, ops: &[Op<L::Step>], progress: &Progress) -> Result<(), TestCaseError> {
        for (step, op) in ops.iter().enumerate() {
            self.apply(op)
                .and_then(|()| self.check())
                .map_err(|why| self.failure(step, op, &why))?;
            progress.step();
        }
        let drop_one = Op::Drop { pick: 0 };
        while !self.held.is_empty() {
            self.apply(&drop_one)
                .and_then(|()| self.check())
                .map_err(|why| self.failure(ops.len(), &drop_one, &why))?;
        }
        L::finish(&self).map_err(|why| self.failure(ops.len(), &drop_one, &why))
    }

    fn failure(&self, step: usize, op: &Op<L::Step>, why: &str) -> TestCaseError {
        TestCaseError::fail(format!(
            "step {step} ({op:?}) at {:?}: {why}",
            self.clock.now()
        ))
    }

    fn apply(&mut self, op: &Op<L::Step>) -> Result<(), String> {
        let now = self.clock.now();
        match op {
            Op::Call { key, panics } => self.call(*key, *panics)?,
            Op::Decide { pick, fate } => self.decide(*pick, *fate),
            Op::Poll { pick, owned } => self.poll(*pick, *owned)?,
            Op::Complete { pick, fate, owned } => {
                self.decide(*pick, *fate);
                self.poll(*pick, *owned)?;
            }
            Op::Drop { pick } => self.drop_future(*pick),
            Op::Ready(ready) => {
                self.backend.set_ready(*ready);
                self.poll_ready()?;
            }
            Op::Advance { .. }
            | Op::PastWindow { .. }
            | Op::StepBack { .. }
            | Op::Year
            | Op::EndOfTime { .. } => {
                op.move_clock(&self.clock, self.bucket, self.window);
            }
            Op::Layer(step) => L::step(self, step)?,
            Op::EvictIdle => {
                let busy = self.busy();
                if let Target::Group { group, members } = &mut self.target {
                    let evicted = L::evict_idle(group);
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
        // The instances in use while the group looks the key up, before this request's future.
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
                |index| instances[index].member.strong_count() == 0,
            ),
        };
        let instance = match existing {
            Some(instance) => instance,
            None => self.adopt(key, now)?,
        };
        let called = self.backend.calls() > calls_before;
        let label = self.label(instance);
        let model = &mut self.instances[instance].model;
        self.subject
            .decided(model, now, called, &label, &self.recorder)?;
        if called {
            self.calls += 1;
        }
        ensure!(
            future.is_none() == (called && panics),
            "call panicked: {}, called: {called}, the backend panics: {panics}",
            future.is_none()
        );
        match future {
            None => self.subject.call_panicked(model, now),
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

    /// Takes in the instance the group has just made for `key`.
    fn adopt(&mut self, key: u8, now: Duration) -> Result<usize, String> {
        let Target::Group { group, members } = &mut self.target else {
            unreachable!("only groups make instances");
        };
        // At the instant of its creation: not a new use of the key. (A weak reference keeps
        // the allocation of an instance that is gone, so a new one never has its address.)
        let member = L::get_at(group, key, now);
        ensure!(
            self.instances
                .iter()
                .all(|instance| !std::ptr::eq(instance.member.as_ptr(), Arc::as_ptr(&member))),
            "key {key} was served by a {} the group held before",
            L::NOUN
        );
        let index = self.instances.len();
        members.insert(key, index, now);
        self.instances.push(Instance {
            member: Arc::downgrade(&member),
            model: self.subject.model(now),
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
        let parts = (held.instance, held.call, held.started, held.fate);
        self.settle(parts, now, &polled, future.is_none())?;
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

    /// Checks what a poll of a request decided by `instance` (its backend call, when it was
    /// decided, its fate) gave against the request's fate, and counts it: a completion, or a
    /// panic (the future `dropped` while unwinding, or not).
    fn settle(
        &mut self,
        (instance, call, started, fate): (usize, Option<u64>, Duration, Fate),
        now: Duration,
        polled: &Polled<Result<u64, BoxError>>,
        dropped: bool,
    ) -> Result<(), String> {
        let model = &mut self.instances[instance].model;
        let Some(call) = call else {
            ensure!(
                matches!(polled, Polled::Ready(Err(err)) if L::is_refusal(err)),
                "a refused request's future gave {polled:?}"
            );
            return Ok(());
        };
        match (fate, polled) {
            (Fate::Pending, Polled::Pending) => {}
            (Fate::Succeed, Polled::Ready(Ok(id))) if *id == call => {
                self.subject
                    .completed(model, started, now, Outcome::Success);
            }
            (Fate::Fail, Polled::Ready(Err(err))) if err.is::<BackendError>() => {
                self.subject
                    .completed(model, started, now, Outcome::Failure);
            }
            (Fate::Panic, Polled::Panicked) => self.subject.poll_panicked(model, now, dropped),
            (fate, polled) => return Err(format!("call {call} decided {fate:?} gave {polled:?}")),
        }
        Ok(())
    }

    fn drop_future(&mut self, pick: usize) {
        let Some(index) = self.pick(pick) else { return };
        let held = self.held.swap_remove(index);
        let now = self.clock.now();
        drop(held.future);
        if held.call.is_some() {
            let model = &mut self.instances[held.instance].model;
            self.subject.dropped(model, now, held.panicked);
        }
    }

    /// Compares every instance alive with its model, and the backend with the calls.
    fn check(&mut self) -> Result<(), String> {
        let now = self.clock.now();
        self.observe_alive(|subject, model, member| subject.check(model, member, now))?;
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

/// Runs `ops` on the service `layer` makes around a new hand-driven [`Backend`], finding its
/// instances in `target` (made as `subject` says, reading `clock`, reporting into
/// `recorder`), checking it against the models after each step.
///
/// # Errors
///
/// The first difference, with its step.
pub fn run<L, Y>(
    subject: L,
    clock: ManualClock,
    layer: &Y,
    target: Target<L::Member, L::Group>,
    recorder: DebuggingRecorder,
    (ops, progress): (&[Op<L::Step>], &Progress),
) -> Result<(), TestCaseError>
where
    L: Subject,
    Y: Layer<Backend>,
    Y::Service: Service<u8, Response = u64, Error = BoxError>,
{
    let backend = Backend::new();
    let service = layer.layer(backend.clone());
    Harness::new(subject, clock, backend, service, target, recorder).run(ops, progress)
}
