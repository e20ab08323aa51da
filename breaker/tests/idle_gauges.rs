//! The drop-probability gauge of a breaker that sees no calls: current when scraped, not its
//! last busy second. Read from a `metrics-util` debugging recorder, on a `ManualClock`.

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use rampart_breaker::{
    BreakerConfig, BreakerGroup, BreakerGroupLayer, BreakerLayer, BreakerState, SreBreaker,
};
use rampart_core::{ManualClock, Outcome};
use rampart_testkit::recorded;

/// The default window: a whole one without calls leaves nothing in it.
const WINDOW: Duration = Duration::from_secs(3);
const GAUGE: &str = "rampart_breaker_drop_probability";

/// The gauge labelled with all of `labels`. The debugging recorder resets gauges when read:
/// each test reads once, at the end.
fn gauge(snapshotter: &Snapshotter, labels: &[(&str, &str)]) -> f64 {
    recorded::gauge(&recorded::take(snapshotter), GAUGE, labels)
}

/// 100 failures, then a decision, which sets the gauge to 100/101.
fn fail_and_decide(breaker: &SreBreaker<ManualClock>) {
    for _ in 0..100 {
        breaker.record(Outcome::Failure);
    }
    assert!(matches!(breaker.state(), BreakerState::Throttling { .. }));
}

fn config() -> BreakerConfig {
    BreakerConfig::default().with_name("payments").with_seed(1)
}

#[test]
fn the_drop_probability_gauge_no_longer_freezes_when_calls_stop() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let breaker = metrics::with_local_recorder(&recorder, || {
        config().build_with(clock.clone()).expect("valid")
    });
    fail_and_decide(&breaker);
    // No call for a whole window: the failures have expired.
    clock.advance(WINDOW);
    breaker.publish_gauges();
    assert_eq!(gauge(&snapshotter, &[("name", "payments")]), 0.0);
}

#[test]
fn publishing_sets_the_probability_at_the_current_instant_and_leaves_the_window_alone() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let breaker = metrics::with_local_recorder(&recorder, || {
        config().build_with(clock.clone()).expect("valid")
    });
    // 60 successes, then, 1.5 s later, 100 failures: p = (160 − 120) / 161.
    for _ in 0..60 {
        breaker.record(Outcome::Success);
    }
    clock.advance(Duration::from_millis(1_500));
    fail_and_decide(&breaker);
    // 1.5 s on, the successes have expired and the failures remain: p = 100/101, published
    // by no call.
    clock.advance(Duration::from_millis(1_500));
    let before = breaker.snapshot();
    breaker.publish_gauges();
    assert_eq!(breaker.snapshot(), before, "publishing changed the window");
    assert_eq!(before.drop_probability, 100.0 / 101.0);
    assert_eq!(
        gauge(&snapshotter, &[("name", "payments")]),
        before.drop_probability
    );
}

#[test]
fn a_layers_breaker_is_registered_with_the_background_refresher() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let layer = metrics::with_local_recorder(&recorder, || {
        let breaker = config().build_with(clock.clone()).expect("valid");
        BreakerLayer::from_breaker(Arc::new(breaker))
    });
    fail_and_decide(layer.breaker());
    clock.advance(WINDOW);
    // What the refresher does once a second, now.
    rampart_core::gauges::publish_all();
    assert_eq!(gauge(&snapshotter, &[("name", "payments")]), 0.0);
}

#[test]
fn a_group_layers_members_are_kept_current_by_the_background_refresher() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let group = metrics::with_local_recorder(&recorder, || {
        let group: BreakerGroup<&str, ManualClock> =
            BreakerGroup::new_with(config().with_name("api"), clock.clone())
                .expect("valid")
                .with_key_label(|route: &&str| (*route).to_owned());
        let layer = BreakerGroupLayer::new(group, |route: &&'static str| *route);
        let group = Arc::clone(layer.group());
        fail_and_decide(&group.get(&"/search"));
        group
    });
    clock.advance(WINDOW);
    rampart_core::gauges::publish_all();
    assert_eq!(
        gauge(&snapshotter, &[("name", "api"), ("key", "/search")]),
        0.0
    );
    assert_eq!(group.len(), 1);
}

#[test]
fn a_breaker_is_registered_once_however_often_it_is_asked() {
    let clock = ManualClock::new();
    let breaker = Arc::new(config().build_with(clock).expect("valid"));
    let layers: Vec<_> = (0..1_000)
        .map(|_| BreakerLayer::from_breaker(Arc::clone(&breaker)))
        .collect();
    // The refresher holds one weak reference: one registration, not a thousand.
    assert_eq!(Arc::weak_count(&breaker), 1, "{} layers", layers.len());
}
