//! A model-based test of the `Retry` layer and its two budgets.
//!
//! Random sequences of operations drive a `Retry` over a backend the test controls: requests
//! (`poll_ready`, then `call`), attempts that succeed, fail, are rejected or panic, panics in
//! `call` (a request's or a retry's), panics in an attempt caught around the poll (the future is
//! dropped later) or not caught (the future is dropped during the unwinding), cancellation at
//! every poll point (before the first poll, after a pending poll, during a backoff sleep, while
//! waiting for readiness), readiness changes, time advancing by a millisecond, a bucket, more
//! than the budget's window or a year, and the budget's clock stepping back. Beside them runs a
//! small model of what the layer must do: one deposit per request, the outcome of every attempt
//! reported, a withdrawal before every retry and only then, at most `max_attempts` attempts,
//! the backoff's wait between them, nothing recorded for a cancelled request, and the budget's
//! balance exactly as its docs state it. An attempt that panics reports no outcome and is not
//! retried: the panic goes to the caller.
//!
//! After every operation the backend's attempts (which request, whether still alive), the
//! layer's calls to the budget, and the budget's counts and balance must equal the model's,
//! every poll must give what the model predicts, and nothing may panic but the injected panics.
//! A watchdog aborts the run if an operation never finishes.
//!
//! # Size
//!
//! Each test runs `RAMPART_MODEL_CASES` sequences (default 256) of up to `RAMPART_MODEL_OPS`
//! operations (default 800; the length is uniform, so about 10⁵ operations per test), from
//! `RAMPART_MODEL_SEED` (fixed by default, so that a failure reproduces). A failing sequence
//! shrinks to a minimal one, printed with the seed. A longer search:
//!
//! ```text
//! RAMPART_MODEL_CASES=20000 RAMPART_MODEL_SEED=7 cargo test -p rampart-retry --test model --release
//! ```
//!
//! Time: backoff sleeps and attempt deadlines run on tokio's paused clock (a current-thread
//! runtime per sequence); the `RatioBudget` reads a `ManualClock` moved with it, which alone
//! can step back.

#[path = "model/backend.rs"]
mod backend;
#[path = "model/budgets.rs"]
mod budgets;
#[path = "model/harness.rs"]
mod harness;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use rampart_core::{Clock, ManualClock, Outcome, Rejected};
use rampart_retry::{
    AttemptTimedOut, Backoff, Budget, Policy, RatioConfig, ResponseFuture, Retry, RetryConfig,
    RetryLayer,
};
use tower::{BoxError, Layer, Service};

use crate::backend::{Attempt, Backend, Command};
use crate::budgets::{Calls, Choice, Model, Observed, Real};
use crate::harness::{
    Coverage, INJECTED, Polled, Progress, Settings, caught, poll_catching, poll_unwinding,
};

const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// Where a panic in a poll is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Catch {
    /// Around the poll: the response future survives and is dropped later.
    Around,
    /// By whoever owns the future: it is dropped during the unwinding.
    Unwinding,
}

#[derive(Debug, Clone)]
enum Op {
    /// `poll_ready`, then `call` with a new request if ready.
    Call,
    /// The backend's next `call` panics, whether a request's or a retry's.
    ArmCallPanic,
    /// The attempt in flight of one request ends so when next polled.
    Resolve(Index, Command),
    /// Polls one response future.
    Poll(Index, Catch),
    /// Drops one response future: the request is cancelled.
    Cancel(Index),
    /// The backend becomes ready, or stops being ready.
    SetReady(bool),
    /// Tokio's time and the budget's clock move forward.
    Advance(Duration),
    /// The budget's clock moves back (tokio's time cannot).
    StepBack(Duration),
}

