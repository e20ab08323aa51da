//! Hedging over rampart's client stack, on paused tokio time: hedge → breaker → shared P2C over
//! two endpoints. A copy that stalls is hedged to the other endpoint, the hedge's answer wins,
//! and the losing copy is dropped: its endpoint's in-flight count returns to zero, and the
//! breaker counts the winner's call and nothing for the cancelled one.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart::balancer::{P2cConfig, SharedP2c};
use rampart::breaker::BreakerConfig;
use rampart::breaker::BreakerLayer;
use rampart::core::TokioClock;
use rampart::retry::{HedgeConfig, HedgeLayer, Unlimited};
use tokio::time::{Instant, sleep};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// An endpoint named `name` answering in 1 ms, or in 1 s the call that finds `stall` set
/// (clearing it, and writing its name in `stalled`); `dropped` counts its calls dropped before
/// they answered.
fn endpoint(
    name: &'static str,
    stall: Arc<AtomicBool>,
    stalled: Arc<Mutex<Option<&'static str>>>,
    dropped: Arc<AtomicU32>,
) -> impl Service<(), Response = &'static str, Error = BoxError, Future: Send> + Clone {
    service_fn(move |()| {
        let slow = stall.swap(false, Ordering::Relaxed);
        if slow {
            *stalled.lock().expect("not poisoned") = Some(name);
        }
        let dropped = Arc::clone(&dropped);
        async move {
            // Counts the call as dropped unless it gets to answer.
            struct Unanswered(Arc<AtomicU32>, bool);
            impl Drop for Unanswered {
                fn drop(&mut self) {
                    if !self.1 {
                        self.0.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let mut guard = Unanswered(dropped, false);
            sleep(if slow { 1_000 * MS } else { MS }).await;
            guard.1 = true;
            Ok::<_, BoxError>(name)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_losing_copy_is_dropped_and_the_balancer_and_breaker_counts_stay_exact() {
    let stall = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(Mutex::new(None));
    let dropped = Arc::new(AtomicU32::new(0));
    let endpoint = |name| {
        endpoint(
            name,
            Arc::clone(&stall),
            Arc::clone(&stalled),
            Arc::clone(&dropped),
        )
    };
    let balancer = SharedP2c::from_services([endpoint("a"), endpoint("b")], P2cConfig::default())
        .expect("valid");
    let breaker = BreakerLayer::new(BreakerConfig::default()).expect("valid");
    let counts = Arc::clone(breaker.breaker());
    let hedge = HedgeLayer::new_with(
        HedgeConfig::default().with_min_samples(20),
        Unlimited,
        TokioClock::new(),
    )
    .expect("valid");
    let client = hedge.layer(breaker.layer(balancer.clone()));

    // Twenty answers in 1 ms fill the hedge's window; a second later its bucket is complete.
    for _ in 0..20 {
        client.clone().oneshot(()).await.expect("an answer");
    }
    sleep(1_000 * MS).await;

    // The next call stalls: a hedge goes to the other endpoint and answers first.
    stall.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let winner = client.clone().oneshot(()).await.expect("an answer");
    assert!(
        start.elapsed() < 10 * MS,
        "hedged, not waited: {:?}",
        start.elapsed()
    );
    let stalled = stalled
        .lock()
        .expect("not poisoned")
        .expect("a call stalled");
    assert_ne!(winner, stalled, "the hedge went to the other endpoint");
    assert_eq!(
        dropped.load(Ordering::Relaxed),
        1,
        "the stalled copy was dropped"
    );

    let endpoints = balancer.snapshot();
    assert!(endpoints.iter().all(|endpoint| endpoint.inflight == 0));
    let picks: Vec<u64> = endpoints.iter().map(|endpoint| endpoint.picks).collect();
    assert_eq!(
        picks.iter().sum::<u64>(),
        22,
        "20 calls, a stalled copy and its hedge"
    );
    // The breaker counted 21 answered calls, all accepted, and nothing for the cancelled one.
    let breaker = counts.snapshot();
    assert_eq!((breaker.admitted, breaker.accepts), (21, 21));
}
