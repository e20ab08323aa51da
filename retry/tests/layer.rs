//! The `Retry` layer over `rampart-fault` backends, on paused time: retry storms bounded by the
//! budget, isolated failures rescued, and the rules about copies, cancellation and timeouts.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::{Outcome, Rejected, TokioClock};
use rampart_fault::{FaultConfig, FaultHandle, FaultLayer, InjectedError};
use rampart_retry::{
    AttemptTimedOut, Backoff, Decision, Policy, RatioConfig, RetryConfig, RetryLayer, RetryPolicy,
    TokenConfig, Unlimited,
};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

/// A backend (answering at once) behind a fault layer failing `error_rate` of calls; the
/// fault layer's request count is the backend's traffic.
fn backend(
    error_rate: f64,
    seed: u64,
) -> (
    FaultHandle,
    impl tower::Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send,
) {
    let (faults, handle) = FaultLayer::pair(
        FaultConfig::default()
            .with_error_rate(error_rate)
            .with_seed(seed),
    )
    .expect("valid");
    (
        handle,
        faults.layer(service_fn(|n: u32| async move { Ok::<_, Infallible>(n) })),
    )
}

const CONFIG: fn() -> RetryConfig = || RetryConfig::default().with_seed(9);

/// Sends `requests` evenly over `over`; returns the successes.
async fn drive<S>(service: S, requests: u32, over: Duration) -> u32
where
    S: tower::Service<u32, Response = u32, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let start = Instant::now();
    let mut calls = Vec::new();
    for n in 0..requests {
        tokio::time::sleep_until(start + over * n / requests).await;
        calls.push(tokio::spawn(service.clone().oneshot(n)));
    }
    let mut ok = 0;
    for call in calls {
        ok += u32::from(call.await.expect("no panic").is_ok());
    }
    ok
}

#[tokio::test(start_paused = true)]
async fn a_dead_backend_sees_at_most_the_budget_not_three_times_the_traffic() {
    // 1 000 requests over 10 s (one ttl) at a backend failing every call.
    let budget = RatioConfig::default()
        .build_with(TokioClock::new())
        .expect("valid");
    let (handle, service) = backend(1.0, 1);
    let layer = RetryLayer::new(CONFIG(), budget).expect("valid");
    assert_eq!(
        drive(layer.layer(service), 1_000, Duration::from_secs(10)).await,
        0
    );
    let calls = handle.stats().requests;
    // (1 + ratio) × requests + min_per_sec × duration = 1.2 × 1 000 + 10 × 10.
    assert!(calls <= 1_300, "{calls} backend calls");
    assert!(calls >= 1_250, "and the budget is used: {calls}");

    let (naive_handle, naive_service) = backend(1.0, 1);
    let naive = RetryLayer::new(CONFIG(), Unlimited).expect("valid");
    drive(naive.layer(naive_service), 1_000, Duration::from_secs(10)).await;
    assert_eq!(
        naive_handle.stats().requests,
        3_000,
        "naive: three attempts per request"
    );
}

#[tokio::test(start_paused = true)]
async fn isolated_failures_are_rescued_by_the_default_ratio_budget() {
    let (_, plain) = backend(0.1, 2);
    let without = drive(plain, 10_000, Duration::from_secs(10)).await;
    assert!(
        (8_900..=9_100).contains(&without),
        "no retries: about 90 %: {without}"
    );

    let budget = RatioConfig::default()
        .build_with(TokioClock::new())
        .expect("valid");
    let (_, service) = backend(0.1, 2);
    let layer = RetryLayer::new(CONFIG(), budget).expect("valid");
    let with = drive(layer.layer(service), 10_000, Duration::from_secs(10)).await;
    assert!(with >= 9_900, "with budgeted retries ≥ 99 %: {with}");
}

