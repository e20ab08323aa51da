//! The operations a model test applies: the layers' shared ones, and the breaker's own.

use proptest::prelude::*;
use rampart_testkit::ops::{Steps, Weighted};

/// The breaker's own step.
#[derive(Debug, Clone)]
pub(crate) enum Breaker {
    /// Asks every breaker alive for its state (a decision's view of the window, which moves
    /// it to now).
    State,
}

impl Steps for Breaker {
    fn in_traffic() -> Weighted<Self> {
        vec![(3, Just(Op::Layer(Breaker::State)).boxed())]
    }
}

/// One step of a model test.
pub(crate) type Op = rampart_testkit::ops::Op<Breaker>;

/// One case of a model test.
pub(crate) type Case = rampart_testkit::ops::Case<Breaker>;
