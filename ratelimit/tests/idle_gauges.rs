//! The gauges of a limiter that sees no requests: current when scraped, not its last busy
//! bucket. Read from a `metrics-util` debugging recorder, on a `ManualClock`.

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use rampart_core::ManualClock;
use rampart_ratelimit::{
    BbrConfig, BbrGroup, BbrGroupLayer, BbrLimitLayer, BbrLimiter, ManualCpu, Permit,
};
use rampart_testkit::recorded;

const MS: Duration = Duration::from_millis(1);
/// Later than a whole default window (10 s) after the traffic below.
const IDLE: Duration = Duration::from_secs(20);

/// The limiter's three gauges, `(inflight, max_inflight, cpu_ratio)`, labelled with all of
/// `labels`. The debugging recorder resets gauges when read: each test reads once, at the end.
fn gauges(snapshotter: &Snapshotter, labels: &[(&str, &str)]) -> (f64, f64, f64) {
    let metrics = recorded::take(snapshotter);
    let gauge = |name: &str| recorded::gauge(&metrics, name, labels);
    (
        gauge("rampart_ratelimit_inflight"),
        gauge("rampart_ratelimit_max_inflight"),
        gauge("rampart_ratelimit_cpu_ratio"),
    )
}

/// Busy buckets, then a request left in flight, and the CPU cooling down: the gauges, set by
/// the last busy bucket's first request, read 3 in flight, a limit of 57 and 50 % CPU; the
/// limiter's state now is 1 in flight, nothing in the window (a limit of 0) and 10 % CPU.
/// Returns the request still in flight.
fn busy_then_idle<'a>(
    limiter: &'a BbrLimiter<ManualClock, ManualCpu>,
    clock: &ManualClock,
    cpu: &ManualCpu,
) -> Permit<&'a BbrLimiter<ManualClock, ManualCpu>> {
    // Bucket 0: 100 requests of 50 ms, so L = 100 × 50 ms × 10 buckets/s = 50, and a limit of
    // 50 + √50 = 57.07 → 57.
    let served: Vec<_> = (0..100)
        .map(|_| limiter.acquire_at(Duration::ZERO).expect("cool"))
        .collect();
    for permit in served {
        permit.complete_at(50 * MS);
    }
    // Buckets 1 and 2: three requests, then one more, whose arrival sets the gauges.
    let mut held: Vec<_> = (0..3)
        .map(|_| limiter.acquire_at(150 * MS).expect("cool"))
        .collect();
    let last = limiter.acquire_at(250 * MS).expect("cool");
    for permit in held.drain(..) {
        permit.complete_at(260 * MS);
    }
    // Then no request for longer than the window.
    cpu.set(0.1);
    clock.set(IDLE);
    last
}

fn config() -> BbrConfig {
    BbrConfig::default().with_name("api")
}

/// A limiter named `api` reading `clock` and `cpu`, its handles bound to `recorder`.
fn limiter_into(
    recorder: &DebuggingRecorder,
    clock: &ManualClock,
    cpu: &ManualCpu,
) -> BbrLimiter<ManualClock, ManualCpu> {
    metrics::with_local_recorder(recorder, || {
        config()
            .build_with(clock.clone(), cpu.clone())
            .expect("valid")
    })
}

#[test]
fn the_limiters_gauges_no_longer_freeze_when_requests_stop() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.5));
    let limiter = limiter_into(&recorder, &clock, &cpu);
    let in_flight = busy_then_idle(&limiter, &clock, &cpu);
    let before = limiter.snapshot();
    limiter.publish_gauges();
    assert_eq!(limiter.snapshot(), before, "publishing changed the state");
    assert_eq!(gauges(&snapshotter, &[("name", "api")]), (1.0, 0.0, 0.1));
    assert_eq!(
        (before.inflight, before.max_inflight, before.cpu),
        (1, 0, 0.1)
    );
    drop(in_flight);
}

#[test]
fn the_gauges_were_those_of_the_last_busy_bucket_until_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.5));
    let limiter = limiter_into(&recorder, &clock, &cpu);
    let _in_flight = busy_then_idle(&limiter, &clock, &cpu);
    // What the test above corrects, so that it can fail: the busy bucket's values.
    assert_eq!(gauges(&snapshotter, &[("name", "api")]), (3.0, 57.0, 0.5));
}

#[test]
fn a_layers_limiter_is_registered_with_the_background_refresher() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.5));
    let layer = BbrLimitLayer::from_limiter(Arc::new(limiter_into(&recorder, &clock, &cpu)));
    let in_flight = busy_then_idle(layer.limiter(), &clock, &cpu);
    // What the refresher does once a second, now.
    rampart_core::gauges::publish_all();
    assert_eq!(gauges(&snapshotter, &[("name", "api")]), (1.0, 0.0, 0.1));
    drop(in_flight);
}

#[test]
fn a_group_layers_members_are_kept_current_by_the_background_refresher() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.5));
    let group = BbrGroup::new_with(config(), clock.clone(), cpu.clone())
        .expect("valid")
        .with_key_label(|route: &&str| (*route).to_owned());
    let layer = BbrGroupLayer::new(group, |route: &&'static str| *route);
    let group = layer.group();
    // A member's handles bind to the recorder current when the member is created.
    let search =
        metrics::with_local_recorder(&recorder, || group.get_at(&"/search", Duration::ZERO));
    let in_flight = busy_then_idle(&search, &clock, &cpu);
    rampart_core::gauges::publish_all();
    let labels = [("name", "api"), ("key", "/search")];
    assert_eq!(gauges(&snapshotter, &labels), (1.0, 0.0, 0.1));
    drop(in_flight);
}

#[test]
fn a_limiter_is_registered_once_however_often_it_is_asked() {
    let limiter = config()
        .build_with(ManualClock::new(), ManualCpu::new(0.0))
        .expect("valid");
    let limiter = Arc::new(limiter);
    let layers: Vec<_> = (0..1_000)
        .map(|_| BbrLimitLayer::from_limiter(Arc::clone(&limiter)))
        .collect();
    // The refresher holds one weak reference: one registration, not a thousand.
    assert_eq!(Arc::weak_count(&limiter), 1, "{} layers", layers.len());
}