#[derive(Debug, Clone)]
struct Case {
    budget: Choice,
    max_attempts: u32,
    backoff: Backoff,
    attempt_timeout: Option<Duration>,
    ops: Vec<Op>,
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Backoffs of every kind, in whole milliseconds (tokio's timer resolution).
fn backoff() -> impl Strategy<Value = Backoff> {
    prop_oneof![
        Just(Backoff::Constant(Duration::ZERO)),
        (1..50_u64).prop_map(|wait| Backoff::Constant(ms(wait))),
        (
            1..30_u64,
            prop::sample::select(vec![1.0, 2.0, 3.5]),
            1..2_000_u64,
            any::<bool>()
        )
            .prop_map(|(base, factor, cap, jitter)| Backoff::Exponential {
                base: ms(base),
                factor,
                cap: ms(cap.max(base)),
                jitter,
            }),
        (1..30_u64, 1..500_u64).prop_map(|(base, cap)| Backoff::Decorrelated {
            base: ms(base),
            cap: ms(cap.max(base)),
        }),
    ]
}

fn op(steps_back: bool) -> impl Strategy<Value = Op> {
    let command = prop_oneof![
        4 => Just(Command::Succeed),
        6 => Just(Command::Fail),
        1 => Just(Command::Reject),
        1 => Just(Command::Panic),
    ];
    let catch = prop_oneof![Just(Catch::Around), Just(Catch::Unwinding)];
    let advance = prop_oneof![
        6 => (1..=20_u64).prop_map(ms),
        3 => (20..=400_u64).prop_map(ms),
        2 => (400..=8_000_u64).prop_map(ms),
        1 => (10_000..=70_000_u64).prop_map(ms),
        1 => Just(YEAR),
    ];
    let back_weight = u32::from(steps_back);
    prop_oneof![
        12 => Just(Op::Call),
        1 => Just(Op::ArmCallPanic),
        14 => (any::<Index>(), command).prop_map(|(at, command)| Op::Resolve(at, command)),
        16 => (any::<Index>(), catch).prop_map(|(at, catch)| Op::Poll(at, catch)),
        3 => any::<Index>().prop_map(Op::Cancel),
        3 => prop_oneof![3 => Just(true), 1 => Just(false)].prop_map(Op::SetReady),
        6 => advance.prop_map(Op::Advance),
        back_weight => (1..=15_000_u64).prop_map(|back| Op::StepBack(ms(back))),
    ]
}

fn case(max_ops: usize, steps_back: bool) -> impl Strategy<Value = Case> {
    (
        budgets::choice(),
        prop::sample::select(vec![1_u32, 2, 3, 5]),
        backoff(),
        prop_oneof![3 => Just(None), 2 => (1..200_u64).prop_map(|t| Some(ms(t)))],
        prop::collection::vec(op(steps_back), 1..=max_ops),
    )
        .prop_map(
            |(budget, max_attempts, backoff, attempt_timeout, ops)| Case {
                budget,
                max_attempts,
                backoff,
                attempt_timeout,
                ops,
            },
        )
}

/// The situations every full run must reach.
const GOALS: [&str; 15] = [
    "cancelled before the first poll",
    "cancelled after a pending poll",
    "cancelled during a backoff sleep",
    "cancelled waiting for readiness",
    "dropped after a caught panic",
    "attempt panic caught around the poll",
    "attempt panic unwinding",
    "panic in a request's call",
    "panic in a retry's call",
    "attempt timed out",
    "retry granted",
    "retry refused by the budget",
    "rejection not retried",
    "budget clock stepped back",
    "year jump",
];
const CANCEL_FRESH: usize = 0;
const CANCEL_PENDING: usize = 1;
const CANCEL_WAITING: usize = 2;
const CANCEL_READY: usize = 3;
const DROP_POISONED: usize = 4;
const PANIC_CAUGHT: usize = 5;
const PANIC_UNWINDING: usize = 6;
const CALL_PANIC: usize = 7;
const RETRY_CALL_PANIC: usize = 8;
const TIMED_OUT: usize = 9;
const GRANTED: usize = 10;
const REFUSED: usize = 11;
const REJECTED: usize = 12;
const STEPPED_BACK: usize = 13;
const YEAR_JUMP: usize = 14;

/// The response future under test.
type Response = ResponseFuture<Backend, u32, Arc<Observed>, Policy>;

/// How an attempt's result counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Ok,
    Failed,
    Rejected,
    TimedOut,
}

/// What the model expects of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pending,
    Ready(Ended),
    Panic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Attempt number `attempt` (backend order) is in flight, with its deadline.
    Attempt {
        attempt: usize,
        deadline: Option<Duration>,
    },
    /// The backoff sleep ends between `earliest` and `latest` (equal unless the backoff
    /// draws at random).
    Waiting {
        earliest: Duration,
        latest: Duration,
    },
    /// Waiting for the backend to be ready for the retry.
    Ready,
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
}

/// The layer under test beside the model of what it must do.
struct World<'a> {
    max_attempts: u32,
    backoff: Backoff,
    attempt_timeout: Option<Duration>,
    service: Retry<Backend, Arc<Observed>, Policy>,
    backend: Backend,
    observed: Arc<Observed>,
    clock: ManualClock,
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
}

