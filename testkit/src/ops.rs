//! The operations a layer's model test applies (calls, what becomes of their futures, clock
//! moves, a keyed group's idle evictions, and steps of the layer's own), and their random
//! generation. The breaker's and the rate limiter's model tests share them.
//!
//! ```
//! use std::time::Duration;
//!
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//! use rampart_core::{Clock as _, ManualClock};
//! use rampart_testkit::ops::{Op, operations};
//!
//! let clock = ManualClock::new();
//! let (bucket, window) = (Duration::from_millis(100), Duration::from_secs(1));
//! assert!(Op::<()>::Advance { thousandths: 500 }.move_clock(&clock, bucket, window));
//! assert_eq!(clock.now(), Duration::from_millis(50));
//! assert!(!Op::<()>::Ready(true).move_clock(&clock, bucket, window));
//!
//! let mut runner = TestRunner::deterministic();
//! let ops = operations::<()>(2, true, 20)
//!     .new_tree(&mut runner)
//!     .unwrap()
//!     .current();
//! assert!(ops.len() <= 20);
//! ```

use std::fmt::Debug;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::Union;
use rampart_core::{Clock as _, ManualClock};

use crate::backend::{Fate, fate};

/// 365 days.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// One step of a model test, with `L` the steps of the layer's own. Futures are picked among
/// the live ones by `pick` modulo their number (nothing happens when none is live); clock
/// moves are in thousandths of a bucket.
#[derive(Debug, Clone)]
pub enum Op<L> {
    /// `poll_ready` then, if ready, `call` with a request for `key`; the backend's `call`
    /// panics if `panics`.
    Call {
        /// The request's key.
        key: u8,
        /// Whether the backend's `call` panics.
        panics: bool,
    },
    /// Decides how a live call ends, without polling it.
    Decide {
        /// Which live future.
        pick: usize,
        /// How its call ends.
        fate: Fate,
    },
    /// Polls a live future once. An injected panic is caught around the poll (the future is
    /// dropped later) or, if `owned`, unwinds through a closure that owns the future (it is
    /// dropped while unwinding).
    Poll {
        /// Which live future.
        pick: usize,
        /// Whether the poll owns the future.
        owned: bool,
    },
    /// Decides how a live call ends, then polls it as `Poll` does.
    Complete {
        /// Which live future.
        pick: usize,
        /// How its call ends.
        fate: Fate,
        /// Whether the poll owns the future.
        owned: bool,
    },
    /// Drops a live future: a cancellation if it has not completed.
    Drop {
        /// Which live future.
        pick: usize,
    },
    /// The backend becomes ready or not.
    Ready(bool),
    /// Moves the clock forward.
    Advance {
        /// How far, in thousandths of a bucket.
        thousandths: u32,
    },
    /// Moves the clock forward past the whole window, and then some.
    PastWindow {
        /// How far past, in thousandths of a bucket.
        thousandths: u32,
    },
    /// Moves the clock back (saturating at zero).
    StepBack {
        /// How far, in thousandths of a bucket.
        thousandths: u32,
    },
    /// Moves the clock forward by 365 days.
    Year,
    /// Sets the clock to the last nanosecond it can show (about 584 years), less `thousandths`
    /// of a bucket.
    EndOfTime {
        /// How far before the end, in thousandths of a bucket.
        thousandths: u32,
    },
    /// Evicts a keyed group's idle keys.
    EvictIdle,
    /// A step of the layer's own.
    Layer(L),
}

impl<L> Op<L> {
    /// If this is a clock move, makes it on `clock` (with buckets of `bucket` in a window of
    /// `window`) and returns `true`; otherwise `false`.
    pub fn move_clock(&self, clock: &ManualClock, bucket: Duration, window: Duration) -> bool {
        let part = |thousandths: u32| bucket.mul_f64(f64::from(thousandths) / 1_000.0);
        match *self {
            Op::Advance { thousandths } => clock.advance(part(thousandths)),
            Op::PastWindow { thousandths } => clock.advance(window + part(thousandths)),
            Op::StepBack { thousandths } => {
                clock.set(clock.now().saturating_sub(part(thousandths)));
            }
            Op::Year => clock.advance(YEAR),
            Op::EndOfTime { thousandths } => {
                clock.set(Duration::from_nanos(u64::MAX).saturating_sub(part(thousandths)));
            }
            _ => return false,
        }
        true
    }
}

