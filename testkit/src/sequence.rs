//! What the sequence models of the retry layer and of the balancer share besides the run
//! itself ([`crate::model`]): playing one sequence against a world on paused time, the two
//! ways of catching a panic in a poll, the checks on a call told to panic, and time that moves
//! tokio's paused clock and a [`ManualClock`] together.
//!
//! A model test names its operations and its world; this module plays them:
//!
//! ```
//! use std::future::Future;
//!
//! use proptest::prelude::*;
//! use proptest::test_runner::TestCaseError;
//! use rampart_testkit::model::{Coverage, Settings};
//! use rampart_testkit::sequence::{self, World};
//!
//! /// Adds what it is told; the model says the sum is never below the count of steps.
//! struct Sum<'a> {
//!     sum: u64,
//!     steps: u64,
//!     coverage: &'a Coverage<1>,
//! }
//!
//! impl World for Sum<'_> {
//!     type Op = u64;
//!
//!     fn step(&mut self, op: &u64) -> impl Future<Output = Result<(), TestCaseError>> {
//!         self.sum += op;
//!         self.steps += 1;
//!         self.coverage.hit(0);
//!         async { Ok(()) }
//!     }
//!
//!     fn finish(&mut self) -> Result<(), TestCaseError> {
//!         prop_assert!(self.sum >= self.steps);
//!         Ok(())
//!     }
//! }
//!
//! let settings = Settings { cases: 100, max_ops: 200, seed: 7 };
//! let strategy = prop::collection::vec(1..10_u64, 1..=settings.max_ops);
//! let ops = sequence::run_covered(
//!     "sum",
//!     settings,
//!     strategy,
//!     ["stepped"],
//!     &[],
//!     |ops, coverage, progress| {
//!         sequence::play(|| Sum { sum: 0, steps: 0, coverage }, &ops, progress)
//!     },
//! );
//! assert!(ops >= 100, "every case has at least one operation");
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use proptest::prelude::{Just, Strategy, prop_oneof};
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use rampart_core::{Clock, ManualClock};

use crate::model::{
    self, Coverage, INJECTED, Polled, Progress, Settings, poll_catching, poll_unwinding,
};

/// A year: the longest step time takes in a model.
pub const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// `millis` milliseconds.
pub const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The system under test beside its model, driven one operation at a time.
pub trait World {
    /// One operation of a sequence.
    type Op;

    /// Performs `op` on the system and the model, and checks that they agree.
    fn step(&mut self, op: &Self::Op) -> impl Future<Output = Result<(), TestCaseError>>;

    /// Ends the sequence (what is left is cancelled) and checks that they still agree.
    ///
    /// # Errors
    ///
    /// Where the system and the model disagree.
    fn finish(&mut self) -> Result<(), TestCaseError>;
}

/// Plays `ops` on the world `make` builds, on a fresh current-thread runtime with tokio's
/// clock paused (the world is built inside it), counting each finished operation on
/// `progress`; then finishes the world.
///
/// # Errors
///
/// The first disagreement between the system and the model.
pub fn play<W: World>(
    make: impl FnOnce() -> W,
    ops: &[W::Op],
    progress: &Progress,
) -> Result<(), TestCaseError> {
    model::paused_runtime().block_on(async {
        let mut world = make();
        for op in ops {
            world.step(op).await?;
            progress.tick();
        }
        world.finish()
    })
}

/// Runs a sequence model ([`model::run`]) with coverage goals named `goals`, which `test`
/// counts; when the run is full, asserts that every goal but the `excused` ones was reached
/// and reports the operations performed and the goals' counts. Returns the operations.
///
/// # Panics
///
/// If the test fails (with the minimal failing value), or a goal of a full run was missed.
pub fn run_covered<S, const N: usize>(
    name: &str,
    settings: Settings,
    strategy: S,
    goals: [&'static str; N],
    excused: &[usize],
    test: impl Fn(S::Value, &Coverage<N>, &Progress) -> Result<(), TestCaseError>,
) -> u64
where
    S: Strategy,
    S::Value: Debug,
{
    let coverage = Coverage::new(goals);
    let ops = model::run(name, settings, strategy, |value, progress| {
        test(value, &coverage, progress)
    });
    if settings.is_full() {
        let reached = coverage.assert_all_reached(name, excused);
        eprintln!("{name}: {ops} operations; {reached}");
    }
    ops
}

/// Where a panic in a poll is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catch {
    /// Around the poll: the response future survives and is dropped later.
    Around,
    /// By whoever owns the future: it is dropped during the unwinding.
    Unwinding,
}

impl Catch {
    /// Either, equally often.
    pub fn any() -> impl Strategy<Value = Self> {
        prop_oneof![Just(Self::Around), Just(Self::Unwinding)]
    }
}

