//! The retry layer and the request's deadline: no retry that cannot finish before it, no backoff
//! past it, each attempt cut at it; nothing changes for a request without one. Paused tokio
//! time, the layer reading a `TokioClock`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_core::{Clock, Deadline, DeadlineExceeded, RequestContext, TokioClock};
use rampart_retry::{
    AttemptTimedOut, Backoff, Budget, RatioConfig, RetryConfig, RetryLayer, Unlimited,
};
use rampart_testkit::recorded;
use tokio::time::{Instant, Sleep};
use tower::{BoxError, Layer, Service, ServiceExt};

const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// How one attempt ends: after a delay, with a success or a failure; or never.
#[derive(Debug, Clone, Copy)]
enum Script {
    Succeed(Duration),
    Fail(Duration),
}

/// A backend that answers its attempts as scripted, in order, and never answers once the
/// script runs out; it is not ready until `ready_at`, if set.
#[derive(Clone, Default)]
struct Backend {
    script: Arc<Mutex<VecDeque<Script>>>,
    calls: Arc<AtomicU64>,
    ready_at: Option<Instant>,
    waiting: Option<Arc<Mutex<Pin<Box<Sleep>>>>>,
}

impl Backend {
    fn new(script: impl IntoIterator<Item = Script>) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into_iter().collect())),
            ..Self::default()
        }
    }

    /// The same backend, not ready until `at`.
    fn ready_at(self, at: Instant) -> Self {
        Self {
            ready_at: Some(at),
            waiting: Some(Arc::new(Mutex::new(Box::pin(tokio::time::sleep_until(at))))),
            ..self
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Service<u32> for Backend {
    type Response = u32;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match (&self.ready_at, &self.waiting) {
            (Some(at), Some(sleep)) if Instant::now() < *at => sleep
                .lock()
                .expect("not poisoned")
                .as_mut()
                .poll(cx)
                .map(Ok),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: u32) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let next = self.script.lock().expect("not poisoned").pop_front();
        Box::pin(async move {
            match next {
                Some(Script::Succeed(after)) => {
                    tokio::time::sleep(after).await;
                    Ok(request)
                }
                Some(Script::Fail(after)) => {
                    tokio::time::sleep(after).await;
                    Err("connection reset".into())
                }
                None => std::future::pending().await,
            }
        })
    }
}

/// A retry layer on `clock`: three attempts, `backoff` between them.
fn layer(clock: &TokioClock, backoff: Backoff) -> RetryLayer<Unlimited> {
    let config = RetryConfig::default().with_backoff(backoff);
    RetryLayer::new_with(config, Unlimited, *clock).expect("valid")
}

/// Calls `service` with `request` in a context whose deadline is `timeout` from now.
async fn call_within<S>(
    clock: &TokioClock,
    timeout: Duration,
    service: S,
    request: u32,
) -> Result<u32, BoxError>
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    let deadline = Deadline::after(clock.now(), timeout);
    RequestContext::new()
        .with_deadline(deadline)
        .scope(service.oneshot(request))
        .await
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_skipped_when_less_than_the_predicted_latency_remains() -> Result<(), BoxError> {
    let clock = TokioClock::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        let config = RetryConfig::default()
            .with_backoff(Backoff::Constant(Duration::ZERO))
            .with_name("stock");
        RetryLayer::new_with(config, Unlimited, clock).expect("valid")
    });
    // A successful attempt of 30 ms teaches the layer that attempts take 30 ms.
    let backend = Backend::new([Script::Succeed(ms(30))]);
    assert_eq!(
        call_within(&clock, ms(500), layer.layer(backend), 1).await?,
        1
    );

    // A request with 50 ms: its first attempt fails after 30 ms; 20 ms are left, less than the
    // 30 ms an attempt takes: no retry, the attempt's own error returned at 30 ms.
    let backend = Backend::new([Script::Fail(ms(30)), Script::Succeed(ms(30))]);
    let start = Instant::now();
    let err = call_within(&clock, ms(50), layer.layer(backend.clone()), 2)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "connection reset");
    assert_eq!((start.elapsed(), backend.calls()), (ms(30), 1));

    // With 70 ms, 40 ms are left after the failure: the retry is sent and answers at 60 ms.
    let backend = Backend::new([Script::Fail(ms(30)), Script::Succeed(ms(30))]);
    let start = Instant::now();
    assert_eq!(
        call_within(&clock, ms(70), layer.layer(backend.clone()), 3).await?,
        3
    );
    assert_eq!((start.elapsed(), backend.calls()), (ms(60), 2));

    let metrics = recorded::take(&snapshotter);
    let count = |metric: &str, kind: &str| {
        recorded::value(
            &metrics,
            metric,
            &[
                ("name", "stock"),
                ("kind", kind),
                ("criticality", "critical"),
            ],
        )
    };
    let skips = "rampart_retry_deadline_skips_total";
    assert_eq!(count(skips, "retry"), Some(&DebugValue::Counter(1)));
    assert_eq!(count(skips, "first"), Some(&DebugValue::Counter(0)));
    let attempts = "rampart_retry_attempts_total";
    assert_eq!(count(attempts, "first"), Some(&DebugValue::Counter(3)));
    assert_eq!(count(attempts, "retry"), Some(&DebugValue::Counter(1)));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_backoff_past_the_deadline_is_not_taken() -> Result<(), BoxError> {
    let clock = TokioClock::new();
    // Nothing observed yet: no predicted latency, only the wait counts. A 50 ms backoff with
    // 40 ms left would end after the deadline: the request stops at once.
    let layer_50 = layer(&clock, Backoff::Constant(ms(50)));
    let backend = Backend::new([Script::Fail(ms(0)), Script::Succeed(ms(0))]);
    let start = Instant::now();
    let err = call_within(&clock, ms(40), layer_50.layer(backend.clone()), 1)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "connection reset");
    assert_eq!((start.elapsed(), backend.calls()), (ms(0), 1));

    // Attempts take 30 ms (one observed). A 20 ms backoff with 45 ms left would leave 25 ms,
    // less than an attempt: not taken. With 55 ms left it leaves 35 ms: taken, and the retry
    // answers at 20 + 30 = 50 ms.
    let layer_20 = layer(&clock, Backoff::Constant(ms(20)));
    let backend = Backend::new([Script::Succeed(ms(30))]);
    call_within(&clock, ms(500), layer_20.layer(backend), 0).await?;
    let backend = Backend::new([Script::Fail(ms(0)), Script::Succeed(ms(30))]);
    let start = Instant::now();
    let err = call_within(&clock, ms(45), layer_20.layer(backend.clone()), 2)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "connection reset");
    assert_eq!((start.elapsed(), backend.calls()), (ms(0), 1));
    let backend = Backend::new([Script::Fail(ms(0)), Script::Succeed(ms(30))]);
    let start = Instant::now();
    assert_eq!(
        call_within(&clock, ms(55), layer_20.layer(backend.clone()), 3).await?,
        3
    );
    assert_eq!((start.elapsed(), backend.calls()), (ms(50), 2));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_never_answers_ends_exactly_at_the_deadline() {
    let clock = TokioClock::new();
    // A configured attempt timeout of 1 s, a deadline in 250 ms: the attempt is cut at 250 ms
    // with `DeadlineExceeded`, and not retried.
    let config = RetryConfig::default()
        .with_attempt_timeout(Duration::from_secs(1))
        .with_backoff(Backoff::Constant(Duration::ZERO));
    let layer = RetryLayer::new_with(config, Unlimited, clock).expect("valid");
    let backend = Backend::new([]);
    let start = Instant::now();
    let err = call_within(&clock, ms(250), layer.layer(backend.clone()), 1)
        .await
        .unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err}");
    assert_eq!((start.elapsed(), backend.calls()), (ms(250), 1));
}