/// A weighted choice of operations.
pub type Weighted<L> = Vec<(u32, BoxedStrategy<Op<L>>)>;

/// Calls and what becomes of their futures, for requests keyed `0..keys`, and `more`.
fn traffic<L: Debug + Clone + 'static>(
    keys: u8,
    more: Weighted<L>,
) -> impl Strategy<Value = Op<L>> {
    let pick = 0..64_usize;
    let mut traffic: Weighted<L> = vec![
        (
            30,
            (0..keys, prop::bool::weighted(0.08))
                .prop_map(|(key, panics)| Op::Call { key, panics })
                .boxed(),
        ),
        (
            22,
            (pick.clone(), fate(), any::<bool>())
                .prop_map(|(pick, fate, owned)| Op::Complete { pick, fate, owned })
                .boxed(),
        ),
        (
            5,
            (pick.clone(), fate())
                .prop_map(|(pick, fate)| Op::Decide { pick, fate })
                .boxed(),
        ),
        (
            7,
            (pick.clone(), any::<bool>())
                .prop_map(|(pick, owned)| Op::Poll { pick, owned })
                .boxed(),
        ),
        (7, pick.prop_map(|pick| Op::Drop { pick }).boxed()),
        (4, Just(Op::Ready(true)).boxed()),
        (1, Just(Op::Ready(false)).boxed()),
    ];
    traffic.extend(more);
    Union::new_weighted(traffic)
}

/// Clock moves: within a bucket, across a few buckets, past the window, back, a year, and
/// rarely to the end of the clock's range.
fn time<L: Debug + Clone + 'static>() -> impl Strategy<Value = Op<L>> {
    prop_oneof![
        100 => (0..1_000_u32).prop_map(|thousandths| Op::Advance { thousandths }),
        50 => (1_000..4_000_u32).prop_map(|thousandths| Op::Advance { thousandths }),
        30 => (0..2_000_u32).prop_map(|thousandths| Op::PastWindow { thousandths }),
        30 => (1..2_000_u32).prop_map(|thousandths| Op::StepBack { thousandths }),
        10 => Just(Op::Year),
        1 => (0..4_000_u32).prop_map(|thousandths| Op::EndOfTime { thousandths }),
    ]
}

/// The steps of a layer's own in its model test, and how often they come.
pub trait Steps: Debug + Clone + Sized + 'static {
    /// The layer's steps drawn among the calls, with their weights there.
    fn in_traffic() -> Weighted<Self> {
        Vec::new()
    }

    /// The layer's steps drawn beside traffic and clock moves, with their weights.
    fn beside() -> Weighted<Self> {
        Vec::new()
    }
}

impl Steps for () {}

/// Sequences of up to `max_len` operations on requests keyed `0..keys`, by weight out of 98
/// (100 with `evictions`): traffic (with the layer's steps [`Steps::in_traffic`] among the
/// calls) and the layer's steps [`Steps::beside`] 76, clock moves 22; with `evictions`, an
/// [`Op::EvictIdle`] 2.
pub fn operations<L: Steps>(
    keys: u8,
    evictions: bool,
    max_len: usize,
) -> impl Strategy<Value = Vec<Op<L>>> {
    let beside = L::beside();
    let traffic_weight = 76 - beside.iter().map(|(weight, _)| weight).sum::<u32>();
    let mut ops = vec![
        (traffic_weight, traffic(keys, L::in_traffic()).boxed()),
        (22, time().boxed()),
    ];
    ops.extend(beside);
    if evictions {
        ops.push((2, Just(Op::EvictIdle).boxed()));
    }
    prop::collection::vec(Union::new_weighted(ops), 0..=max_len)
}

/// One case of a model test: where the clock starts, and the operations.
#[derive(Debug, Clone)]
pub struct Case<L> {
    /// The clock's reading when the layer is built.
    pub start: Duration,
    /// The operations, in order.
    pub ops: Vec<Op<L>>,
}

/// Cases starting within the first 10 s, of up to 840 [`operations`] on requests keyed
/// `0..keys` (with `evictions`, sometimes an [`Op::EvictIdle`]).
pub fn case<L: Steps>(keys: u8, evictions: bool) -> impl Strategy<Value = Case<L>> {
    (0..10_000_u64, operations(keys, evictions, 840)).prop_map(|(start_ms, ops)| Case {
        start: Duration::from_millis(start_ms),
        ops,
    })
}
