//! The `Retry` layer under test beside the model of what it must do: requests, their attempts
//! and the budget's books, and the checks made after every operation.

#[path = "attempts.rs"]
mod attempts;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use rampart_core::{Clock, Deadline, ManualClock, RequestContext, TokioClock};
use rampart_retry::{Backoff, Policy, ResponseFuture, Retry, RetryConfig, RetryLayer};
use tower::{Layer, Service};

use crate::backend::{Attempt, Backend, Command};
use crate::budgets::{Calls, Choice, Model, Observed, Real};
use crate::harness::{self, Cancellation, Coverage, caught};
use crate::{
    CALL_PANIC, CANCEL_FRESH, CANCEL_PENDING, CANCEL_READY, CANCEL_WAITING, Case, DROP_POISONED,
    GOALS, Op, STEPPED_BACK, UNWOUND, YEAR_JUMP,
};

/// The weight of a new sample in the predicted latency, as the layer's docs state it: an
/// eighth.
const SMOOTHING_SHIFT: u32 = 3;
use rampart_testkit::sequence;

/// The response future under test.
type Response = ResponseFuture<Backend, u32, Arc<Observed>, Policy>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Attempt number `attempt` (backend order) is in flight since `started`, with its
    /// timeout if any: when it ends, and whether it is the request's deadline (`cut`).
    Attempt {
        attempt: usize,
        timeout: Option<Duration>,
        cut: bool,
        started: Duration,
    },
    /// The backoff sleep ends between `earliest` and `latest` (equal unless the backoff
    /// draws at random).
    Waiting {
        earliest: Duration,
        latest: Duration,
    },
    /// Waiting for the backend to be ready for the retry.
    Ready,
    /// The deadline had passed when the layer was called: no attempt.
    Expired,
    /// A poll panicked and the panic was caught: the future is kept (with the attempt that
    /// panicked, if any) until it is dropped.
    Poisoned { attempt: Option<usize> },
}

struct Request {
    id: u32,
    /// Taken while it is polled.
    future: Option<Pin<Box<Response>>>,
    phase: Phase,
    /// Attempts started.
    attempts: u32,
    /// The longest the previous backoff wait may have been.
    previous_longest: Duration,
    polled: bool,
    /// The request's deadline (tokio's time since the start), if it has one.
    deadline: Option<Duration>,
}

/// The layer under test beside the model of what it must do.
pub(crate) struct World<'a> {
    max_attempts: u32,
    backoff: Backoff,
    attempt_timeout: Option<Duration>,
    service: Retry<Backend, Arc<Observed>, Policy>,
    backend: Backend,
    observed: Arc<Observed>,
    clock: ManualClock,
    /// The layer's clock, which requests' deadlines are instants of.
    tokio_clock: TokioClock,
    coverage: &'a Coverage<{ GOALS.len() }>,
    // The model.
    /// Tokio's time since the runtime started.
    now: Duration,
    ready: bool,
    panic_next_call: bool,
    attempts: Vec<(Attempt, Command)>,
    budget: Model,
    calls: Calls<u64>,
    requests: Vec<Request>,
    next_id: u32,
    /// The predicted latency of an attempt, in nanoseconds (0: nothing observed).
    predicted: u64,
}

impl<'a> World<'a> {
    pub(crate) fn new(case: &Case, coverage: &'a Coverage<{ GOALS.len() }>) -> Self {
        let start = match case.budget {
            Choice::Ratio { start, .. } => start,
            Choice::Token(_) => Duration::ZERO,
        };
        let clock = ManualClock::starting_at(start);
        let observed = Arc::new(Observed::build(case.budget, &clock));
        let config = RetryConfig::default()
            .with_max_attempts(case.max_attempts)
            .with_backoff(case.backoff)
            .with_seed(1);
        let config = match case.attempt_timeout {
            Some(timeout) => config.with_attempt_timeout(timeout),
            None => config,
        };
        let backend = Backend::new();
        let tokio_clock = TokioClock::new();
        let layer = RetryLayer::new_with(config, Arc::clone(&observed), tokio_clock)
            .expect("a valid config");
        Self {
            max_attempts: case.max_attempts,
            backoff: case.backoff,
            attempt_timeout: case.attempt_timeout,
            service: layer.layer(backend.clone()),
            backend,
            observed,
            clock,
            tokio_clock,
            coverage,
            now: Duration::ZERO,
            ready: true,
            panic_next_call: false,
            attempts: Vec::new(),
            budget: Model::new(case.budget),
            calls: Calls::default(),
            requests: Vec::new(),
            next_id: 0,
            predicted: 0,
        }
    }