#[tokio::test(start_paused = true)]
async fn each_attempt_times_out_at_the_sooner_of_its_timeout_and_the_deadline() {
    let clock = TokioClock::new();
    // 100 ms per attempt, 250 ms in all: the attempts at 0 and 100 ms time out
    // (`AttemptTimedOut`, retried); the one at 200 ms has 50 ms and is cut at 250 ms.
    let config = RetryConfig::default()
        .with_attempt_timeout(ms(100))
        .with_backoff(Backoff::Constant(Duration::ZERO));
    let layer = RetryLayer::new_with(config, Unlimited, clock).expect("valid");
    let backend = Backend::new([]);
    let start = Instant::now();
    let err = call_within(&clock, ms(250), layer.layer(backend.clone()), 1)
        .await
        .unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err}");
    assert_eq!((start.elapsed(), backend.calls()), (ms(250), 3));

    // Without a deadline, as before: three attempts of 100 ms, `AttemptTimedOut`.
    let backend = Backend::new([]);
    let start = Instant::now();
    let err = layer.layer(backend.clone()).oneshot(1).await.unwrap_err();
    assert!(err.is::<AttemptTimedOut>(), "{err}");
    assert_eq!((start.elapsed(), backend.calls()), (ms(300), 3));
}

#[tokio::test(start_paused = true)]
async fn a_request_past_its_deadline_makes_no_attempt_and_no_deposit() {
    let clock = TokioClock::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // No reserve: the budget holds 0.2 per deposit.
    let budget = RatioConfig {
        min_per_sec: 0,
        ..RatioConfig::default()
    }
    .build_with(clock)
    .expect("valid");
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::new_with(RetryConfig::default(), budget, clock).expect("valid")
    });
    let backend = Backend::new([Script::Succeed(ms(1))]);
    let deadline = Deadline::after(clock.now(), ms(10));
    tokio::time::sleep(ms(10)).await;
    let err = RequestContext::new()
        .with_deadline(deadline)
        .scope(layer.layer(backend.clone()).oneshot(1))
        .await
        .unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err}");
    assert_eq!(backend.calls(), 0);
    assert_eq!(layer.budget().snapshot().remaining, 0.0, "no deposit");

    let metrics = recorded::take(&snapshotter);
    let count = |metric: &str| {
        recorded::value(
            &metrics,
            metric,
            &[
                ("name", "default"),
                ("kind", "first"),
                ("criticality", "critical"),
            ],
        )
    };
    assert_eq!(
        count("rampart_retry_deadline_skips_total"),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        count("rampart_retry_attempts_total"),
        Some(&DebugValue::Counter(0))
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_service_is_ready_too_late_is_not_sent() {
    let clock = TokioClock::new();
    // The first attempt fails at once; the backend is not ready again until 80 ms, and the
    // deadline is at 60 ms: the retry is not sent, and the request ends at 80 ms, when the
    // layer sees it could be, with `DeadlineExceeded`.
    let layer = layer(&clock, Backoff::Constant(ms(10)));
    let backend = Backend::new([Script::Fail(ms(0)), Script::Succeed(ms(0))])
        .ready_at(Instant::now() + ms(80));
    let mut service = layer.layer(backend.clone());
    let start = Instant::now();
    let deadline = Deadline::after(clock.now(), ms(60));
    let response = {
        let _entered = RequestContext::new().with_deadline(deadline).enter();
        service.call(1) // called without `poll_ready`: the backend's own readiness is not needed
    };
    let err = response.await.unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err}");
    assert_eq!((start.elapsed(), backend.calls()), (ms(80), 1));
}

