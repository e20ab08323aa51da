//! Server pushback and "don't retry" through the layer, on paused tokio time: the server's wait
//! replaces the backoff, "don't retry" and malformed gRPC pushback stop at once, a wait past
//! `max_pushback` or the deadline is not taken, a hop that gave up tells the hop above, and each
//! attempt carries its number in the request context.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Response, StatusCode};
use rampart_core::{Deadline, HttpClassifier, RequestContext, TokioClock};
use rampart_retry::pushback::HttpPushback;
use rampart_retry::{
    Backoff, GaveUp, GaveUpMark, Policy, RetryConfig, RetryLayer, StopReason, Unlimited,
};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A 503 with `headers`, for `failures` calls, then a 200; counts its calls.
fn backend(
    failures: u32,
    headers: &'static [(&'static str, &'static str)],
    calls: Arc<AtomicU32>,
) -> impl Service<(), Response = Response<()>, Error = BoxError, Future: Send> + Clone {
    service_fn(move |()| {
        let call = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            let mut response = Response::builder();
            if call < failures {
                response = response.status(StatusCode::SERVICE_UNAVAILABLE);
                for (name, value) in headers {
                    response = response.header(*name, *value);
                }
            }
            Ok::<_, BoxError>(response.body(()).expect("valid"))
        }
    })
}

/// A retry layer of three attempts, a constant 10 ms backoff, reading HTTP pushback.
fn retry(
    config: RetryConfig,
) -> RetryLayer<Unlimited, Policy<HttpClassifier, rampart_retry::ByClone, HttpPushback>> {
    let config = config.with_backoff(Backoff::Constant(ms(10))).with_seed(1);
    RetryLayer::new_with(config, Unlimited, TokioClock::new())
        .expect("valid")
        .with_policy(
            Policy::new()
                .with_classifier(HttpClassifier)
                .with_pushback(HttpPushback),
        )
}

