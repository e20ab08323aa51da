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
            &[
                ("name", "payments"),
                ("outcome", outcome),
                ("criticality", "critical"),
            ],
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
    let labels = [
        ("name", "api"),
        ("key", "/search"),
        ("outcome", "failure"),
        ("criticality", "critical"),
    ];
    let metrics = take(&snapshotter);
    assert_eq!(
        value(&metrics, "rampart_breaker_requests_total", &labels),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(group.len(), 1);
}

#[tokio::test]
async fn outcomes_and_rejections_are_counted_by_the_calls_criticality() {
    use std::sync::Arc;

    use rampart_breaker::BreakerLayer;
    use rampart_core::{Criticality, RequestContext};
    use tower::{BoxError, Layer, ServiceExt, service_fn};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let breaker = metrics::with_local_recorder(&recorder, || {
        BreakerConfig::default()
            .with_name("feed")
            .with_rejections(Rejections::Sre)
            .with_seed(5)
            .build_with(ManualClock::new())
            .expect("valid")
    });
    let breaker = Arc::new(breaker);
    let client = BreakerLayer::from_breaker(Arc::clone(&breaker)).layer(service_fn(
        |fail: bool| async move {
            if fail {
                Err(BoxError::from("down"))
            } else {
                Ok(())
            }
        },
    ));
    let prefetch = RequestContext::new().with_criticality(Criticality::SHEDDABLE_PLUS);
    for _ in 0..3 {
        prefetch
            .scope(client.clone().oneshot(false))
            .await
            .expect("served");
    }
    client.clone().oneshot(false).await.expect("served");
    // The backend fails: once the window holds 20 calls the breaker throttles (and, with
    // no bucket ended yet, rejects calls of every class alike).
    let mut critical_refused = 0;
    for _ in 0..30 {
        if let Err(err) = client.clone().oneshot(true).await {
            critical_refused += u64::from(err.is::<rampart_breaker::Rejected>());
        }
    }
    assert!(critical_refused > 0);
    let mut refused = 0;
    for _ in 0..20 {
        refused += u64::from(prefetch.scope(client.clone().oneshot(false)).await.is_err());
    }
    assert!(refused > 0);

    let metrics = take(&snapshotter);
    let count = |outcome, criticality| match value(
        &metrics,
        "rampart_breaker_requests_total",
        &[
            ("name", "feed"),
            ("outcome", outcome),
            ("criticality", criticality),
        ],
    ) {
        Some(DebugValue::Counter(count)) => *count,
        other => panic!("{outcome} {criticality}: {other:?}"),
    };
    assert_eq!(count("success", "sheddable-plus"), 3 + (20 - refused));
    assert_eq!(count("rejected", "sheddable-plus"), refused);
    assert_eq!(count("success", "critical"), 1);
    assert_eq!(count("failure", "critical"), 30 - critical_refused);
    assert_eq!(count("rejected", "critical"), critical_refused);
    for outcome in ["success", "failure", "rejected"] {
        assert_eq!(count(outcome, "sheddable"), 0, "registered, never counted");
        assert_eq!(
            count(outcome, "critical-plus"),
            0,
            "registered, never counted"
        );
    }
}
