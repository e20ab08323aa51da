//! `FaultLayer`: every fault mode at its configured rate, reproducibly, steerable at run time.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_fault::{Distribution, Fault, FaultConfig, FaultLayer, InjectedError, MissingRuntime};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// A backend that answers at once and counts its calls.
#[derive(Clone, Default)]
struct Counting {
    calls: Arc<AtomicU64>,
}

impl Counting {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Service<u32> for Counting {
    type Response = u32;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u32, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(request))
    }
}

fn faulty(config: FaultConfig) -> (Fault<Counting>, Counting) {
    let backend = Counting::default();
    let layer = FaultLayer::new(config).expect("a valid config");
    (layer.layer(backend.clone()), backend)
}

#[tokio::test(start_paused = true)]
async fn errors_are_injected_at_their_rate_without_calling_the_backend() {
    let (service, backend) = faulty(FaultConfig::default().with_error_rate(0.2).with_seed(1));
    let mut errors = 0_u64;
    for n in 0..10_000 {
        match service.clone().oneshot(n).await {
            Ok(echo) => assert_eq!(echo, n),
            Err(err) => {
                assert!(err.is::<InjectedError>(), "{err}");
                errors += 1;
            }
        }
    }
    // A binomial(10 000, 0.2) lies within ±100 of 2 000 with probability 0.988; the seed
    // makes this run's count fixed, so the bound is checked once, not re-drawn.
    assert!((1_900..=2_100).contains(&errors), "{errors} errors");
    assert_eq!(service.handle().stats().errors, errors);
    assert_eq!(backend.calls(), 10_000 - errors);
}

#[tokio::test(start_paused = true)]
async fn hangs_are_injected_at_their_rate_and_never_complete() {
    let (service, backend) = faulty(FaultConfig::default().with_hang_rate(0.1).with_seed(2));
    let mut hung = 0_u64;
    for n in 0..2_000 {
        // Paused time: an hour-long timeout elapses at once when nothing else can happen.
        match tokio::time::timeout(Duration::from_secs(3600), service.clone().oneshot(n)).await {
            Ok(result) => assert_eq!(result.expect("no error injected"), n),
            Err(_elapsed) => hung += 1,
        }
    }
    assert!((160..=240).contains(&hung), "{hung} hung");
    assert_eq!(service.handle().stats().hangs, hung);
    assert_eq!(backend.calls(), 2_000 - hung);
}

#[tokio::test(start_paused = true)]
async fn a_fixed_latency_is_added_exactly() {
    let (service, _) = faulty(FaultConfig::default().with_delay(7 * MS));
    let start = Instant::now();
    assert_eq!(service.oneshot(3).await.expect("no fault"), 3);
    assert_eq!(start.elapsed(), 7 * MS);
}

#[tokio::test(start_paused = true)]
async fn injected_errors_arrive_after_the_latency() {
    // A black hole: every call fails fast, after exactly one millisecond.
    let (service, _) = faulty(FaultConfig::default().with_delay(MS).with_error_rate(1.0));
    let start = Instant::now();
    let err = service.oneshot(1).await.unwrap_err();
    assert!(err.is::<InjectedError>());
    assert_eq!(start.elapsed(), MS);
}

#[tokio::test(start_paused = true)]
async fn sampled_latencies_stay_within_their_distribution() {
    // tokio's timer fires on whole milliseconds, rounding a delay up to the next one.
    let latency = Distribution::Uniform {
        low: 10 * MS,
        high: 30 * MS,
    };
    let (service, _) = faulty(FaultConfig::default().with_latency(latency).with_seed(3));
    let mut seen = Vec::new();
    for n in 0..500 {
        let start = Instant::now();
        service.clone().oneshot(n).await.expect("no fault");
        seen.push(start.elapsed());
    }
    assert!(
        seen.iter().all(|d| (10 * MS..=30 * MS).contains(d)),
        "{seen:?}"
    );
    let (min, max) = (seen.iter().min().unwrap(), seen.iter().max().unwrap());
    assert_eq!((*min, *max), (11 * MS, 30 * MS), "the whole range is drawn");
}

