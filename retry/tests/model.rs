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
//! A third run gives half the requests a deadline (0 to 300 ms away): the model also predicts
//! an attempt's latency as the layer's docs state it (the smoothed latency of successful
//! attempts), and requires no attempt and no deposit for a request already past its deadline,
//! each attempt cut at the deadline with `DeadlineExceeded` and not retried, no retry (and no
//! withdrawal) with less time left than the predicted latency now or after the wait, and no
//! retry sent once the time ran out waiting for readiness; the budget's books stay exact.
//!
//! After every operation the backend's attempts (which request, whether still alive), the
//! layer's calls to the budget, and the budget's counts and balance must equal the model's,
//! every poll must give what the model predicts, and nothing may panic but the injected panics.
//! A watchdog aborts the run if an operation never finishes.
//!
//! # Size
//!
//! Each test runs `RAMPART_MODEL_CASES` sequences (default 320) of up to `RAMPART_MODEL_OPS`
//! operations (default 800; the length is uniform: about 1.3 × 10⁵ operations per test), from
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
#[path = "model/world.rs"]
mod world;

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use rampart_core::{Clock, ManualClock};
use rampart_retry::{Backoff, Budget, RatioConfig};

use crate::backend::Command;
use crate::budgets::Choice;
use rampart_testkit::model as harness;

use rampart_testkit::sequence::{self, Catch, Step, ms};

use crate::harness::{Cancellation, Settings};
use crate::world::World;

#[derive(Debug, Clone)]
enum Op {
    /// `poll_ready`, then `call` with a new request if ready, with a deadline this many
    /// milliseconds away if any.
    Call(Option<u64>),
    /// The backend's next `call` panics, whether a request's or a retry's.
    ArmCallPanic,
    /// The attempt in flight of one request ends so when next polled.
    Resolve(Index, Command),
    /// Polls one response future.
    Poll(Index, Catch),
    /// Cancels one request.
    Cancel(Index, Cancellation),
    /// The backend becomes ready, or stops being ready.
    SetReady(bool),
    /// Tokio's time and the budget's clock move forward, or the budget's clock moves back
    /// (tokio's time cannot).
    Time(Step),
}

