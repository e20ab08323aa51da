//! The operations a model test applies, and their random generation.

use proptest::prelude::*;
use proptest::strategy::Union;

use super::backend::{Fate, fate};

/// One step of a model test. Futures are picked among the live ones by `pick` modulo their
/// number (nothing happens when none is live); clock moves are in thousandths of a bucket.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `poll_ready` then, if ready, `call` with a request for `key`; the backend's `call`
    /// panics if `panics`.
    Call { key: u8, panics: bool },
    /// Decides how a live call ends, without polling it.
    Decide { pick: usize, fate: Fate },
    /// Polls a live future once. An injected panic is caught around the poll (the future is
    /// dropped later) or, if `owned`, unwinds through a closure that owns the future (it is
    /// dropped while unwinding).
    Poll { pick: usize, owned: bool },
    /// Decides how a live call ends, then polls it as `Poll` does.
    Complete {
        pick: usize,
        fate: Fate,
        owned: bool,
    },
    /// Drops a live future: a cancellation if it has not completed.
    Drop { pick: usize },
    /// The backend becomes ready or not.
    Ready(bool),
    /// Moves the clock forward.
    Advance { thousandths: u32 },
    /// Moves the clock forward past the whole window, and then some.
    PastWindow { thousandths: u32 },
    /// Moves the clock back (saturating at zero).
    StepBack { thousandths: u32 },
    /// Moves the clock forward by 365 days.
    Year,
    /// Sets the clock to the last nanosecond it can show (about 584 years), less `thousandths`
    /// of a bucket.
    EndOfTime { thousandths: u32 },
    /// Evicts a keyed group's idle keys.
    EvictIdle,
    /// Asks every breaker alive for its state (a decision's view of the window, which moves
    /// it to now).
    State,
}

/// Calls and what becomes of their futures, for requests keyed `0..keys`.
fn traffic(keys: u8) -> impl Strategy<Value = Op> {
    let pick = 0..64_usize;
    prop_oneof![
        30 => (0..keys, prop::bool::weighted(0.08)).prop_map(|(key, panics)| Op::Call { key, panics }),
        22 => (pick.clone(), fate(), any::<bool>())
            .prop_map(|(pick, fate, owned)| Op::Complete { pick, fate, owned }),
        5 => (pick.clone(), fate()).prop_map(|(pick, fate)| Op::Decide { pick, fate }),
        7 => (pick.clone(), any::<bool>()).prop_map(|(pick, owned)| Op::Poll { pick, owned }),
        7 => pick.prop_map(|pick| Op::Drop { pick }),
        4 => Just(Op::Ready(true)),
        1 => Just(Op::Ready(false)),
        3 => Just(Op::State),
    ]
}

/// Clock moves: within a bucket, across a few buckets, past the window, back, a year, and
/// rarely to the end of the clock's range.
fn time() -> impl Strategy<Value = Op> {
    prop_oneof![
        100 => (0..1_000_u32).prop_map(|thousandths| Op::Advance { thousandths }),
        50 => (1_000..4_000_u32).prop_map(|thousandths| Op::Advance { thousandths }),
        30 => (0..2_000_u32).prop_map(|thousandths| Op::PastWindow { thousandths }),
        30 => (1..2_000_u32).prop_map(|thousandths| Op::StepBack { thousandths }),
        10 => Just(Op::Year),
        1 => (0..4_000_u32).prop_map(|thousandths| Op::EndOfTime { thousandths }),
    ]
}

/// Sequences of up to `max_len` operations on requests keyed `0..keys`; with `evictions`,
/// sometimes an [`Op::EvictIdle`].
pub(crate) fn operations(
    keys: u8,
    evictions: bool,
    max_len: usize,
) -> impl Strategy<Value = Vec<Op>> {
    let mut ops = vec![(76, traffic(keys).boxed()), (22, time().boxed())];
    if evictions {
        ops.push((2, Just(Op::EvictIdle).boxed()));
    }
    prop::collection::vec(Union::new_weighted(ops), 0..=max_len)
}