/// Takes the future out of `slot` and polls it once, its panic caught as `catch` says: the
/// future comes back unless it was dropped during the unwinding.
///
/// # Panics
///
/// If `slot` is empty: a request polled again after its future was dropped is a defect of
/// the model.
pub fn poll<F: Future + ?Sized>(
    slot: &mut Option<Pin<Box<F>>>,
    catch: Catch,
) -> (Option<Pin<Box<F>>>, Polled<F::Output>) {
    let future = slot.take().expect("a live request has its future");
    match catch {
        Catch::Around => {
            let mut future = future;
            let polled = poll_catching(&mut future);
            (Some(future), polled)
        }
        Catch::Unwinding => poll_unwinding(future),
    }
}

/// The item `at` picks from `items`, if there is one.
pub fn pick<T>(items: &[T], at: Index) -> Option<&T> {
    (!items.is_empty()).then(|| &items[at.index(items.len())])
}

/// Removes the item `at` picks from `items`, if there is one.
pub fn remove_at<T>(items: &mut Vec<T>, at: Index) -> Option<T> {
    (!items.is_empty()).then(|| items.remove(at.index(items.len())))
}

/// Checks what a `call` gave, its inner call told to panic (`armed`, which this disarms) or
/// not: the response future, or `None` when the call panicked with the injected panic as it
/// had to. `not_injected` says what an armed call that did not panic means.
///
/// # Errors
///
/// If an armed call did not panic or panicked with another message, or a call not armed
/// panicked.
pub fn armed_call<T>(
    called: Result<T, String>,
    armed: &mut bool,
    not_injected: &'static str,
) -> Result<Option<T>, TestCaseError> {
    if !std::mem::take(armed) {
        return self::called(called).map(Some);
    }
    let Err(message) = called else {
        return Err(TestCaseError::fail(not_injected));
    };
    proptest::prop_assert!(
        message.starts_with(INJECTED),
        "unexpected panic: {}",
        message
    );
    Ok(None)
}

/// The response future of a `call` that must not have panicked.
///
/// # Errors
///
/// If it panicked, with the panic's message.
pub fn called<T>(called: Result<T, String>) -> Result<T, TestCaseError> {
    called.map_err(|message| TestCaseError::fail(format!("call panicked: {message}")))
}

/// How far a model's time moves forward, in whole milliseconds (tokio's timer resolution):
/// mostly up to 20 ms, often up to `short` ms, sometimes up to `medium` ms, now and then by
/// `long` ms, and once in a while a [`YEAR`].
pub fn forward(
    short: u64,
    medium: u64,
    long: std::ops::RangeInclusive<u64>,
) -> impl Strategy<Value = Duration> {
    prop_oneof![
        6 => (1..=20_u64).prop_map(ms),
        3 => (20..=short).prop_map(ms),
        2 => (short..=medium).prop_map(ms),
        1 => long.prop_map(ms),
        1 => Just(YEAR),
    ]
}

/// A move of a model's time: tokio's paused clock and a [`ManualClock`] moved with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Both move forward by this much.
    Advance(Duration),
    /// The `ManualClock` moves back by this much, not before its zero (tokio's clock cannot
    /// move back).
    Back(Duration),
}

impl Step {
    /// Moves `clock`, tokio's paused clock and `now` (tokio's time since the start, as the
    /// model keeps it), and counts the goal reached: `year` for an advance of a year or more,
    /// `back` for a step back.
    pub async fn apply<const N: usize>(
        self,
        clock: &ManualClock,
        now: &mut Duration,
        coverage: &Coverage<N>,
        [year, back]: [usize; 2],
    ) {
        match self {
            Self::Advance(by) => {
                tokio::time::advance(by).await;
                clock.advance(by);
                *now += by;
                if by >= YEAR {
                    coverage.hit(year);
                }
            }
            Self::Back(by) => {
                clock.set(clock.now().saturating_sub(by));
                coverage.hit(back);
            }
        }
    }
}

/// Names a model's coverage goals: `const GOALS = [NAME: "what it is", ...];` defines the
/// array `GOALS` of the descriptions, for [`Coverage::new`], and beside it a `usize` constant
/// per goal, its index, for [`Coverage::hit`]; a goal's number is never written by hand.
///
/// ```
/// rampart_testkit::goals! {
///     /// The situations every full run must reach.
///     const GOALS = [
///         FRESH: "cancelled before the first poll",
///         PENDING: "cancelled after a pending poll",
///     ];
/// }
///
/// assert_eq!(GOALS[PENDING], "cancelled after a pending poll");
/// assert_eq!((FRESH, PENDING, GOALS.len()), (0, 1, 2));
/// ```
#[macro_export]
macro_rules! goals {
    ($(#[$meta:meta])* const $all:ident = [$($name:ident: $text:literal),* $(,)?];) => {
        $(#[$meta])*
        const $all: [&str; [$($text),*].len()] = [$($text),*];
        $crate::goals!(@index 0_usize; $($name)*);
    };
    (@index $at:expr; $name:ident $($rest:ident)*) => {
        const $name: usize = $at;
        $crate::goals!(@index $at + 1; $($rest)*);
    };
    (@index $at:expr;) => {};
}
