//! Deadline-aware admission through the layer: a request whose deadline has passed, or would
//! pass before it could finish, is refused without reaching the service or the window.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_core::{Clock, Deadline, DeadlineExceeded, ManualClock, RequestContext};
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, BbrLimiter, ManualCpu, WouldMissDeadline};
use rampart_testkit::recorded::{take, value};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A limiter on `clock` that has measured a 20 ms response time (ten requests, one bucket).
fn taught(clock: &ManualClock) -> Arc<BbrLimiter<ManualClock, ManualCpu>> {
    let limiter = BbrConfig::default()
        .with_name("api")
        .build_with(clock.clone(), ManualCpu::new(0.1))
        .expect("valid");
    for _ in 0..10 {
        let permit = limiter.acquire().expect("cool");
        clock.advance(Duration::from_millis(20));
        permit.complete();
    }
    clock.advance(Duration::from_millis(100));
    Arc::new(limiter)
}

/// A service counting its calls.
fn counted(calls: &Arc<AtomicUsize>) -> impl Service<(), Response = (), Error = tower::BoxError> {
    let calls = Arc::clone(calls);
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, tower::BoxError>(()) }
    })
}

async fn call_with(
    limiter: &Arc<BbrLimiter<ManualClock, ManualCpu>>,
    calls: &Arc<AtomicUsize>,
    context: RequestContext,
) -> Result<(), tower::BoxError> {
    let service = BbrLimitLayer::from_limiter(Arc::clone(limiter)).layer(counted(calls));
    context.scope(service.oneshot(())).await
}

#[tokio::test]
async fn an_expired_request_is_refused_without_reaching_the_service_or_the_window() {
    let clock = ManualClock::new();
    let limiter = taught(&clock);
    let calls = Arc::new(AtomicUsize::new(0));
    let gone = RequestContext::new().with_deadline(Deadline::at(clock.now()));
    let error = call_with(&limiter, &calls, gone)
        .await
        .expect_err("expired");
    assert!(error.is::<DeadlineExceeded>(), "{error}");
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(limiter.snapshot().inflight, 0);
}

#[tokio::test]
async fn a_request_that_cannot_finish_in_time_is_refused_and_says_why() {
    let clock = ManualClock::new();
    let limiter = taught(&clock);
    let calls = Arc::new(AtomicUsize::new(0));
    let short =
        RequestContext::new().with_deadline(Deadline::after(clock.now(), Duration::from_millis(5)));
    let error = call_with(&limiter, &calls, short)
        .await
        .expect_err("5 ms for 20");
    let refusal = error
        .downcast_ref::<WouldMissDeadline>()
        .expect("a predicted miss");
    assert_eq!(refusal.remaining(), Duration::from_millis(5));
    assert_eq!(refusal.predicted(), Duration::from_millis(20));
    assert_eq!(calls.load(Ordering::Relaxed), 0);

    let ample = RequestContext::new()
        .with_deadline(Deadline::after(clock.now(), Duration::from_millis(50)));
    call_with(&limiter, &calls, ample)
        .await
        .expect("50 ms for 20");
    call_with(&limiter, &calls, RequestContext::new())
        .await
        .expect("no deadline, as before");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_queue_beyond_the_proven_concurrency_lengthens_the_prediction() {
    let clock = ManualClock::new();
    let limiter = taught(&clock);
    let now = clock.now();
    let alone = limiter.predicted_completion_at(now).expect("measured");
    // The window proved one request per 20 ms: 50 a second, one in flight. With eleven in
    // flight, the next is the twelfth: eleven beyond the one, 11 / 50 s = 220 ms more.
    let held: Vec<_> = (0..11).map(|_| limiter.acquire().expect("cool")).collect();
    let queued = limiter.predicted_completion_at(now).expect("measured");
    assert_eq!(alone, Duration::from_millis(20));
    assert_eq!(queued, Duration::from_millis(240));
    drop(held);
}

#[tokio::test]
async fn a_limiter_that_has_measured_nothing_refuses_only_expired_requests() {
    let clock = ManualClock::new();
    let limiter = Arc::new(
        BbrConfig::default()
            .build_with(clock.clone(), ManualCpu::new(0.1))
            .expect("valid"),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let tight =
        RequestContext::new().with_deadline(Deadline::after(clock.now(), Duration::from_nanos(1)));
    call_with(&limiter, &calls, tight)
        .await
        .expect("nothing to predict from");
    assert_eq!(limiter.predicted_completion_at(clock.now()), None);
}

#[tokio::test]
async fn refusals_are_counted_by_reason_and_the_time_left_is_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let limiter = metrics::with_local_recorder(&recorder, || taught(&clock));
    let calls = Arc::new(AtomicUsize::new(0));
    let now = clock.now();
    for timeout in [
        Duration::ZERO,
        Duration::from_millis(5),
        Duration::from_millis(50),
    ] {
        let context = RequestContext::new().with_deadline(Deadline::after(now, timeout));
        let _ = call_with(&limiter, &calls, context).await;
    }
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
    assert_eq!(requests("expired"), Some(&DebugValue::Counter(1)));
    assert_eq!(requests("would_miss"), Some(&DebugValue::Counter(1)));
    assert_eq!(
        requests("admitted"),
        Some(&DebugValue::Counter(11)),
        "10 taught, 1 in time"
    );
    match value(
        &metrics,
        "rampart_ratelimit_deadline_remaining_seconds",
        &[("name", "api")],
    ) {
        Some(DebugValue::Histogram(samples)) => {
            let mut seconds: Vec<f64> = samples.iter().map(|s| s.into_inner()).collect();
            seconds.sort_by(f64::total_cmp);
            assert_eq!(seconds, [0.0, 0.005, 0.05]);
        }
        other => panic!("remaining: {other:?}"),
    }
}
