//! `BbrLimit` as a tower layer: shedding, and exact accounting whatever happens to a request.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_core::{ManualClock, TokioClock};
use rampart_ratelimit::{
    BbrConfig, BbrGroup, BbrGroupLayer, BbrLimitLayer, BbrLimiter, ManualCpu, Overloaded,
};
use rampart_testkit::poll::PanicsInCall;
use tower::{Layer, Service, ServiceExt, service_fn};

const BUCKET: Duration = Duration::from_millis(100);

fn limiter(
    cpu: f64,
) -> (
    ManualClock,
    ManualCpu,
    Arc<BbrLimiter<ManualClock, ManualCpu>>,
) {
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(cpu));
    let limiter = BbrConfig::default()
        .build_with(clock.clone(), cpu.clone())
        .expect("valid");
    (clock, cpu, Arc::new(limiter))
}

/// Passes counted in the bucket the clock was in, read two buckets later.
fn passes_in_current_bucket(
    clock: &ManualClock,
    limiter: &BbrLimiter<ManualClock, ManualCpu>,
) -> u64 {
    clock.advance(BUCKET * 2);
    limiter.snapshot().max_pass
}

#[tokio::test]
async fn a_shed_request_never_reaches_the_service() {
    let (_, _, limiter) = limiter(1.0);
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let service = BbrLimitLayer::from_limiter(Arc::clone(&limiter)).layer(service_fn(move |()| {
        counted.fetch_add(1, Ordering::Relaxed);
        std::future::pending::<Result<(), Infallible>>()
    }));
    // Hold two requests (never complete): with no proven capacity a hot server sheds the third.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut svc = service.clone();
        held.push(svc.call(()));
    }
    let err = service.clone().oneshot(()).await.unwrap_err();
    assert!(err.is::<Overloaded>(), "{err}");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    drop(held);
    assert_eq!(
        limiter.snapshot().inflight,
        0,
        "dropped responses leave the in-flight count"
    );
}

#[tokio::test]
async fn successes_and_errors_count_as_completions_and_cancellations_do_not() {
    let (clock, _, limiter) = limiter(0.0);
    let layer = BbrLimitLayer::from_limiter(Arc::clone(&limiter));
    let ok = layer.layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    let failing = layer.layer(service_fn(|()| async {
        Err::<(), _>(std::io::Error::other("boom"))
    }));
    let slow = layer.layer(service_fn(|()| {
        std::future::pending::<Result<(), Infallible>>()
    }));

    ok.oneshot(()).await.expect("served");
    let err = failing.oneshot(()).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<std::io::Error>()
            .expect("the inner error")
            .to_string(),
        "boom"
    );
    let mut slow = slow;
    drop(slow.call(())); // cancelled before completing: out of flight, not a pass
    assert_eq!(limiter.snapshot().inflight, 0);
    assert_eq!(passes_in_current_bucket(&clock, &limiter), 2);
}

#[tokio::test]
async fn a_panicking_request_leaves_the_in_flight_count_and_is_not_a_pass() {
    let (clock, _, limiter) = limiter(0.0);
    let service = BbrLimitLayer::from_limiter(Arc::clone(&limiter)).layer(service_fn(|()| async {
        tokio::task::yield_now().await;
        panic!("handler bug");
        #[allow(unreachable_code)]
        Ok::<(), Infallible>(())
    }));
    let joined = tokio::spawn(service.oneshot(())).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(limiter.snapshot().inflight, 0);
    let ok = BbrLimitLayer::from_limiter(Arc::clone(&limiter))
        .layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    ok.oneshot(()).await.expect("served");
    assert_eq!(
        passes_in_current_bucket(&clock, &limiter),
        1,
        "the served request only"
    );
}

#[tokio::test]
async fn a_panic_in_the_inner_call_leaves_the_in_flight_count() {
    let (clock, _, limiter) = limiter(0.0);
    let service = BbrLimitLayer::from_limiter(Arc::clone(&limiter)).layer(PanicsInCall);
    assert!(
        tokio::spawn(service.oneshot(()))
            .await
            .unwrap_err()
            .is_panic()
    );
    assert_eq!(limiter.snapshot().inflight, 0);
    assert_eq!(passes_in_current_bucket(&clock, &limiter), 1);
}

#[tokio::test]
async fn clones_share_one_limiter() {
    let (_, _, limiter) = limiter(0.0);
    let service = BbrLimitLayer::from_limiter(limiter).layer(service_fn(|()| {
        std::future::pending::<Result<(), Infallible>>()
    }));
    let (mut a, mut b) = (service.clone(), service.clone());
    let held = (a.call(()), b.call(()));
    assert!(Arc::ptr_eq(a.limiter(), b.limiter()));
    assert_eq!(a.limiter().snapshot().inflight, 2);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn each_route_has_its_own_limiter() {
    let group: BbrGroup<&'static str, _, _> =
        BbrGroup::new_with(BbrConfig::default(), TokioClock::new(), ManualCpu::new(1.0))
            .expect("valid");
    let layer = BbrGroupLayer::new(group, |path: &&'static str| *path);
    let service = layer.layer(service_fn(|_: &'static str| {
        std::future::pending::<Result<(), Infallible>>()
    }));
    // Two held on /slow: the hot server sheds a third there, but /fast is untouched.
    let held: Vec<_> = (0..2).map(|_| service.clone().call("/slow")).collect();
    assert!(
        service
            .clone()
            .oneshot("/slow")
            .await
            .unwrap_err()
            .is::<Overloaded>()
    );
    let fast =
        tokio::time::timeout(Duration::from_millis(10), service.clone().oneshot("/fast")).await;
    assert!(
        fast.is_err(),
        "/fast was admitted (it then waits on the pending handler)"
    );
    assert_eq!(layer.group().len(), 2);
    drop(held);
}

#[test]
fn layers_services_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BbrLimitLayer>();
    send_sync::<rampart_ratelimit::BbrLimit<tower::util::BoxCloneSyncService<(), (), Infallible>>>(
    );
    send_sync::<rampart_ratelimit::ResponseFuture<std::future::Ready<Result<(), Infallible>>>>();
}
