//! The operations a model test applies, and their random generation: the layers' shared ones,
//! and the limiter's own.

use proptest::prelude::*;

/// The limiter's own steps: the signals it reads.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// Sets the CPU usage the limiter reads.
    Cpu(f64),
    /// Sets the runtime's scheduling delay the limiter reads, in milliseconds.
    Delay(u64),
}

/// One step of a model test.
pub(crate) type Op = rampart_testkit::ops::Op<Signal>;

/// The signals a limiter reads: mostly CPU usage, sometimes a late runtime.
fn signals() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::sample::select(vec![0.0, 0.3, 0.79, 0.8, 0.95, 1.0])
            .prop_map(|cpu| Op::Layer(Signal::Cpu(cpu))),
        1 => prop::sample::select(vec![0_u64, 0, 0, 0, 0, 5, 10, 11, 40])
            .prop_map(|ms| Op::Layer(Signal::Delay(ms))),
    ]
}

/// Sequences of up to `max_len` operations on requests keyed `0..keys`, signal changes beside
/// them; with `evictions`, sometimes an [`Op::EvictIdle`].
pub(crate) fn operations(
    keys: u8,
    evictions: bool,
    max_len: usize,
) -> impl Strategy<Value = Vec<Op>> {
    rampart_testkit::ops::operations(
        keys,
        evictions,
        max_len,
        vec![],
        vec![(4, signals().boxed())],
    )
}
