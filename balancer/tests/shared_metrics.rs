//! `SharedP2c`'s metrics, read from a `metrics-util` debugging recorder: the same names and
//! labels as `P2c`'s, reported once for all the handles.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_balancer::{P2cConfig, PeakSuccess, SharedP2c};
use rampart_core::ManualClock;
use rampart_testkit::recorded;
use tower::{ServiceExt, service_fn};

#[tokio::test]
async fn endpoints_picks_and_scores_are_reported_once_for_every_handle() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let services = (0..2).map(|_| service_fn(|n: u32| async move { Ok::<_, Infallible>(n) }));
    // Endpoint handles register when the endpoints are inserted: inside the recorder.
    let balancer = metrics::with_local_recorder(&recorder, || {
        SharedP2c::from_services(
            services,
            P2cConfig::default().with_name("users").with_seed(1),
        )
        .expect("valid")
    });
    for n in 0..10 {
        let handle = balancer.clone();
        assert_eq!(handle.oneshot(n).await.expect("ok"), n);
    }
    let metrics = recorded::take(&snapshotter);
    let value = |name: &str, labels: &[(&str, &str)]| recorded::value(&metrics, name, labels);
    assert_eq!(
        value("rampart_balancer_endpoints", &[("name", "users")]),
        Some(&DebugValue::Gauge(2.0.into()))
    );
    let picks: u64 = ["0", "1"]
        .iter()
        .map(|e| {
            match value(
                "rampart_balancer_picks_total",
                &[("name", "users"), ("endpoint", e)],
            ) {
                Some(DebugValue::Counter(n)) => *n,
                other => panic!("picks of {e}: {other:?}"),
            }
        })
        .sum();
    assert_eq!(picks, 10, "the picks of ten handles");
    assert!(matches!(
        value(
            "rampart_balancer_endpoint_score",
            &[("name", "users"), ("endpoint", "0")]
        ),
        Some(DebugValue::Gauge(_))
    ));
}

#[tokio::test]
async fn an_avoided_endpoint_shows_the_cost_it_is_avoided_for() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    // Endpoint "2" fails every call; the other two answer.
    let services = support::two_answer_and_the_third_fails();
    let balancer = metrics::with_local_recorder(&recorder, || {
        let balancer = SharedP2c::empty_with(
            P2cConfig::default().with_name("users").with_seed(7),
            clock.clone(),
            PeakSuccess,
        )
        .expect("valid");
        for (key, service) in services.enumerate() {
            balancer.insert(key, service);
        }
        balancer
    });
    for n in 0..300 {
        let _ = balancer.clone().oneshot(n).await;
        clock.advance(Duration::from_millis(10));
    }
    support::assert_the_failing_endpoint_is_shunned_and_scored_highest(&snapshotter);
}
