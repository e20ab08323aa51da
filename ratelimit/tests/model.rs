//! Model-based test of the `BbrLimit` layer: random sequences of calls, completions (success,
//! failure), panics in `call` and in the response future (caught around the poll, or unwinding
//! through the future's owner), cancellations before and after a poll, CPU and scheduling-delay
//! changes, and clock moves (within a bucket, across buckets, past the window, backwards, a
//! year ahead), applied to the layer and to a reference model of what it must count. After
//! every step the limiter's snapshot (requests in flight, the window's passes and response
//! times, the cooldown, the gate) and the backend's live calls are checked against the model,
//! and every decision (read from the `requests_total` metrics, so dry runs too) against what
//! the model allows.
//!
//! 320 cases of up to 840 operations run by default (at least 10⁵ operations, checked);
//! `RAMPART_MODEL_CASES=<n>` runs `n` cases instead.

mod support;

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use proptest::prelude::*;
use rampart_core::ManualClock;
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, Gate};

use rampart_testkit::driver::{Progress, run_property};
use rampart_testkit::harness;
use rampart_testkit::ops::case;
use support::harness::{Sources, Target, UnderTest};
use support::ops::Case;

/// Limiters of 2 to 5 buckets, every gate, cooldowns from none to many windows, headroom from
/// none (Kratos's limit) to three square roots, some in a dry run, all reading a scheduling
/// delay.
pub(crate) fn config() -> impl Strategy<Value = BbrConfig> {
    let bucket = prop::sample::select(vec![1_u64, 10, 100]).prop_map(Duration::from_millis);
    (
        (2..=5_u32, bucket),
        prop::sample::select(vec![0.0, 0.5, 0.8, 1.0]),
        prop::sample::select(vec![0_u64, 1, 5, 100, 1_000]).prop_map(Duration::from_millis),
        prop::sample::select(vec![
            Gate::Cpu,
            Gate::Cpu,
            Gate::Latency { inflation: 1.0 },
            Gate::LATENCY,
            Gate::EITHER,
        ]),
        (
            prop::bool::weighted(0.75),
            prop::sample::select(vec![0.0, 1.0, 1.0, 3.0]),
        ),
    )
        .prop_map(
            |((buckets, bucket), cpu_threshold, cooldown, gate, (enforce, headroom))| {
                BbrConfig::default()
                    .with_window(bucket * buckets, buckets as usize)
                    .with_cpu_threshold(cpu_threshold)
                    .with_cooldown(cooldown)
                    .with_gate(gate)
                    .with_headroom(headroom)
                    .with_enforce(enforce)
                    .with_max_delay(Some(Duration::from_millis(10)))
            },
        )
}

/// The CPU usage a case starts at.
pub(crate) fn cpu() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![0.0, 0.5, 0.9])
}

fn run(config: BbrConfig, cpu: f64, case: &Case, progress: &Progress) -> Result<(), TestCaseError> {
    let recorder = DebuggingRecorder::new();
    let clock = ManualClock::starting_at(case.start);
    let sources = Sources::new(cpu);
    let limiter = metrics::with_local_recorder(&recorder, || {
        config
            .clone()
            .build_with(clock.clone(), sources.cpu.clone())
    })
    .expect("a valid config")
    .with_delay(sources.delay.clone());
    let limiter = Arc::new(limiter);
    harness::run(
        UnderTest::new(config, sources),
        clock,
        &BbrLimitLayer::from_limiter(Arc::clone(&limiter)),
        Target::Single(limiter),
        recorder,
        (&case.ops, progress),
    )
}

#[test]
fn the_limiter_counts_every_request_as_its_model_does() {
    run_property(
        "limiter model",
        || (config(), cpu(), case(1, false)),
        |(config, cpu, case), progress| run(config, cpu, &case, progress),
    );
}