    /// Whether an attempt fits in `remaining`: some time, and no less than the predicted
    /// latency.
    fn fits(&self, remaining: Duration) -> bool {
        !remaining.is_zero() && remaining >= Duration::from_nanos(self.predicted)
    }

    /// A successful attempt of a request with a deadline took `latency`.
    fn observe(&mut self, latency: Duration) {
        let sample = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.predicted;
        self.predicted = if old == 0 {
            sample
        } else if sample >= old {
            old + ((sample - old) >> SMOOTHING_SHIFT)
        } else {
            (old - ((old - sample) >> SMOOTHING_SHIFT)).max(1)
        };
    }

    /// The phase of an attempt of a request with `deadline` starting now.
    fn attempt(&self, attempt: usize, deadline: Option<Duration>) -> Phase {
        let configured = self.attempt_timeout.map(|timeout| self.now + timeout);
        let (timeout, cut) = match (configured, deadline) {
            (Some(configured), Some(deadline)) if configured < deadline => {
                (Some(configured), false)
            }
            (_, Some(deadline)) => (Some(deadline), true),
            (configured, None) => (configured, false),
        };
        Phase::Attempt {
            attempt,
            timeout,
            cut,
            started: self.now,
        }
    }

    fn call(&mut self, timeout: Option<u64>) -> Result<(), TestCaseError> {
        let ready = match caught(|| {
            self.service
                .poll_ready(&mut Context::from_waker(Waker::noop()))
        }) {
            Ok(poll) => poll.is_ready(),
            Err(message) => {
                return Err(TestCaseError::fail(format!(
                    "poll_ready panicked: {message}"
                )));
            }
        };
        prop_assert_eq!(ready, self.ready, "poll_ready is the backend's readiness");
        if !ready {
            return Ok(());
        }
        let id = self.next_id;
        self.next_id += 1;
        prop_assert_eq!(
            self.tokio_clock.now(),
            self.now,
            "the layer's clock is tokio's"
        );
        let deadline = timeout.map(|timeout| self.now + sequence::ms(timeout));
        let context = match deadline {
            Some(deadline) => RequestContext::new().with_deadline(Deadline::at(deadline)),
            None => RequestContext::new(),
        };
        if deadline.is_some_and(|deadline| deadline <= self.now) {
            // No attempt, no deposit: the backend's call (armed or not) is not made.
            let called = caught(|| {
                let _entered = context.enter();
                self.service.call(id)
            });
            let future = sequence::called(called)?;
            self.requests.push(Request {
                id,
                future: Some(Box::pin(future)),
                phase: Phase::Expired,
                attempts: 0,
                previous_longest: Duration::ZERO,
                polled: false,
                deadline,
            });
            return Ok(());
        }
        self.calls.deposits += 1;
        self.budget.deposit(self.clock.now());
        let called = caught(|| {
            let _entered = context.enter();
            self.service.call(id)
        });
        let not_injected = "the backend's call panicked, not the layer's";
        let Some(future) = sequence::armed_call(called, &mut self.panic_next_call, not_injected)?
        else {
            self.coverage.hit(CALL_PANIC);
            return Ok(());
        };
        self.attempts.push((Attempt::new((), id), Command::Hold));
        self.requests.push(Request {
            id,
            future: Some(Box::pin(future)),
            phase: self.attempt(self.attempts.len() - 1, deadline),
            attempts: 1,
            previous_longest: Duration::ZERO,
            polled: false,
            deadline,
        });
        Ok(())
    }