/// One request through `retry` to a backend failing once with `headers`: its status, the calls
/// made and the time it took.
async fn once(
    config: RetryConfig,
    headers: &'static [(&'static str, &'static str)],
) -> (StatusCode, u32, Duration) {
    let calls = Arc::new(AtomicU32::new(0));
    let service = retry(config).layer(backend(1, headers, Arc::clone(&calls)));
    let start = Instant::now();
    let response = service.oneshot(()).await.expect("an answer");
    (
        response.status(),
        calls.load(Ordering::Relaxed),
        start.elapsed(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_servers_pushback_replaces_the_backoff() {
    let grpc = once(RetryConfig::default(), &[("grpc-retry-pushback-ms", "250")]).await;
    assert_eq!(grpc, (StatusCode::OK, 2, ms(250)));
    let http = once(RetryConfig::default(), &[("retry-after", "2")]).await;
    assert_eq!(http, (StatusCode::OK, 2, ms(2_000)));
    let none = once(RetryConfig::default(), &[]).await;
    assert_eq!(none, (StatusCode::OK, 2, ms(10)), "the backoff");
    let date = once(
        RetryConfig::default(),
        &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
    )
    .await;
    assert_eq!(date, (StatusCode::OK, 2, ms(10)), "a date is ignored");
}

#[tokio::test(start_paused = true)]
async fn dont_retry_and_malformed_grpc_pushback_stop_at_once() {
    let stopped = (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO);
    for headers in [
        &[("grpc-retry-pushback-ms", "-1")][..],
        &[("grpc-retry-pushback-ms", "-250")],
        &[("grpc-retry-pushback-ms", "")],
        &[("grpc-retry-pushback-ms", "soon")],
        &[("grpc-retry-pushback-ms", "1.5")],
        &[
            ("grpc-retry-pushback-ms", "10"),
            ("grpc-retry-pushback-ms", "10"),
        ],
        &[("rampart-retry", "no")],
        &[("rampart-retry", "no"), ("retry-after", "1")],
    ] {
        assert_eq!(
            once(RetryConfig::default(), headers).await,
            stopped,
            "{headers:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_hostile_server_cannot_hold_a_client() {
    let stopped = (StatusCode::SERVICE_UNAVAILABLE, 1, Duration::ZERO);
    // Past the default maximum (30 s), huge, overlong: not waited, not retried.
    for headers in [
        &[("retry-after", "31")][..],
        &[("grpc-retry-pushback-ms", "30001")],
        &[("grpc-retry-pushback-ms", "18446744073709551616")],
        &[(
            "grpc-retry-pushback-ms",
            "99999999999999999999999999999999999999999999",
        )],
        &[(
            "retry-after",
            "99999999999999999999999999999999999999999999",
        )],
    ] {
        assert_eq!(
            once(RetryConfig::default(), headers).await,
            stopped,
            "{headers:?}"
        );
    }
    // Exactly the maximum is waited; a lower maximum caps lower.
    let at_max = once(RetryConfig::default(), &[("retry-after", "30")]).await;
    assert_eq!(at_max, (StatusCode::OK, 2, Duration::from_secs(30)));
    let capped = once(
        RetryConfig::default().with_max_pushback(ms(100)),
        &[("grpc-retry-pushback-ms", "101")],
    )
    .await;
    assert_eq!(capped, stopped);
    // The request's deadline caps it too: 150 ms asked, 100 ms left.
    let clock = TokioClock::new();
    let deadline = Deadline::at(rampart_core::Clock::now(&clock) + ms(100));
    let scoped = RequestContext::new().with_deadline(deadline);
    let within = scoped
        .scope(once(
            RetryConfig::default(),
            &[("grpc-retry-pushback-ms", "150")],
        ))
        .await;
    assert_eq!(within, stopped, "past the deadline");
}

#[tokio::test(start_paused = true)]
async fn a_hop_that_gave_up_tells_the_hop_above_not_to_retry() {
    // A → B → C, three attempts at each hop, C failing every call.
    let chain = |mark: bool| {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let c = service_fn(move |()| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), BoxError>("connection reset".into()) }
        });
        let layer = || {
            let config = RetryConfig::default()
                .with_backoff(Backoff::Constant(ms(10)))
                .with_mark_gave_up(mark);
            RetryLayer::new_with(config, Unlimited, TokioClock::new()).expect("valid")
        };
        let a = layer().layer(layer().layer(c));
        (a, calls)
    };
    let (naive, calls) = chain(false);
    let err = naive.oneshot(()).await.expect_err("C fails");
    assert_eq!(calls.load(Ordering::Relaxed), 9, "3 × 3");
    assert_eq!(err.to_string(), "connection reset");
    let (marked, calls) = chain(true);
    let err = marked.oneshot(()).await.expect_err("C fails");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "only the hop next to C retries"
    );
    // A did not retry B's refusal, and passes "don't retry" on, wrapping B's.
    let a = err.downcast_ref::<GaveUp>().expect("A gave up");
    assert_eq!((a.reason(), a.attempts()), (StopReason::Pushback, 1));
    assert!(a.dont_retry());
    let b = std::error::Error::source(a)
        .and_then(|b| b.downcast_ref::<GaveUp>())
        .expect("B gave up");
    assert_eq!((b.reason(), b.attempts()), (StopReason::MaxAttempts, 3));
    let source = std::error::Error::source(b).expect("C's error");
    assert_eq!(source.to_string(), "connection reset");
}

#[tokio::test(start_paused = true)]
async fn each_attempt_carries_its_number_in_the_context() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let backend = service_fn(move |()| {
        let context = RequestContext::current();
        record.lock().expect("not poisoned").push(context.attempt());
        let fail = context.attempt() < Some(2);
        async move {
            if fail {
                Err::<(), BoxError>("reset".into())
            } else {
                Ok(())
            }
        }
    });
    let layer = RetryLayer::new_with(
        RetryConfig::default().with_backoff(Backoff::Constant(ms(10))),
        Unlimited,
        TokioClock::new(),
    )
    .expect("valid");
    let critical = RequestContext::new().with_criticality(rampart_core::Criticality::SHEDDABLE);
    critical
        .scope(layer.layer(backend).oneshot(()))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(
        *seen.lock().expect("not poisoned"),
        [Some(0), Some(1), Some(2)]
    );
    assert_eq!(
        RequestContext::current().attempt(),
        None,
        "outside the calls"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_the_layer_gave_up_on_is_marked_for_the_server_to_pass_on() {
    let answer = |config: RetryConfig, failures, headers| async move {
        let calls = Arc::new(AtomicU32::new(0));
        let service = retry(config).layer(backend(failures, headers, calls));
        let response = service.oneshot(()).await.expect("an answer");
        (
            response.status(),
            response.extensions().get::<GaveUpMark>().copied(),
        )
    };
    let marking = RetryConfig::default().with_mark_gave_up(true);
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let mark = |reason, attempts| Some(GaveUpMark { reason, attempts });
    assert_eq!(
        answer(marking.clone(), 9, &[]).await,
        (unavailable, mark(StopReason::MaxAttempts, 3))
    );
    assert_eq!(
        answer(marking.clone(), 9, &[("retry-after", "31")]).await,
        (unavailable, mark(StopReason::Pushback, 1))
    );
    assert_eq!(
        answer(marking, 1, &[]).await,
        (StatusCode::OK, None),
        "rescued"
    );
    assert_eq!(
        answer(RetryConfig::default(), 9, &[]).await,
        (unavailable, None),
        "not without mark_gave_up"
    );
}
