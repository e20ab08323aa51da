//! Model-based test of `BreakerGroup` behind `BreakerGroupLayer` (`KeyedBreaker`): the same
//! operations as `tests/model.rs` on requests of four keys, plus idle evictions, against a
//! model of each key's breaker and of the group's membership (created on first use, a bound
//! of one key or of more keys than are used, idle keys evicted on request and when room is
//! needed, but never a key with calls in flight: a full group whose keys all have calls in
//! flight grows past its bound). After every step: the group's size, that exactly the breakers
//! the group holds or calls in flight hold are alive (the harness holds them weakly), each
//! of them against its model, the backend's live calls, and every rejection decision; at the
//! end, the metrics of each key.
//!
//! 320 cases of up to 840 operations run by default (at least 10⁵ operations, checked);
//! `RAMPART_MODEL_CASES=<n>` runs `n` cases instead.

mod support;

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use proptest::prelude::*;
use rampart_breaker::{BreakerConfig, BreakerGroup, BreakerGroupLayer};
use rampart_core::{ManualClock, Outcome};
use tower::Layer;

use rampart_testkit::backend::Backend;
use rampart_testkit::bounds::{Bounds, bounds};
use rampart_testkit::driver::{Progress, run_property};
use rampart_testkit::harness;
use rampart_testkit::ops::case;
use support::config::Draws;
use support::harness::{Target, UnderTest};
use support::ops::Case;

/// The number of distinct keys requests carry.
const KEYS: u8 = 4;

/// Member breakers of 1 to 4 buckets, some in a dry run, some counting cancellations.
fn config() -> impl Strategy<Value = BreakerConfig> {
    support::config::config(Draws {
        k: vec![1.0, 2.0],
        min_requests: vec![0, 3, 20],
        buckets: 1..=4,
        bucket_ms: vec![10, 300],
        on_cancel: vec![Outcome::Ignore, Outcome::Failure],
    })
}

fn run(
    config: BreakerConfig,
    bounds: &Bounds,
    case: &Case,
    progress: &Progress,
) -> Result<(), TestCaseError> {
    let clock = ManualClock::starting_at(case.start);
    let group = BreakerGroup::new_with(config.clone(), clock.clone())
        .and_then(|group| group.with_max_keys(bounds.max_keys))
        .and_then(|group| group.with_idle_timeout(bounds.idle_timeout))
        .expect("a valid config");
    let layer = BreakerGroupLayer::new(group, |request: &u8| *request);
    let target = Target::group(Arc::clone(layer.group()), bounds);
    harness::run(
        UnderTest { config },
        clock,
        &layer,
        target,
        DebuggingRecorder::new(),
        (&case.ops, progress),
    )
}

#[test]
fn a_keyed_group_counts_every_outcome_in_its_key_s_breaker_as_the_model_does() {
    run_property(
        "breaker group model",
        || (config(), bounds(), case(KEYS, true)),
        |(config, bounds, case), progress| run(config, &bounds, &case, progress),
    );
}

/// A call that runs longer than the idle timeout: its key was evicted as idle while the call
/// was in flight, and its failure counted in a breaker the group no longer held.
#[test]
fn a_key_with_calls_in_flight_is_not_forgotten_as_idle() {
    use rampart_testkit::backend::Fate;
    use rampart_testkit::driver::{Polled, poll_caught};

    let clock = ManualClock::new();
    let group = BreakerGroup::new_with(BreakerConfig::default(), clock.clone())
        .and_then(|group| group.with_idle_timeout(Duration::from_secs(1)))
        .expect("a valid config");
    let layer = BreakerGroupLayer::new(group, |request: &u8| *request);
    let group = Arc::clone(layer.group());
    let backend = Backend::new();
    let mut service = layer.layer(backend.clone());
    let mut slow = Box::pin(tower::Service::call(&mut service, 0));
    clock.advance(Duration::from_secs(2));
    group.evict_idle();
    backend.decide(0, Fate::Fail);
    assert!(matches!(poll_caught(&mut slow), Polled::Ready(Err(_))));
    assert_eq!(
        group.get(&0).snapshot().admitted,
        1,
        "key 0's failure was counted in a breaker the group no longer holds"
    );
}
