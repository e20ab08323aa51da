//! The breaker's metrics, read from a `metrics-util` debugging recorder.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_breaker::{BreakerConfig, BreakerGroup, Rejections};
use rampart_core::{ManualClock, Outcome};
use rampart_testkit::recorded::{take, value};

#[test]
fn requests_are_counted_by_outcome_and_the_probability_is_a_gauge() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles bind to the recorder current when the breaker is built.
    let breaker = metrics::with_local_recorder(&recorder, || {
        BreakerConfig::default()
            .with_name("payments")
            .with_rejections(Rejections::Sre)
            .with_seed(3)
            .build_with(ManualClock::new())
            .expect("valid")
    });
    for _ in 0..30 {
        breaker.record(Outcome::Success);
    }
    for _ in 0..70 {
        breaker.record(Outcome::Failure);
    }
    let rejected = (0..100).filter(|_| breaker.allow().is_err()).count() as u64;
    assert!(rejected > 0);

    // The gauge holds the probability of the latest decision; take one now.
    let state = breaker.state();
    let metrics = take(&snapshotter);
    let name = "rampart_breaker_requests_total";
    let count = |outcome| {
        value(
            &metrics,
            name,
            &[("name", "payments"), ("outcome", outcome)],
        )
    };
    assert_eq!(count("success"), Some(&DebugValue::Counter(30)));
    assert_eq!(count("failure"), Some(&DebugValue::Counter(70)));
    assert_eq!(count("rejected"), Some(&DebugValue::Counter(rejected)));
    let gauge = value(
        &metrics,
        "rampart_breaker_drop_probability",
        &[("name", "payments")],
    );
    let Some(DebugValue::Gauge(p)) = gauge else {
        panic!("no gauge: {gauge:?}")
    };
    assert_eq!(p.into_inner(), breaker.snapshot().drop_probability);
    assert!(matches!(
        state,
        rampart_breaker::BreakerState::Throttling { .. }
    ));
}

#[test]
fn group_members_carry_their_key() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let group = metrics::with_local_recorder(&recorder, || {
        let group: BreakerGroup<&str, ManualClock> = BreakerGroup::new_with(
            BreakerConfig::default().with_name("api"),
            ManualClock::new(),
        )
        .expect("valid")
        .with_key_label(|route: &&str| (*route).to_owned());
        group.get(&"/search").record(Outcome::Failure);
        group
    });
    let labels = [("name", "api"), ("key", "/search"), ("outcome", "failure")];
    let metrics = take(&snapshotter);
    assert_eq!(
        value(&metrics, "rampart_breaker_requests_total", &labels),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(group.len(), 1);
}
