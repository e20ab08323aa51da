//! The operations a model test applies: the layers' shared ones, and the limiter's own.

use proptest::prelude::*;
use rampart_testkit::ops::{Steps, Weighted};

/// The limiter's own steps: the signals it reads.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// Sets the CPU usage the limiter reads.
    Cpu(f64),
    /// Sets the runtime's scheduling delay the limiter reads, in milliseconds.
    Delay(u64),
}

/// The signals a limiter reads, beside the traffic: mostly CPU usage, sometimes a late runtime.
impl Steps for Signal {
    fn beside() -> Weighted<Self> {
        let signals = prop_oneof![
            4 => prop::sample::select(vec![0.0, 0.3, 0.79, 0.8, 0.95, 1.0])
                .prop_map(|cpu| Op::Layer(Signal::Cpu(cpu))),
            1 => prop::sample::select(vec![0_u64, 0, 0, 0, 0, 5, 10, 11, 40])
                .prop_map(|ms| Op::Layer(Signal::Delay(ms))),
        ];
        vec![(4, signals.boxed())]
    }
}

/// One step of a model test.
pub(crate) type Op = rampart_testkit::ops::Op<Signal>;

/// One case of a model test.
pub(crate) type Case = rampart_testkit::ops::Case<Signal>;
