//! The quota's metrics and events, read from a `metrics-util` debugging recorder and a
//! capturing `tracing` subscriber, against a real `redis-server` stopped and started again.

mod support;

use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_quota::{QuotaConfig, QuotaGroup};
use rampart_testkit::events::Capture;
use rampart_testkit::recorded::{take, value};
use support::RedisServer;

/// Waits (real time, bounded), checking the key meanwhile, until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn counter(
    metrics: &rampart_testkit::recorded::Metrics,
    name: &str,
    labels: &[(&str, &str)],
) -> u64 {
    match value(metrics, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

// The background asks run on this test's one thread, inside the capturing subscriber.
#[tokio::test(flavor = "current_thread")]
async fn every_decision_lease_and_error_is_counted_and_the_fallback_is_a_gauge_and_two_events() {
    let capture = Capture::default();
    let _events = tracing::subscriber::set_default(capture.clone());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut redis = RedisServer::start();
    let group: QuotaGroup<String> = metrics::with_local_recorder(&recorder, || {
        QuotaGroup::new(
            QuotaConfig::per_second(10.0)
                .with_redis_url(redis.url())
                .with_name("tenants")
                .with_backoff(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .expect("valid")
    });
    let key = "acme".to_owned();
    let mut checks = 0;
    let mut check = |group: &QuotaGroup<String>| {
        checks += 1;
        group.check(&key).is_ok()
    };
    // A new key: the local share, then a lease; spent, then refused.
    assert!(check(&group));
    until("a lease", || group.tokens(&"acme".to_owned()) > 0).await;
    while check(&group) {}

    let metrics = take(&snapshotter);
    let requests = |outcome| {
        counter(
            &metrics,
            "rampart_quota_requests_total",
            &[("name", "tenants"), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("local"), 1);
    assert!(requests("leased") >= 1);
    assert!(requests("refused") >= 1);
    assert_eq!(requests("open"), 0);
    assert_eq!(
        requests("local") + requests("leased") + requests("refused"),
        checks
    );
    let leases = counter(
        &metrics,
        "rampart_quota_leases_total",
        &[("name", "tenants")],
    );
    let tokens = counter(
        &metrics,
        "rampart_quota_leased_tokens_total",
        &[("name", "tenants")],
    );
    assert!(leases >= 1);
    assert!(
        tokens >= requests("leased"),
        "{tokens} leased, {} spent",
        requests("leased")
    );
    // One reading per phase: reading resets the recorder's counters.
    let fallback = |metrics: &rampart_testkit::recorded::Metrics| match value(
        metrics,
        "rampart_quota_fallback_active",
        &[("name", "tenants")],
    ) {
        Some(DebugValue::Gauge(active)) => active.into_inner(),
        other => panic!("{other:?}"),
    };
    assert_eq!(fallback(&metrics), 0.0);

    // Redis gone: the next ask fails, the fallback starts, once.
    redis.stop();
    until("the fallback", || {
        let _ = group.check(&"acme".to_owned());
        group.fallback_active()
    })
    .await;
    let metrics = take(&snapshotter);
    assert_eq!(fallback(&metrics), 1.0);
    let errors = |kind| {
        counter(
            &metrics,
            "rampart_quota_redis_errors_total",
            &[("name", "tenants"), ("kind", kind)],
        )
    };
    let errors = errors("error") + errors("timeout");
    assert!(errors >= 1);

    // Back: a probe ends it, once.
    redis.restart();
    until("the fallback's end", || {
        let _ = group.check(&"acme".to_owned());
        !group.fallback_active()
    })
    .await;
    assert_eq!(fallback(&take(&snapshotter)), 0.0);
    assert_eq!(
        capture.messages("rampart::quota", "tenants"),
        [
            "quota fallback started: Redis cannot be reached",
            "quota fallback ended: Redis answers again"
        ]
    );
    let started = &capture.events()[0];
    assert_eq!(started.level, tracing::Level::WARN);
    assert!(!started.field("error").is_empty());
}
