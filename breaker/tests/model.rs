//! Model-based test of the `Breaker` layer: random sequences of calls, completions (success,
//! failure), panics in `call` and in the response future (caught around the poll, or unwinding
//! through the future's owner), cancellations before and after a poll, and clock moves (within
//! a bucket, across buckets, past the window, backwards, a year ahead), applied to the layer
//! and to a reference model of what its window must hold. After every step the breaker's
//! snapshot (admitted, accepts, rejected, weight, drop probability), the backend's live calls
//! and every rejection decision are checked against the model; at the end, the metrics.
//!
//! 320 cases of up to 840 operations run by default (at least 10⁵ operations, checked);
//! `RAMPART_MODEL_CASES=<n>` runs `n` cases instead.

mod support;

use std::sync::Arc;

use metrics_util::debugging::DebuggingRecorder;
use proptest::prelude::*;
use rampart_breaker::{BreakerConfig, BreakerLayer};
use rampart_core::{ManualClock, Outcome};

use rampart_testkit::driver::run_property;
use rampart_testkit::harness;
use rampart_testkit::ops::case;
use support::config::Draws;
use support::harness::{Target, UnderTest};
use support::ops::Case;

/// Breakers of 1 to 5 buckets, some throttling after a single call, some in a dry run, some
/// counting cancellations.
fn config() -> impl Strategy<Value = BreakerConfig> {
    support::config::config(Draws {
        k: vec![1.0, 1.5, 2.0, 4.0],
        min_requests: vec![0, 1, 5, 20],
        buckets: 1..=5,
        bucket_ms: vec![1, 10, 300],
        on_cancel: vec![
            Outcome::Ignore,
            Outcome::Ignore,
            Outcome::Failure,
            Outcome::Success,
        ],
    })
}

fn run(
    config: BreakerConfig,
    case: &Case,
    progress: &rampart_testkit::driver::Progress,
) -> Result<(), TestCaseError> {
    let recorder = DebuggingRecorder::new();
    let clock = ManualClock::starting_at(case.start);
    let breaker =
        metrics::with_local_recorder(&recorder, || config.clone().build_with(clock.clone()))
            .expect("a valid config");
    let breaker = Arc::new(breaker);
    harness::run(
        UnderTest { config },
        clock,
        &BreakerLayer::from_breaker(Arc::clone(&breaker)),
        Target::Single(breaker),
        recorder,
        (&case.ops, progress),
    )
}

#[test]
fn the_breaker_counts_every_outcome_as_its_model_does() {
    run_property(
        "breaker model",
        || (config(), case(1, false)),
        |(config, case), progress| run(config, &case, progress),
    );
}
