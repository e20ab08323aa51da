//! The retry layer's metrics, read from a `metrics-util` debugging recorder.

use std::convert::Infallible;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_retry::{Backoff, RatioConfig, RetryConfig, RetryLayer};
use rampart_testkit::recorded;
use tower::{BoxError, Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn attempts_are_counted_by_kind_and_exhaustion_is_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // No reserve, ratio 0.5: two failing requests earn one retry.
    let budget = RatioConfig {
        ratio: 0.5,
        min_per_sec: 0,
        ..RatioConfig::default()
    }
    .build()
    .expect("valid");
    let config = RetryConfig::default()
        .with_name("inventory")
        .with_backoff(Backoff::Constant(std::time::Duration::ZERO));
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::new(config, budget).expect("valid")
    });
    let failing = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>("down".into())
    }));
    let ok = layer.layer(service_fn(|()| async { Ok::<(), Infallible>(()) }));
    ok.oneshot(()).await.expect("served"); // deposit: 0.5 retries
    failing.oneshot(()).await.unwrap_err(); // deposit: 1.0; one retry, then refused

    let metrics = recorded::take(&snapshotter);
    let attempts = |kind: &str| {
        recorded::value(
            &metrics,
            "rampart_retry_attempts_total",
            &[
                ("name", "inventory"),
                ("kind", kind),
                ("criticality", "critical"),
            ],
        )
    };
    assert_eq!(attempts("first"), Some(&DebugValue::Counter(2)));
    assert_eq!(attempts("retry"), Some(&DebugValue::Counter(1)));
    assert_eq!(
        recorded::value(
            &metrics,
            "rampart_retry_budget_exhausted_total",
            &[("name", "inventory"), ("criticality", "critical")]
        ),
        Some(&DebugValue::Counter(1))
    );
}

#[tokio::test(start_paused = true)]
async fn retries_a_server_stopped_are_counted() {
    use rampart_retry::Policy;
    use rampart_retry::pushback::Pushback;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let config = RetryConfig::default().with_name("inventory");
    // The server says "don't retry" to odd calls and "retry after 1 s" to even ones.
    let policy = Policy::new().with_pushback(|result: Result<&(), &BoxError>| {
        let error = result.err()?;
        Some(if error.to_string() == "odd" {
            Pushback::DontRetry
        } else {
            Pushback::After(std::time::Duration::from_secs(1))
        })
    });
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::new_with(
            config,
            rampart_retry::Unlimited,
            rampart_core::TokioClock::new(),
        )
        .expect("valid")
        .with_policy(policy)
    });
    let odd = layer.layer(service_fn(|()| async { Err::<(), BoxError>("odd".into()) }));
    odd.oneshot(()).await.unwrap_err(); // don't retry: one stop
    // Pushed back at 0 s, then, while that pushback holds, at 0.5 s: held, a second stop. The
    // first request's retry at 1 s is held by the second pushback: a third.
    let even = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>("even".into())
    }));
    let first = tokio::spawn(even.clone().oneshot(()));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    even.oneshot(()).await.unwrap_err();
    first.await.expect("ran").unwrap_err();

    let metrics = recorded::take(&snapshotter);
    assert_eq!(
        recorded::value(
            &metrics,
            "rampart_retry_pushback_stops_total",
            &[("name", "inventory"), ("criticality", "critical")]
        ),
        Some(&DebugValue::Counter(3))
    );
}
