//! Each layer reports its state transitions as `tracing` events, once per transition and never
//! per request: captured here with a subscriber of our own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rampart::balancer::{P2c, P2cConfig, PeakSuccess};
use rampart::breaker::BreakerConfig;
use rampart::core::{Clock as _, ManualClock, Outcome, TokioClock};
use rampart::fault::{FaultConfig, FaultLayer};
use rampart::ratelimit::{BbrConfig, ManualCpu};
use rampart::retry::{RetryConfig, RetryLayer, TokenConfig};
use rampart_testkit::events::Capture;
use tower::discover::ServiceList;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const STARTED_THROTTLING: &str = "breaker started throttling: the backend accepts too few requests";
const STOPPED_THROTTLING: &str = "breaker stopped throttling";

#[test]
fn the_breaker_reports_throttling_starting_and_stopping_once_each() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let clock = ManualClock::new();
    let breaker = BreakerConfig::default()
        .with_name("transitions-breaker")
        .with_seed(1)
        .build_with(clock.clone())
        .expect("valid");
    // An outage: 500 calls over 1 s, all failing; most are then rejected.
    for _ in 0..500 {
        if breaker.allow().is_ok() {
            breaker.record(Outcome::Failure);
        }
        clock.advance(Duration::from_millis(2));
    }
    assert!(breaker.drop_probability_at(clock.now()) > 0.5);
    // Recovery: the window forgets the outage; every call succeeds.
    clock.advance(Duration::from_secs(10));
    for _ in 0..500 {
        if breaker.allow().is_ok() {
            breaker.record(Outcome::Success);
        }
        clock.advance(Duration::from_millis(2));
    }
    assert_eq!(breaker.drop_probability_at(clock.now()), 0.0);
    assert_eq!(
        capture.messages("rampart::breaker", "transitions-breaker"),
        [STARTED_THROTTLING, STOPPED_THROTTLING]
    );
}

#[test]
fn the_limiter_reports_shedding_starting_and_stopping_once_each() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.0));
    let limiter = BbrConfig::default()
        .with_name("transitions-limiter")
        .build_with(clock.clone(), cpu.clone())
        .expect("valid");
    // A fresh limiter has proven no capacity: with two requests in flight and a hot CPU,
    // every further request is shed.
    let held = [limiter.acquire().unwrap(), limiter.acquire().unwrap()];
    cpu.set(0.95);
    for _ in 0..100 {
        assert!(limiter.acquire().is_err());
        clock.advance(Duration::from_millis(5));
    }
    // The CPU cools; once a cooldown has passed without a drop, shedding has stopped.
    cpu.set(0.1);
    clock.advance(Duration::from_secs(2));
    for _ in 0..100 {
        drop(limiter.acquire().expect("cool: admitted"));
        clock.advance(Duration::from_millis(5));
    }
    // Hot again: a second episode.
    cpu.set(0.95);
    assert!(limiter.acquire().is_err());
    drop(held);
    assert_eq!(
        capture.messages("rampart::ratelimit", "transitions-limiter"),
        [
            "limiter started shedding: the server is overloaded",
            "limiter stopped shedding",
            "limiter started shedding: the server is overloaded",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_reports_running_dry_and_recovering_once_each() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let failing = Arc::new(AtomicBool::new(true));
    let backend = {
        let failing = Arc::clone(&failing);
        service_fn(move |()| {
            let fail = failing.load(Ordering::Relaxed);
            async move {
                if fail {
                    Err::<(), BoxError>("down".into())
                } else {
                    Ok(())
                }
            }
        })
    };
    let budget = TokenConfig::default().build().expect("valid");
    let client = RetryLayer::new(
        RetryConfig::default().with_name("transitions-retry"),
        budget,
    )
    .expect("valid")
    .layer(backend);
    // An outage: the budget pays for a few retries, then refuses every one.
    for _ in 0..20 {
        assert!(client.clone().oneshot(()).await.is_err());
    }
    // Recovery: successes refill it; a failure is retried again.
    failing.store(false, Ordering::Relaxed);
    for _ in 0..100 {
        client.clone().oneshot(()).await.expect("up");
    }
    failing.store(true, Ordering::Relaxed);
    assert!(client.clone().oneshot(()).await.is_err());
    assert_eq!(
        capture.messages("rampart::retry", "transitions-retry"),
        [
            "retry budget exhausted: failed requests are no longer retried",
            "retry budget recovered",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_balancer_reports_an_endpoint_entering_and_leaving_avoidance() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let slow = FaultConfig::default()
        .with_delay(Duration::from_millis(100))
        .with_seed(2);
    let (slow_layer, slow_handle) = FaultLayer::pair(slow).expect("valid");
    let fast = FaultLayer::new(
        FaultConfig::default()
            .with_delay(Duration::from_millis(2))
            .with_seed(1),
    )
    .expect("valid");
    let answer = || service_fn(|()| async { Ok::<_, BoxError>(()) });
    // Keyed by position: endpoint 0 is fast, endpoint 1 slow.
    let endpoints = ServiceList::new::<()>(vec![fast.layer(answer()), slow_layer.layer(answer())]);
    let mut balancer = P2c::new_with(
        endpoints,
        P2cConfig::default()
            .with_name("transitions-balancer")
            .with_seed(3),
        TokioClock::new(),
        PeakSuccess,
    )
    .expect("valid");
    let send_for = async |balancer: &mut P2c<_, (), TokioClock>, seconds: u64| {
        let mut calls = Vec::new();
        for _ in 0..seconds * 100 {
            let call = balancer.ready().await.expect("ready").call(());
            calls.push(tokio::spawn(call));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for call in calls {
            call.await.expect("no panic").expect("answered");
        }
    };
    send_for(&mut balancer, 5).await;
    // Endpoint 1 recovers: once a forced pick shows it fast again, it is no longer avoided.
    slow_handle
        .set(FaultConfig::default().with_delay(Duration::from_millis(2)))
        .expect("valid");
    send_for(&mut balancer, 10).await;
    let events: Vec<(String, String)> = capture
        .events()
        .iter()
        .filter(|e| e.target == "rampart::balancer" && e.field("name") == "transitions-balancer")
        .map(|e| {
            (
                e.field("endpoint").to_owned(),
                e.field("message").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (
                "1".to_owned(),
                "endpoint avoided: it costs far more than its peers".to_owned()
            ),
            ("1".to_owned(), "endpoint no longer avoided".to_owned()),
        ]
    );
}
