//! The balancer's metrics, read from a `metrics-util` debugging recorder.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_balancer::{P2c, P2cConfig, PeakSuccess};
use rampart_core::ManualClock;
use rampart_testkit::recorded;
use tower::discover::ServiceList;
use tower::{Service, ServiceExt, service_fn};

#[tokio::test]
async fn endpoints_picks_and_scores_are_reported_per_endpoint() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let services = (0..2).map(|_| service_fn(|n: u32| async move { Ok::<_, Infallible>(n) }));
    let mut balancer = metrics::with_local_recorder(&recorder, || {
        P2c::from_services(
            services,
            P2cConfig::default().with_name("users").with_seed(1),
        )
        .expect("valid")
    });
    // Endpoint handles register when discovery inserts them: inside the recorder too.
    for n in 0..10 {
        metrics::with_local_recorder(&recorder, || {
            let waker = std::task::Waker::noop();
            let _ = balancer.poll_ready(&mut std::task::Context::from_waker(waker));
        });
        balancer
            .ready()
            .await
            .expect("ready")
            .call(n)
            .await
            .expect("ok");
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
    assert_eq!(picks, 10);
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
    let mut balancer = metrics::with_local_recorder(&recorder, || {
        P2c::new_with(
            ServiceList::new::<u32>(services.collect::<Vec<_>>()),
            P2cConfig::default().with_name("users").with_seed(7),
            clock.clone(),
            PeakSuccess,
        )
        .expect("valid")
    });
    for n in 0..300 {
        metrics::with_local_recorder(&recorder, || {
            let waker = std::task::Waker::noop();
            let _ = balancer.poll_ready(&mut std::task::Context::from_waker(waker));
        });
        let _ = balancer.ready().await.expect("ready").call(n).await;
        clock.advance(Duration::from_millis(10));
    }
    support::assert_the_failing_endpoint_is_shunned_and_scored_highest(&snapshotter);
}
