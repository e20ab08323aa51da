//! A model-based test of the `P2c` balancer.
//!
//! Random sequences of operations drive a balancer over endpoints the test controls, fed by a
//! discovery channel: endpoints inserted (new, or replacing a key's service), removed, turning
//! ready, busy or broken; `poll_ready` and `call` together or apart (a call without a ready
//! answer fails with `NoEndpoints`); responses that succeed, fail or panic, the panic caught
//! around the poll (the future is dropped later) or not (it is dropped during the unwinding);
//! panics in an endpoint's `call`; cancellation before the first poll and after a pending one;
//! time advancing by a millisecond, about τ, many τ or a year; the clock stepping back. Beside
//! them runs a small model of what the balancer must count.
//!
//! After every operation:
//!
//! - each endpoint's in-flight count, picks, readiness, and latency and success EWMAs equal the
//!   model's (a cancelled request is neither success nor failure; a panic is a failure);
//! - every call went to an endpoint whose last `poll_ready` answered `Ready`, and every
//!   `poll_ready` of the balancer polled the endpoints it must (each waiting one once, then
//!   only endpoints of its ready list) and answered what the model predicts;
//! - nothing panicked but the injected panics. A watchdog aborts the run if an operation
//!   never finishes.
//!
//! Which of two ready endpoints the balancer picks is random: the model follows the pick it
//! observes, and checks everything else.
//!
//! # Size
//!
//! `RAMPART_MODEL_CASES` sequences (default 320) of up to `RAMPART_MODEL_OPS` operations
//! (default 800; the length is uniform: about 1.3 × 10⁵ operations), from `RAMPART_MODEL_SEED`
//! (fixed by default, so that a failure reproduces). A failing sequence shrinks to a minimal
//! one, printed with the seed. A longer search:
//!
//! ```text
//! RAMPART_MODEL_CASES=20000 RAMPART_MODEL_SEED=7 cargo test -p rampart-balancer --test model --release
//! ```
//!
//! Time: the balancer reads a `ManualClock`; its empty-set timer runs on tokio's paused clock
//! (a current-thread runtime per sequence), moved with it.

#[path = "model/endpoints.rs"]
mod endpoints;
#[path = "model/stats.rs"]
mod stats;
#[path = "model/world.rs"]
mod world;

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use rampart_balancer::WhenEmpty;

use crate::endpoints::{Command, Readiness};
use rampart_testkit::model as harness;

use rampart_testkit::sequence::{self, Catch, Step, ms};

use crate::harness::{Cancellation, Settings};
use crate::world::World;

/// Endpoint keys are `0..KEYS`.
const KEYS: u8 = 5;

#[derive(Debug, Clone)]
enum Op {
    /// Discovery inserts `key` with a new service answering so.
    Insert(u8, Readiness),
    /// Discovery removes `key`.
    Remove(u8),
    /// The newest service of `key` answers so from now on.
    SetReadiness(u8, Readiness),
    /// The balancer's `poll_ready`.
    PollReady,
    /// The balancer's `call`, whatever `poll_ready` last said.
    Call,
    /// `poll_ready`, then `call` if ready.
    ReadyCall,
    /// The next call to an endpoint panics.
    ArmCallPanic,
    /// One call in flight ends so when next polled.
    Resolve(Index, Command),
    /// Polls one response future.
    Poll(Index, Catch),
    /// Cancels one request.
    Cancel(Index, Cancellation),
    /// The balancer's clock and tokio's time move forward, or the balancer's clock moves
    /// back (tokio's time cannot).
    Time(Step),
}

#[derive(Debug, Clone)]
struct Case {
    tau: Duration,
    force_pick_after: Duration,
    when_empty: WhenEmpty,
    seed: u64,
    start: Duration,
    ops: Vec<Op>,
}

fn readiness() -> impl Strategy<Value = Readiness> {
    prop_oneof![
        6 => Just(Readiness::Ready),
        2 => Just(Readiness::Busy),
        1 => Just(Readiness::Broken),
    ]
}

