//! The operations a model test applies, and their random generation: the layers' shared ones,
//! and the breaker's own.

use proptest::prelude::*;

/// The breaker's own step.
#[derive(Debug, Clone)]
pub(crate) enum Breaker {
    /// Asks every breaker alive for its state (a decision's view of the window, which moves
    /// it to now).
    State,
}

/// One step of a model test.
pub(crate) type Op = rampart_testkit::ops::Op<Breaker>;

/// Sequences of up to `max_len` operations on requests keyed `0..keys`, state reads among
/// the calls; with `evictions`, sometimes an [`Op::EvictIdle`].
pub(crate) fn operations(
    keys: u8,
    evictions: bool,
    max_len: usize,
) -> impl Strategy<Value = Vec<Op>> {
    rampart_testkit::ops::operations(
        keys,
        evictions,
        max_len,
        vec![(3, Just(Op::Layer(Breaker::State)).boxed())],
        vec![],
    )
}