    fn resolve(&mut self, at: Index, command: Command) {
        let pending: Vec<usize> = self
            .requests
            .iter()
            .filter_map(|request| match request.phase {
                Phase::Attempt { attempt, .. } if self.attempts[attempt].1 == Command::Hold => {
                    Some(attempt)
                }
                _ => None,
            })
            .collect();
        if let Some(&attempt) = sequence::pick(&pending, at) {
            self.attempts[attempt].1 = command;
            self.backend.log().command(attempt, command);
        }
    }

    fn cancel(&mut self, request: Request, how: Cancellation) {
        if how == Cancellation::Unwound {
            self.coverage.hit(UNWOUND);
        }
        let goal = match request.phase {
            Phase::Expired => CANCEL_FRESH,
            Phase::Attempt { .. } if !request.polled => CANCEL_FRESH,
            Phase::Attempt { .. } => CANCEL_PENDING,
            Phase::Waiting { .. } => CANCEL_WAITING,
            Phase::Ready => CANCEL_READY,
            Phase::Poisoned { .. } => DROP_POISONED,
        };
        self.coverage.hit(goal);
        harness::cancel(request.future, how);
        if let Phase::Attempt { attempt, .. }
        | Phase::Poisoned {
            attempt: Some(attempt),
        } = request.phase
        {
            self.attempts[attempt].0.live = false;
        }
    }

    fn check(&mut self, granted_before: u64) -> Result<(), TestCaseError> {
        let seen = self.backend.log().calls();
        let mut made = vec![0_u32; self.next_id as usize];
        for attempt in &seen {
            made[attempt.request as usize] += 1;
        }
        if let Some(request) = made.iter().position(|made| *made > self.max_attempts) {
            return Err(TestCaseError::fail(format!(
                "request {request} made {} attempts",
                made[request]
            )));
        }
        let expected: Vec<Attempt> = self.attempts.iter().map(|(attempt, _)| *attempt).collect();
        prop_assert_eq!(seen, expected, "the backend's attempts");
        prop_assert_eq!(
            self.observed.calls.load(),
            self.calls,
            "the layer's calls to the budget"
        );
        // Reading the budget moves its window to the clock's instant, as any operation does.
        self.budget.observe(self.clock.now());
        self.budget.check(&self.observed.real, &self.clock)?;
        if let (Model::Ratio(model), Real::Ratio(budget)) = (&self.budget, &self.observed.real)
            && self.calls.withdrawals_granted > granted_before
        {
            model.check_bound(budget, self.clock.now())?;
        }
        Ok(())
    }
}

impl sequence::World for World<'_> {
    type Op = Op;

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let granted_before = self.calls.withdrawals_granted;
        match *op {
            Op::Call(deadline) => self.call(deadline)?,
            Op::ArmCallPanic => {
                self.backend.log().arm_call_panic();
                self.panic_next_call = true;
            }
            Op::Resolve(at, command) => self.resolve(at, command),
            Op::Poll(at, catch) => {
                if let Some(request) = sequence::remove_at(&mut self.requests, at) {
                    if let Phase::Poisoned { .. } = request.phase {
                        self.requests.push(request);
                    } else {
                        self.poll(request, catch)?;
                    }
                }
            }
            Op::Cancel(at, how) => {
                if let Some(request) = sequence::remove_at(&mut self.requests, at) {
                    self.cancel(request, how);
                }
            }
            Op::SetReady(ready) => {
                self.backend.set_ready(ready);
                self.ready = ready;
            }
            Op::Time(step) => {
                let goals = [YEAR_JUMP, STEPPED_BACK];
                step.apply(&self.clock, &mut self.now, self.coverage, goals)
                    .await;
            }
        }
        self.check(granted_before)
    }

    /// Cancels every request left, and checks that their attempts ended with them.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        while let Some(request) = self.requests.pop() {
            self.cancel(request, Cancellation::Dropped);
        }
        self.check(self.calls.withdrawals_granted)?;
        prop_assert!(
            self.backend
                .log()
                .calls()
                .iter()
                .all(|attempt| !attempt.live),
            "every attempt ends with its request"
        );
        Ok(())
    }
}