fn cancellation() -> impl Strategy<Value = Cancellation> {
    prop_oneof![3 => Just(Cancellation::Dropped), 1 => Just(Cancellation::Unwound)]
}

fn op() -> impl Strategy<Value = Op> {
    let command = prop_oneof![
        5 => Just(Command::Succeed),
        4 => Just(Command::Fail),
        1 => Just(Command::Panic),
    ];
    let catch = Catch::any();
    let advance = sequence::forward(1_000, 10_000, 10_000..=100_000);
    prop_oneof![
        3 => (0..KEYS, readiness()).prop_map(|(key, ready)| Op::Insert(key, ready)),
        1 => (0..KEYS).prop_map(Op::Remove),
        3 => (0..KEYS, readiness()).prop_map(|(key, ready)| Op::SetReadiness(key, ready)),
        6 => Just(Op::PollReady),
        4 => Just(Op::Call),
        10 => Just(Op::ReadyCall),
        1 => Just(Op::ArmCallPanic),
        12 => (any::<Index>(), command).prop_map(|(at, command)| Op::Resolve(at, command)),
        14 => (any::<Index>(), catch).prop_map(|(at, catch)| Op::Poll(at, catch)),
        3 => (any::<Index>(), cancellation()).prop_map(|(at, how)| Op::Cancel(at, how)),
        6 => advance.prop_map(|by| Op::Time(Step::Advance(by))),
        1 => (1..=15_000_u64).prop_map(|back| Op::Time(Step::Back(ms(back)))),
    ]
}

fn case(max_ops: usize) -> impl Strategy<Value = Case> {
    let when_empty = prop_oneof![
        Just(WhenEmpty::Wait),
        Just(WhenEmpty::FailFast { after: None }),
        (0..50_u64).prop_map(|after| WhenEmpty::FailFast {
            after: Some(ms(after))
        }),
        Just(WhenEmpty::default()),
    ];
    (
        prop::sample::select(vec![ms(1), ms(600), ms(10_000)]),
        prop::sample::select(vec![ms(1), ms(3_000)]),
        when_empty,
        any::<u64>(),
        prop::sample::select(vec![Duration::ZERO, Duration::from_secs(86_400)]),
        prop::collection::vec(op(), 1..=max_ops),
    )
        .prop_map(
            |(tau, force_pick_after, when_empty, seed, start, ops)| Case {
                tau,
                force_pick_after,
                when_empty,
                seed,
                start,
                ops,
            },
        )
}

rampart_testkit::goals! {
    /// The situations every full run must reach.
    const GOALS = [
        CANCEL_FRESH: "cancelled before the first poll",
        CANCEL_PENDING: "cancelled after a pending poll",
        DROP_POISONED: "dropped after a caught panic",
        PANIC_CAUGHT: "response panic caught around the poll",
        PANIC_UNWINDING: "response panic unwinding",
        CALL_PANIC: "panic in an endpoint's call",
        DEMOTED: "busy endpoint picked and demoted",
        BROKEN: "broken endpoint dropped",
        REPLACED: "endpoint replaced",
        REMOVED_BUSY: "endpoint removed with requests in flight",
        CALL_UNREADY: "call without a ready answer",
        FAILED_FAST: "no endpoint: failed fast",
        FAILED_AFTER_TIMER: "no endpoint: failed after the timer",
        FAILURE: "failure recorded",
        STEPPED_BACK: "clock stepped back",
        YEAR_JUMP: "year jump",
        UNWOUND: "cancelled by the caller's own panic",
    ];
}

#[test]
fn the_balancer_counts_what_the_model_counts() {
    let settings = Settings::from_env(320, 800);
    sequence::run_covered(
        "balancer model",
        settings,
        case(settings.max_ops),
        GOALS,
        &[],
        |case, coverage, progress| {
            sequence::play(|| World::new(&case, coverage), &case.ops, progress)
        },
    );
}