#[tokio::test(start_paused = true)]
async fn the_grpc_token_budget_stops_retrying_at_a_10_percent_failure_rate() {
    // gRPC's defaults (10 tokens, 0.1 per success): at 10 % failures each attempt drifts the
    // bucket by 0.9 × 0.1 − 0.1 × 1 = −0.01 tokens, so it drains to the threshold and retries
    // stop: the success rate stays near 90 %. Token throttling is an outage brake, not a
    // way to mask steady failures.
    let budget = Arc::new(TokenConfig::default().build().expect("valid"));
    let (handle, service) = backend(0.1, 3);
    let layer = RetryLayer::new(CONFIG(), Arc::clone(&budget)).expect("valid");
    let ok = drive(layer.layer(service), 10_000, Duration::from_secs(10)).await;
    let retries = handle.stats().requests - 10_000;
    assert!(ok < 9_300, "barely above the 90 % without retries: {ok}");
    assert!(retries < 300, "few retries once drained: {retries}");
    assert!(
        budget.tokens() <= 6.0,
        "drained to about half: {}",
        budget.tokens()
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_not_retried() {
    let (handle, service) = backend(1.0, 4);
    let layer = RetryLayer::new(CONFIG(), Unlimited)
        .expect("valid")
        .with_policy(Policy::new().with_cloner(|_: &u32| None));
    let err = layer.layer(service).oneshot(1).await.unwrap_err();
    assert!(err.is::<InjectedError>());
    assert_eq!(handle.stats().requests, 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_stops_retrying() {
    let (handle, service) = backend(1.0, 5);
    let config = CONFIG()
        .with_max_attempts(10)
        .with_backoff(Backoff::Constant(Duration::from_secs(1)));
    let layer = RetryLayer::new(config, Unlimited).expect("valid");
    // The caller gives up after 2.5 s: attempts at 0, 1 s and 2 s; none after.
    let call = tokio::time::timeout(
        Duration::from_millis(2_500),
        layer.layer(service).oneshot(1),
    );
    assert!(call.await.is_err());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(handle.stats().requests, 3);
}

#[tokio::test(start_paused = true)]
async fn local_rejections_are_never_retried() {
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let rejecting = service_fn(move |_: u32| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Err::<u32, BoxError>(Rejected::new().into()) }
    });
    let layer = RetryLayer::new(CONFIG(), Unlimited).expect("valid");
    assert!(
        layer
            .layer(rejecting)
            .oneshot(1)
            .await
            .unwrap_err()
            .is::<Rejected>()
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn hanging_attempts_time_out_and_are_retried() {
    let (faults, handle) =
        FaultLayer::pair(FaultConfig::default().with_hang_rate(1.0)).expect("valid");
    let service = faults.layer(service_fn(|n: u32| async move { Ok::<_, Infallible>(n) }));
    let config = CONFIG()
        .with_attempt_timeout(Duration::from_millis(100))
        .with_backoff(Backoff::Constant(Duration::ZERO));
    let layer = RetryLayer::new(config, Unlimited).expect("valid");

    // Every attempt hangs: three attempts, each abandoned after 100 ms.
    let start = Instant::now();
    let err = layer.layer(service.clone()).oneshot(1).await.unwrap_err();
    assert!(err.is::<AttemptTimedOut>(), "{err}");
    assert_eq!(
        (start.elapsed(), handle.stats().requests),
        (Duration::from_millis(300), 3)
    );

    // The backend recovers at 150 ms: attempts at 0 and 100 ms hang, the one at 200 ms answers.
    let start = Instant::now();
    let call = tokio::spawn(layer.layer(service).oneshot(7));
    tokio::time::sleep(Duration::from_millis(150)).await;
    handle.set(FaultConfig::default()).expect("valid");
    assert_eq!(
        call.await
            .expect("no panic")
            .expect("the third attempt succeeds"),
        7
    );
    assert_eq!(
        (start.elapsed(), handle.stats().requests),
        (Duration::from_millis(200), 6)
    );
}

/// A policy that retries every failure after exactly the wait the "server" asked for.
#[derive(Clone)]
struct Pushback(Duration);

impl RetryPolicy<u32, u32> for Pushback {
    fn classify(&self, result: Result<&u32, &BoxError>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    fn decide(&self, outcome: Outcome, _: Result<&u32, &BoxError>) -> Decision {
        if outcome == Outcome::Failure {
            Decision::RetryAfter(self.0)
        } else {
            Decision::Stop
        }
    }

    fn clone_request(&self, request: &u32) -> Option<u32> {
        Some(*request)
    }
}

#[tokio::test(start_paused = true)]
async fn a_policy_can_set_the_wait_before_a_retry() {
    let (_, service) = backend(1.0, 6);
    // The pushback holds are timed on the layer's clock: paused time's, as the waits.
    let layer = RetryLayer::new_with(CONFIG(), Unlimited, TokioClock::new())
        .expect("valid")
        .with_policy(Pushback(Duration::from_millis(700)));
    let start = Instant::now();
    let err = layer.layer(service).oneshot(1).await.unwrap_err();
    assert!(err.is::<InjectedError>());
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(1_400),
        "two retries, 700 ms apart"
    );
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_budget() {
    let budget = Arc::new(
        RatioConfig {
            min_per_sec: 0,
            ..RatioConfig::default()
        }
        .build_with(TokioClock::new())
        .expect("valid"),
    );
    let (_, service) = backend(0.0, 7);
    let layer = RetryLayer::new(CONFIG(), Arc::clone(&budget)).expect("valid");
    let (a, b) = (layer.layer(service.clone()), layer.layer(service));
    for n in 0..5 {
        a.clone().oneshot(n).await.expect("ok");
        b.clone().oneshot(n).await.expect("ok");
    }
    assert_eq!(
        budget.counts_at(rampart_core::Clock::now(budget.clock())),
        (10, 0)
    );
}

/// A service that counts its clones and its calls, fails the calls it is told to, and is
/// `Send` but not `Sync` (as tower's `BoxCloneService` is).
struct Counted {
    clones: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
    /// Calls numbered below this fail.
    failing_below: u64,
    not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::Relaxed);
        Self {
            clones: Arc::clone(&self.clones),
            calls: Arc::clone(&self.calls),
            failing_below: self.failing_below,
            not_sync: std::marker::PhantomData,
        }
    }
}

impl tower::Service<u32> for Counted {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u32) -> Self::Future {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(if call < self.failing_below {
            Err("failing".into())
        } else {
            Ok(n)
        })
    }
}

/// Compiles only for a value that is `Send`.
fn is_send<T: Send>(_: &T) {}

#[tokio::test(start_paused = true)]
async fn only_a_retried_request_clones_the_service_once_for_all_its_retries() {
    let (clones, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let service = Counted {
        clones: Arc::clone(&clones),
        calls: Arc::clone(&calls),
        failing_below: 2,
        not_sync: std::marker::PhantomData,
    };
    let config = CONFIG()
        .with_max_attempts(3)
        .with_backoff(Backoff::Constant(Duration::from_millis(1)));
    let mut retry = RetryLayer::new(config, Unlimited)
        .expect("valid")
        .layer(service);
    is_send(&retry);
    let made = clones.load(Ordering::Relaxed);
    // Calls 0 and 1 fail: the first request is answered at its third attempt, its two retries
    // on one clone.
    assert_eq!(
        retry
            .ready()
            .await
            .expect("ready")
            .call(1)
            .await
            .expect("ok"),
        1
    );
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(clones.load(Ordering::Relaxed), made + 1);
    // Answered at once: no clone.
    for n in 0..5 {
        assert_eq!(
            retry
                .ready()
                .await
                .expect("ready")
                .call(n)
                .await
                .expect("ok"),
            n
        );
    }
    assert_eq!(calls.load(Ordering::Relaxed), 8);
    assert_eq!(clones.load(Ordering::Relaxed), made + 1);
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    assert_eq!(
        RetryLayer::new(RetryConfig::default().with_max_attempts(0), Unlimited)
            .unwrap_err()
            .field(),
        "max_attempts"
    );
    let bad_backoff = Backoff::Exponential {
        base: Duration::from_secs(2),
        factor: 2.0,
        cap: Duration::from_secs(1),
        jitter: true,
    };
    assert_eq!(
        RetryConfig::default()
            .with_backoff(bad_backoff)
            .validate()
            .unwrap_err()
            .field(),
        "backoff"
    );
    assert!(
        RetryConfig::default()
            .with_attempt_timeout(Duration::ZERO)
            .validate()
            .is_err()
    );
}