impl<'a> World<'a> {
    fn new(case: &Case, coverage: &'a Coverage<{ GOALS.len() }>) -> Self {
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
        let layer = RetryLayer::new(config, Arc::clone(&observed)).expect("a valid config");
        Self {
            max_attempts: case.max_attempts,
            backoff: case.backoff,
            attempt_timeout: case.attempt_timeout,
            service: layer.layer(backend.clone()),
            backend,
            observed,
            clock,
            coverage,
            now: Duration::ZERO,
            ready: true,
            panic_next_call: false,
            attempts: Vec::new(),
            budget: Model::new(case.budget),
            calls: Calls::default(),
            requests: Vec::new(),
            next_id: 0,
        }
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let granted_before = self.calls.withdrawals_granted;
        match *op {
            Op::Call => self.call()?,
            Op::ArmCallPanic => {
                self.backend.arm_call_panic();
                self.panic_next_call = true;
            }
            Op::Resolve(at, command) => self.resolve(at, command),
            Op::Poll(at, catch) => {
                if !self.requests.is_empty() {
                    let request = self.requests.remove(at.index(self.requests.len()));
                    if let Phase::Poisoned { .. } = request.phase {
                        self.requests.push(request);
                    } else {
                        self.poll(request, catch)?;
                    }
                }
            }
            Op::Cancel(at) => {
                if !self.requests.is_empty() {
                    let request = self.requests.remove(at.index(self.requests.len()));
                    self.cancel(request);
                }
            }
            Op::SetReady(ready) => {
                self.backend.set_ready(ready);
                self.ready = ready;
            }
            Op::Advance(by) => {
                tokio::time::advance(by).await;
                self.clock.advance(by);
                self.now += by;
                if by >= YEAR {
                    self.coverage.hit(YEAR_JUMP);
                }
            }
            Op::StepBack(by) => {
                self.clock.set(self.clock.now().saturating_sub(by));
                self.coverage.hit(STEPPED_BACK);
            }
        }
        self.check(granted_before)
    }