#[derive(Debug, Clone)]
struct Case {
    budget: Choice,
    max_attempts: u32,
    backoff: Backoff,
    attempt_timeout: Option<Duration>,
    ops: Vec<Op>,
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

fn cancellation() -> impl Strategy<Value = Cancellation> {
    prop_oneof![3 => Just(Cancellation::Dropped), 1 => Just(Cancellation::Unwound)]
}

fn op(steps_back: bool, deadlines: bool) -> impl Strategy<Value = Op> {
    let command = prop_oneof![
        4 => Just(Command::Succeed),
        6 => Just(Command::Fail),
        1 => Just(Command::Reject),
        1 => Just(Command::Panic),
    ];
    let catch = Catch::any();
    let advance = sequence::forward(400, 8_000, 10_000..=70_000);
    let back_weight = u32::from(steps_back);
    let deadline_weight = u32::from(deadlines);
    let deadline = prop_oneof![
        1 => Just(None),
        deadline_weight => prop_oneof![1 => Just(0_u64), 6 => 1..=300_u64].prop_map(Some),
    ];
    prop_oneof![
        12 => deadline.prop_map(Op::Call),
        1 => Just(Op::ArmCallPanic),
        14 => (any::<Index>(), command).prop_map(|(at, command)| Op::Resolve(at, command)),
        16 => (any::<Index>(), catch).prop_map(|(at, catch)| Op::Poll(at, catch)),
        3 => (any::<Index>(), cancellation()).prop_map(|(at, how)| Op::Cancel(at, how)),
        3 => prop_oneof![3 => Just(true), 1 => Just(false)].prop_map(Op::SetReady),
        6 => advance.prop_map(|by| Op::Time(Step::Advance(by))),
        back_weight => (1..=15_000_u64).prop_map(|back| Op::Time(Step::Back(ms(back)))),
    ]
}

fn case(max_ops: usize, steps_back: bool, deadlines: bool) -> impl Strategy<Value = Case> {
    (
        budgets::choice(),
        prop::sample::select(vec![1_u32, 2, 3, 5]),
        backoff(),
        prop_oneof![3 => Just(None), 2 => (1..200_u64).prop_map(|t| Some(ms(t)))],
        prop::collection::vec(op(steps_back, deadlines), 1..=max_ops),
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

rampart_testkit::goals! {
    /// The situations every full run must reach.
    const GOALS = [
        CANCEL_FRESH: "cancelled before the first poll",
        CANCEL_PENDING: "cancelled after a pending poll",
        CANCEL_WAITING: "cancelled during a backoff sleep",
        CANCEL_READY: "cancelled waiting for readiness",
        DROP_POISONED: "dropped after a caught panic",
        PANIC_CAUGHT: "attempt panic caught around the poll",
        PANIC_UNWINDING: "attempt panic unwinding",
        CALL_PANIC: "panic in a request's call",
        RETRY_CALL_PANIC: "panic in a retry's call",
        TIMED_OUT: "attempt timed out",
        GRANTED: "retry granted",
        REFUSED: "retry refused by the budget",
        REJECTED: "rejection not retried",
        STEPPED_BACK: "budget clock stepped back",
        YEAR_JUMP: "year jump",
        UNWOUND: "cancelled by the caller's own panic",
        EXPIRED: "no attempt: the deadline had passed at the call",
        DEADLINE_CUT: "attempt cut at the deadline",
        NO_TIME_LEFT: "retry skipped: less time left than the predicted latency",
        WAIT_TOO_LONG: "retry skipped: the wait would leave too little time",
        READY_TOO_LATE: "retry not sent: the time ran out waiting for readiness",
        PREDICTED: "a retry granted with a latency predicted",
    ];
}

fn run_model(name: &str, steps_back: bool, deadlines: bool) {
    let settings = Settings::from_env(320, 800);
    let mut excused = Vec::new();
    if !steps_back {
        excused.push(STEPPED_BACK);
    }
    if !deadlines {
        excused.extend([
            EXPIRED,
            DEADLINE_CUT,
            NO_TIME_LEFT,
            WAIT_TOO_LONG,
            READY_TOO_LATE,
            PREDICTED,
        ]);
    }
    sequence::run_covered(
        name,
        settings,
        case(settings.max_ops, steps_back, deadlines),
        GOALS,
        &excused,
        |case, coverage, progress| {
            sequence::play(|| World::new(&case, coverage), &case.ops, progress)
        },
    );
}

#[test]
fn retries_and_budgets_match_the_model() {
    run_model("retry model", false, false);
}

/// The same, with the budget's clock also stepping back (by up to 15 s).
#[test]
fn retries_and_budgets_match_the_model_when_the_clock_steps_back() {
    run_model("retry model, clock stepping back", true, false);
}

/// The same, with half the requests carrying a deadline (0 to 300 ms away).
#[test]
fn retries_and_budgets_match_the_model_with_deadlines() {
    run_model("retry model, deadlines", false, true);
}

/// Regression: `RatioBudget` caches the totals of its completed buckets for the bucket of the
/// instant it reads at, but a read does not move its window. A withdrawal at an earlier
/// instant after such a read (the clock stepped back, or another thread read the clock just
/// before a bucket boundary) lands in a bucket the cache has already totalled, and is missing
/// from the balance when the clock is back in the read's bucket: the budget is overdrawn.
#[test]
fn ratio_budget_forgets_withdrawals_made_after_a_read_at_a_later_instant() {
    let clock = ManualClock::new();
    let budget = RatioConfig {
        ttl: Duration::from_secs(10),
        ratio: 1.0,
        min_per_sec: 0,
    }
    .build_with(clock.clone())
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
