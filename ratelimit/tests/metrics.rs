//! The limiter's metrics, read from a `metrics-util` debugging recorder.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_core::{Criticality, ManualClock, RequestContext};
use rampart_ratelimit::{BbrConfig, BbrLimiter, ManualCpu};
use rampart_testkit::recorded::{gauge, take, value};

/// A limiter named `api` reporting into `recorder`.
fn limiter_into(
    recorder: &DebuggingRecorder,
    clock: &ManualClock,
    cpu: ManualCpu,
) -> BbrLimiter<ManualClock, ManualCpu> {
    metrics::with_local_recorder(recorder, || {
        BbrConfig::default()
            .with_name("api")
            .build_with(clock.clone(), cpu)
            .expect("valid")
    })
}

#[test]
fn requests_are_counted_by_outcome_and_gauges_follow_once_per_bucket() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let limiter = limiter_into(&recorder, &clock, ManualCpu::new(1.0));
    // A hot server with no proven capacity: two admitted, then everything shed.
    let held: Vec<_> = (0..10).filter_map(|_| limiter.acquire().ok()).collect();
    assert_eq!(held.len(), 2);
    // The first request of the next bucket publishes the gauges.
    clock.advance(Duration::from_millis(100));
    let _ = limiter.acquire();

    let metrics = take(&snapshotter);
    let requests = |outcome| {
        value(
            &metrics,
            "rampart_ratelimit_requests_total",
            &[
                ("name", "api"),
                ("outcome", outcome),
                ("criticality", "critical"),
            ],
        )
    };
    // Requests that say no criticality count as the default class.
    assert_eq!(requests("admitted"), Some(&DebugValue::Counter(2)));
    assert_eq!(requests("shed"), Some(&DebugValue::Counter(9)));
    let gauge = |name| gauge(&metrics, name, &[("name", "api")]);
    assert_eq!(gauge("rampart_ratelimit_inflight"), 2.0);
    assert_eq!(gauge("rampart_ratelimit_cpu_ratio"), 1.0);
    assert_eq!(gauge("rampart_ratelimit_max_inflight"), 0.0);
    drop(held);
}

#[test]
fn decisions_are_counted_per_criticality_class() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let limiter = limiter_into(&recorder, &clock, ManualCpu::new(1.0));
    let batch = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
    let held: Vec<_> = {
        let _scope = batch.enter();
        (0..5).filter_map(|_| limiter.acquire().ok()).collect()
    };
    let vip = RequestContext::new().with_criticality(Criticality::CRITICAL_PLUS);
    let refused = vip.enter();
    let error = limiter.acquire().expect_err("hot, and past the limit");
    drop(refused);
    assert_eq!(error.criticality(), Some(Criticality::CRITICAL_PLUS));
    assert_eq!(error.to_string(), "service overloaded: shed critical-plus");

    let metrics = take(&snapshotter);
    let requests = |outcome, class| {
        value(
            &metrics,
            "rampart_ratelimit_requests_total",
            &[
                ("name", "api"),
                ("outcome", outcome),
                ("criticality", class),
            ],
        )
    };
    assert_eq!(
        requests("admitted", "sheddable"),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(requests("shed", "sheddable"), Some(&DebugValue::Counter(3)));
    assert_eq!(
        requests("shed", "critical-plus"),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        requests("admitted", "critical"),
        Some(&DebugValue::Counter(0))
    );
    drop(held);
}

#[test]
fn the_inflight_gauge_reads_zero_once_the_last_request_completes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let limiter = limiter_into(&recorder, &clock, ManualCpu::new(0.0));
    let inflight = || {
        let metrics = take(&snapshotter);
        match value(&metrics, "rampart_ratelimit_inflight", &[("name", "api")]) {
            Some(DebugValue::Gauge(value)) => value.into_inner(),
            other => panic!("rampart_ratelimit_inflight: {other:?}"),
        }
    };
    let mut held: Vec<_> = (0..3).map(|_| limiter.acquire().expect("cool")).collect();
    // A burst in the next bucket: its first arrival samples the three in flight.
    clock.advance(Duration::from_millis(100));
    held.extend((0..2).map(|_| limiter.acquire().expect("cool")));
    // Then traffic stops and the burst completes: the last completion leaves the server
    // showing none in flight, not the arrival's stale sample of three. (The debugging
    // recorder resets gauges when read, so the gauge is read once, at the end.)
    clock.advance(Duration::from_millis(5));
    drop(held);
    assert_eq!(inflight(), 0.0);
}