#[tokio::test(start_paused = true)]
async fn deadline_exceeded_from_the_inner_service_is_not_retried() {
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let service = tower::service_fn(move |_: u32| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Err::<u32, BoxError>(DeadlineExceeded::new().into()) }
    });
    let layer = RetryLayer::new(RetryConfig::default(), Unlimited).expect("valid");
    let err = layer.layer(service).oneshot(1).await.unwrap_err();
    assert!(err.is::<DeadlineExceeded>());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// A clock that counts its reads.
#[derive(Clone, Default)]
struct CountingClock {
    inner: TokioClock,
    reads: Arc<AtomicU64>,
}

impl Clock for CountingClock {
    fn now(&self) -> Duration {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.now()
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_deadline_reads_no_clock_and_retries_as_before() {
    let clock = CountingClock::default();
    let config = RetryConfig::default().with_backoff(Backoff::Constant(ms(10)));
    let layer = RetryLayer::new_with(config, Unlimited, clock.clone()).expect("valid");
    let backend = Backend::new([
        Script::Fail(ms(5)),
        Script::Fail(ms(5)),
        Script::Succeed(ms(5)),
    ]);
    let start = Instant::now();
    assert_eq!(
        layer
            .layer(backend.clone())
            .oneshot(4)
            .await
            .expect("third"),
        4
    );
    assert_eq!((start.elapsed(), backend.calls()), (ms(35), 3));
    assert_eq!(clock.reads.load(Ordering::Relaxed), 0);

    // With a deadline: read when the request starts, when each attempt first waits (to arm
    // its timer at the deadline), when each ends, and before the retry: 6 reads for two
    // attempts that wait; 4 had they answered at once.
    let backend = Backend::new([Script::Fail(ms(5)), Script::Succeed(ms(5))]);
    let deadline = Deadline::after(clock.inner.now(), Duration::from_secs(1));
    let served = RequestContext::new()
        .with_deadline(deadline)
        .scope(layer.layer(backend).oneshot(5))
        .await;
    assert_eq!(served.expect("second"), 5);
    assert_eq!(clock.reads.load(Ordering::Relaxed), 6);
}
