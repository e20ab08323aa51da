//! Model-based test of `BbrGroup` behind `BbrGroupLayer` (`KeyedBbrLimit`): the same
//! operations as `tests/model.rs` on requests of four keys, plus idle evictions, against a
//! model of each key's limiter and of the group's membership (created on first use, a bound of
//! one key or of more keys than are used, idle keys evicted on request and when room is
//! needed, but never a key with requests in flight: a full group whose keys all have requests
//! in flight grows past its bound). After every step: the group's size, that exactly the
//! limiters the group holds or requests in flight hold are alive (the harness holds them
//! weakly), each of them against its model, the backend's live calls, and every decision, read
//! from each key's `requests_total` metrics.
//!
//! 320 cases of up to 840 operations run by default (at least 10⁵ operations, checked);
//! `RAMPART_MODEL_CASES=<n>` runs `n` cases instead.

mod support;

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use proptest::prelude::*;
use rampart_core::ManualClock;
use rampart_ratelimit::{BbrConfig, BbrGroup, BbrGroupLayer, Gate, ManualCpu};
use tower::Layer;

use rampart_testkit::backend::Backend;
use rampart_testkit::bounds::{Bounds, bounds};
use rampart_testkit::driver::{Progress, run_property};
use rampart_testkit::harness;
use rampart_testkit::ops::case;
use support::harness::{Sources, Target, UnderTest};
use support::ops::Case;

/// The number of distinct keys requests carry.
const KEYS: u8 = 4;

/// Member limiters of 2 to 4 buckets, every gate, some in a dry run, all reading one CPU
/// usage and one scheduling delay.
fn config() -> impl Strategy<Value = BbrConfig> {
    let bucket = prop::sample::select(vec![10_u64, 100]).prop_map(Duration::from_millis);
    (
        (2..=4_u32, bucket),
        prop::sample::select(vec![0.0, 0.8]),
        prop::sample::select(vec![0_u64, 5, 1_000]).prop_map(Duration::from_millis),
        prop::sample::select(vec![Gate::Cpu, Gate::LATENCY, Gate::EITHER]),
        prop::bool::weighted(0.75),
    )
        .prop_map(
            |((buckets, bucket), cpu_threshold, cooldown, gate, enforce)| {
                BbrConfig::default()
                    .with_window(bucket * buckets, buckets as usize)
                    .with_cpu_threshold(cpu_threshold)
                    .with_cooldown(cooldown)
                    .with_gate(gate)
                    .with_enforce(enforce)
                    .with_max_delay(Some(Duration::from_millis(10)))
            },
        )
}

fn run(
    config: BbrConfig,
    bounds: &Bounds,
    cpu: f64,
    case: &Case,
    progress: &Progress,
) -> Result<(), TestCaseError> {
    let clock = ManualClock::starting_at(case.start);
    let sources = Sources::new(cpu);
    let group = BbrGroup::new_with(config.clone(), clock.clone(), sources.cpu.clone())
        .and_then(|group| group.with_bounds(bounds.max_keys, bounds.idle_timeout))
        .expect("a valid config")
        .with_delay(sources.delay.clone());
    let layer = BbrGroupLayer::new(group, |request: &u8| *request);
    let target = Target::group(Arc::clone(layer.group()), bounds);
    harness::run(
        UnderTest::new(config, sources),
        clock,
        &layer,
        target,
        DebuggingRecorder::new(),
        (&case.ops, progress),
    )
}

#[test]
fn a_keyed_group_counts_every_request_in_its_key_s_limiter_as_the_model_does() {
    run_property(
        "limiter group model",
        || {
            (
                config(),
                bounds(),
                prop::sample::select(vec![0.0, 0.9]),
                case(KEYS, true),
            )
        },
        |(config, bounds, cpu, case), progress| run(config, &bounds, cpu, &case, progress),
    );
}

/// A request that runs longer than the idle timeout: its key was evicted as idle while the
/// request was in flight, and the key's next limiter started from nothing in flight.
#[test]
fn a_key_with_requests_in_flight_is_not_forgotten_as_idle() {
    let clock = ManualClock::new();
    let group = BbrGroup::new_with(BbrConfig::default(), clock.clone(), ManualCpu::new(0.0))
        .and_then(|group| group.with_bounds(64, Duration::from_secs(1)))
        .expect("a valid config");
    let layer = BbrGroupLayer::new(group, |request: &u8| *request);
    let group = Arc::clone(layer.group());
    let mut service = layer.layer(Backend::new());
    let slow = tower::Service::call(&mut service, 0);
    clock.advance(Duration::from_secs(2));
    group.evict_idle();
    assert_eq!(
        group.get(&0).snapshot().inflight,
        1,
        "key 0's limiter forgot the request still in flight"
    );
    drop(slow);
}