    fn call(&mut self) -> Result<(), TestCaseError> {
        let ready = match caught(|| {
            self.service
                .poll_ready(&mut std::task::Context::from_waker(std::task::Waker::noop()))
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
        self.calls.deposits += 1;
        self.budget.deposit(self.clock.now());
        let called = caught(|| self.service.call(id));
        if std::mem::take(&mut self.panic_next_call) {
            let Err(message) = called else {
                return Err(TestCaseError::fail(
                    "the backend's call panicked, not the layer's",
                ));
            };
            prop_assert!(
                message.starts_with(INJECTED),
                "unexpected panic: {}",
                message
            );
            self.coverage.hit(CALL_PANIC);
            return Ok(());
        }
        let future =
            called.map_err(|message| TestCaseError::fail(format!("call panicked: {message}")))?;
        self.attempts.push((
            Attempt {
                request: id,
                live: true,
            },
            Command::Hold,
        ));
        self.requests.push(Request {
            id,
            future: Some(Box::pin(future)),
            phase: Phase::Attempt {
                attempt: self.attempts.len() - 1,
                deadline: self.attempt_timeout.map(|timeout| self.now + timeout),
            },
            attempts: 1,
            previous_longest: Duration::ZERO,
            polled: false,
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
        if !pending.is_empty() {
            let attempt = pending[at.index(pending.len())];
            self.attempts[attempt].1 = command;
            self.backend.command(attempt, command);
        }
    }

    fn poll(&mut self, mut request: Request, catch: Catch) -> Result<(), TestCaseError> {
        let attempts_before = self.attempts.len();
        let future = request
            .future
            .take()
            .expect("a live request has its future");
        let (future, polled) = match catch {
            Catch::Around => {
                let mut future = future;
                let polled = poll_catching(&mut future);
                (Some(future), polled)
            }
            Catch::Unwinding => poll_unwinding(future),
        };
        request.polled = true;
        // Whether a retry went ahead: a random backoff's wait is unknown to the model.
        let retried = self.backend.attempts().len() > attempts_before
            || matches!(polled, Polled::Panicked(_));
        let expect = self.predict(&mut request, retried);
        match (expect, polled) {
            (Expect::Pending, Polled::Pending) => {
                request.future = future;
                self.requests.push(request);
            }
            (Expect::Ready(ended), Polled::Ready(result)) => {
                check_result(request.id, ended, &result)?;
            }
            (Expect::Panic, Polled::Panicked(message)) => {
                prop_assert!(
                    message.starts_with(INJECTED),
                    "unexpected panic: {}",
                    message
                );
                if let Phase::Poisoned { attempt: Some(_) } = request.phase {
                    let goal = match catch {
                        Catch::Around => PANIC_CAUGHT,
                        Catch::Unwinding => PANIC_UNWINDING,
                    };
                    self.coverage.hit(goal);
                }
                if let Some(future) = future {
                    request.future = Some(future);
                    self.requests.push(request);
                } else if let Phase::Poisoned {
                    attempt: Some(attempt),
                } = request.phase
                {
                    // Dropped during the unwinding, with the attempt that panicked.
                    self.attempts[attempt].0.live = false;
                }
            }
            (expect, polled) => {
                return Err(TestCaseError::fail(format!(
                    "request {}: the model expects {expect:?}, the poll gave {polled:?}",
                    request.id
                )));
            }
        }
        Ok(())
    }

    /// What polling `request` must give, and the model's state after it. `retried` says
    /// whether the layer called the backend again in this poll.
    fn predict(&mut self, request: &mut Request, retried: bool) -> Expect {
        loop {
            match request.phase {
                Phase::Attempt { attempt, deadline } => {
                    let ended = if deadline.is_some_and(|deadline| self.now >= deadline) {
                        self.coverage.hit(TIMED_OUT);
                        Ended::TimedOut
                    } else {
                        match self.attempts[attempt].1 {
                            Command::Hold => return Expect::Pending,
                            Command::Panic => {
                                request.phase = Phase::Poisoned {
                                    attempt: Some(attempt),
                                };
                                return Expect::Panic;
                            }
                            Command::Succeed => Ended::Ok,
                            Command::Fail => Ended::Failed,
                            Command::Reject => Ended::Rejected,
                        }
                    };
                    self.attempts[attempt].0.live = false;
                    if ended == Ended::Ok {
                        self.calls.successes += 1;
                        self.budget.record(Outcome::Success);
                    } else {
                        self.calls.failures += 1;
                        self.budget.record(Outcome::Failure);
                    }
                    let attempts_left = request.attempts < self.max_attempts;
                    if matches!(ended, Ended::Failed | Ended::TimedOut) && attempts_left {
                        self.calls.withdrawals_asked += 1;
                        if self.budget.withdraw(self.clock.now()) {
                            self.calls.withdrawals_granted += 1;
                            self.coverage.hit(GRANTED);
                            let (shortest, longest) = wait_bounds(
                                self.backoff,
                                request.attempts,
                                request.previous_longest,
                            );
                            request.previous_longest = longest;
                            request.phase = Phase::Waiting {
                                earliest: self.now + ceil_ms(shortest),
                                latest: self.now + ceil_ms(longest),
                            };
                            continue;
                        }
                        self.coverage.hit(REFUSED);
                    } else if ended == Ended::Rejected && attempts_left {
                        self.coverage.hit(REJECTED);
                    }
                    return Expect::Ready(ended);
                }
                Phase::Waiting { earliest, latest } => {
                    let over =
                        self.now >= latest || (self.now >= earliest && self.ready && retried);
                    if !over {
                        return Expect::Pending;
                    }
                    request.phase = Phase::Ready;
                }
                Phase::Ready => {
                    if !self.ready {
                        return Expect::Pending;
                    }
                    request.attempts += 1;
                    if std::mem::take(&mut self.panic_next_call) {
                        self.coverage.hit(RETRY_CALL_PANIC);
                        request.phase = Phase::Poisoned { attempt: None };
                        return Expect::Panic;
                    }
                    self.attempts.push((
                        Attempt {
                            request: request.id,
                            live: true,
                        },
                        Command::Hold,
                    ));
                    request.phase = Phase::Attempt {
                        attempt: self.attempts.len() - 1,
                        deadline: self.attempt_timeout.map(|timeout| self.now + timeout),
                    };
                }
                Phase::Poisoned { .. } => return Expect::Pending,
            }
        }
    }

    fn cancel(&mut self, request: Request) {
        let goal = match request.phase {
            Phase::Attempt { .. } if !request.polled => CANCEL_FRESH,
            Phase::Attempt { .. } => CANCEL_PENDING,
            Phase::Waiting { .. } => CANCEL_WAITING,
            Phase::Ready => CANCEL_READY,
            Phase::Poisoned { .. } => DROP_POISONED,
        };
        self.coverage.hit(goal);
        drop(request.future);
        if let Phase::Attempt { attempt, .. }
        | Phase::Poisoned {
            attempt: Some(attempt),
        } = request.phase
        {
            self.attempts[attempt].0.live = false;
        }
    }

    fn check(&self, granted_before: u64) -> Result<(), TestCaseError> {
        let seen = self.backend.attempts();
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
        self.budget.check(&self.observed.real, &self.clock)?;
        if let (Model::Ratio(model), Real::Ratio(budget)) = (&self.budget, &self.observed.real)
            && self.calls.withdrawals_granted > granted_before
        {
            model.check_bound(budget, self.clock.now())?;
        }
        Ok(())
    }
}

/// Checks a response against the model's expectation.
fn check_result(
    id: u32,
    ended: Ended,
    result: &Result<u32, BoxError>,
) -> Result<(), TestCaseError> {
    let expected = match (ended, result) {
        (Ended::Ok, Ok(value)) => *value == id,
        (Ended::Failed, Err(error)) => error.is::<std::io::Error>(),
        (Ended::Rejected, Err(error)) => error.is::<Rejected>(),
        (Ended::TimedOut, Err(error)) => error.is::<AttemptTimedOut>(),
        _ => false,
    };
    prop_assert!(
        expected,
        "request {}: expected {:?}, got {:?}",
        id,
        ended,
        result
    );
    Ok(())
}

fn ceil_ms(wait: Duration) -> Duration {
    ms(u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// The shortest and longest wait the backoff may choose before retry number `retry`, given
/// the longest the previous wait may have been.
fn wait_bounds(backoff: Backoff, retry: u32, previous_longest: Duration) -> (Duration, Duration) {
    let mut rng = fastrand::Rng::with_seed(0);
    match backoff {
        Backoff::Exponential {
            base,
            factor,
            cap,
            jitter: true,
        } => {
            let ceiling = Backoff::Exponential {
                base,
                factor,
                cap,
                jitter: false,
            };
            (
                Duration::ZERO,
                ceiling.delay(retry, Duration::ZERO, &mut rng),
            )
        }
        Backoff::Decorrelated { base, cap } => (
            base,
            previous_longest
                .max(base)
                .saturating_mul(3)
                .min(cap)
                .max(base),
        ),
        exact => {
            let wait = exact.delay(retry, previous_longest, &mut rng);
            (wait, wait)
        }
    }
}

fn run_case(
    case: &Case,
    coverage: &Coverage<{ GOALS.len() }>,
    progress: &Progress,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut world = World::new(case, coverage);
        for op in &case.ops {
            world.step(op).await?;
            progress.tick();
        }
        while let Some(request) = world.requests.pop() {
            world.cancel(request);
        }
        world.check(world.calls.withdrawals_granted)?;
        prop_assert!(
            world.backend.attempts().iter().all(|attempt| !attempt.live),
            "every attempt ends with its request"
        );
        Ok(())
    })
}

fn run_model(name: &str, steps_back: bool) {
    let settings = Settings::from_env(256, 800);
    let coverage = Coverage::new(GOALS);
    let ops = harness::run(
        name,
        settings,
        case(settings.max_ops, steps_back),
        |case, progress| run_case(&case, &coverage, progress),
    );
    if settings.is_full() {
        let excused: &[usize] = if steps_back { &[] } else { &[STEPPED_BACK] };
        let reached = coverage.assert_all_reached(name, excused);
        eprintln!("{name}: {ops} operations; {reached}");
    }
}

#[test]
fn retries_and_budgets_match_the_model() {
    run_model("retry model", false);
}

/// The same, with the budget's clock also stepping back (by up to 15 s).
#[test]
#[ignore = "RatioBudget forgets withdrawals made after a read at a later instant (see the regression test below)"]
fn retries_and_budgets_match_the_model_when_the_clock_steps_back() {
    run_model("retry model, clock stepping back", true);
}

/// Regression: `RatioBudget` caches the totals of its completed buckets for the bucket of the
/// instant it reads at, but a read does not move its window. A withdrawal at an earlier
/// instant after such a read (the clock stepped back, or another thread read the clock just
/// before a bucket boundary) lands in a bucket the cache has already totalled, and is missing
/// from the balance when the clock is back in the read's bucket: the budget is overdrawn.
#[test]
#[ignore = "RatioBudget's cached totals miss withdrawals made after a read at a later instant"]
fn ratio_budget_forgets_withdrawals_made_after_a_read_at_a_later_instant() {
    let clock = ManualClock::new();
    let budget = RatioConfig {
        ttl: Duration::from_secs(10),
        ratio: 1.0,
        min_per_sec: 0,
    }
    .build_with_clock(clock.clone())
    .expect("a valid budget");
    budget.deposit();
    clock.set(Duration::from_secs(5));
    let _ = budget.snapshot(); // totals the completed buckets 0 to 4 for bucket 5
    clock.set(Duration::from_secs(3));
    budget.deposit();
    assert!(
        budget.withdraw() && budget.withdraw(),
        "two deposits at ratio 1 pay for two"
    );
    clock.set(Duration::from_secs(5));
    assert_eq!(
        budget.counts_at(clock.now()),
        (2, 2),
        "(deposits, withdrawals) in the window"
    );
    assert!(!budget.withdraw(), "a third retry overdraws the budget");
}