/// The outcome of each of `n` requests: `Ok(latency)` or `Err(())` for an injected error.
async fn trace(seed: u64, n: u32) -> Vec<Result<Duration, ()>> {
    let config = FaultConfig::default()
        .with_latency(Distribution::LogNormal {
            median: MS,
            sigma: 1.0,
        })
        .with_error_rate(0.3)
        .with_seed(seed);
    let (service, _) = faulty(config);
    let mut outcomes = Vec::new();
    for request in 0..n {
        let start = Instant::now();
        let outcome = service.clone().oneshot(request).await;
        outcomes.push(outcome.map(|_| start.elapsed()).map_err(drop));
    }
    outcomes
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_faults_and_latencies() {
    let first = trace(11, 300).await;
    assert_eq!(first, trace(11, 300).await);
    assert_ne!(first, trace(12, 300).await);
}

#[tokio::test(start_paused = true)]
async fn the_handle_turns_the_backend_bad_and_good_again() {
    let (service, backend) = faulty(FaultConfig::default());
    let handle = service.handle();
    assert!(service.clone().oneshot(1).await.is_ok());
    handle
        .update(|config| config.error_rate = 1.0)
        .expect("valid");
    for n in 0..10 {
        assert!(
            service
                .clone()
                .oneshot(n)
                .await
                .unwrap_err()
                .is::<InjectedError>()
        );
    }
    handle.set(FaultConfig::default()).expect("valid");
    assert!(service.clone().oneshot(2).await.is_ok());
    assert_eq!(backend.calls(), 2);
    assert_eq!(handle.stats().requests, 12);
    assert_eq!(handle.stats().errors, 10);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_update_is_refused_and_changes_nothing() {
    let (service, _) = faulty(FaultConfig::default().with_error_rate(0.5));
    let handle = service.handle();
    let err = handle.update(|config| config.hang_rate = 0.6).unwrap_err();
    assert_eq!(err.field(), "error_rate");
    assert!(
        handle
            .set(FaultConfig::default().with_panic_rate(f64::NAN))
            .is_err()
    );
    assert_eq!(handle.config(), FaultConfig::default().with_error_rate(0.5));
}

#[test]
fn an_invalid_config_is_refused_when_the_layer_is_built() {
    let err = FaultLayer::new(FaultConfig::default().with_error_rate(2.0)).unwrap_err();
    assert_eq!(err.field(), "error_rate");
    assert!(
        Fault::new(
            Counting::default(),
            FaultConfig::default().with_hang_rate(-1.0)
        )
        .is_err()
    );
}

#[tokio::test]
async fn inner_errors_pass_through_untouched() {
    let failing =
        service_fn(|(): ()| async { Err::<(), _>(std::io::Error::other("disk on fire")) });
    let service = FaultLayer::new(FaultConfig::default())
        .expect("valid")
        .layer(failing);
    let err = service.oneshot(()).await.unwrap_err();
    let io = err
        .downcast_ref::<std::io::Error>()
        .expect("the inner error type");
    assert_eq!(io.to_string(), "disk on fire");
}

/// A service that is never ready.
struct NeverReady;

impl Service<()> for NeverReady {
    type Response = ();
    type Error = Infallible;
    type Future = std::future::Ready<Result<(), Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, (): ()) -> Self::Future {
        std::future::ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    let mut service = Fault::new(NeverReady, FaultConfig::default()).expect("valid");
    let ready = tokio::time::timeout(Duration::from_secs(1), service.ready()).await;
    assert!(
        ready.is_err(),
        "became ready although the inner service never is"
    );
}

#[test]
fn a_delay_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let (mut service, backend) = faulty(FaultConfig::default().with_delay(MS));
    let future = service.call(1); // no runtime here
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let err = runtime.block_on(future).unwrap_err();
    assert!(err.is::<MissingRuntime>(), "{err}");
    assert_eq!(
        backend.calls(),
        1,
        "the inner service was called; only the delay failed"
    );
}

#[test]
fn services_layers_and_handles_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<FaultLayer>();
    shareable::<Fault<Counting>>();
    shareable::<rampart_fault::FaultHandle>();
    shareable::<rampart_fault::SimBackend>();
}
