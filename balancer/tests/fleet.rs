//! P2C over a fleet of `rampart-fault` endpoints, on paused time: 1 000 requests per second,
//! 10 ms log-normal latency (p99 20 ms), one endpoint misbehaving.

#[path = "fleet/support.rs"]
mod support;

use std::convert::Infallible;
use std::time::Duration;

use rampart_balancer::{P2c, P2cConfig, PeakSuccess};
use rampart_core::TokioClock;
use rampart_fault::{Distribution, FaultConfig};
use tokio::time::Instant;
use tower::discover::Change;
use tower::{BoxError, Service, ServiceExt};

use crate::support::{
    Backend, Counts, END, SECOND, assert_a_failing_endpoint_is_avoided_and_regains_traffic,
    assert_the_new_endpoint_ramps_up, assert_the_old_endpoints_kept_their_statistics, drive, fleet,
    healthy, misbehaving_endpoint, p99, share,
};

fn rampart(
    endpoints: Vec<(usize, Backend)>,
    seed: u64,
) -> P2c<
    impl tower::discover::Discover<Key = usize, Service = Backend, Error = Infallible>,
    u32,
    TokioClock,
> {
    let discover = tokio_stream::iter(
        endpoints
            .into_iter()
            .map(|(k, s)| Ok::<_, Infallible>(Change::Insert(k, s))),
    );
    P2c::new_with(
        discover,
        P2cConfig::default().with_seed(seed),
        TokioClock::new(),
        PeakSuccess,
    )
    .expect("valid")
}

#[tokio::test(start_paused = true)]
async fn a_10x_slower_endpoint_gets_under_1_percent_and_p99_stays_within_20_percent() {
    let (endpoints, _) = fleet(5);
    let baseline = drive(rampart(endpoints, 1), 30 * SECOND, |_| {}).await;

    let (endpoints, handles) = fleet(5);
    let counts = Counts::default();
    let (script_counts, script_handles) = (counts.clone(), handles.clone());
    let slow = healthy().with_latency(Distribution::log_normal_p99(
        Duration::from_millis(100),
        Duration::from_millis(200),
    ));
    let sent = drive(rampart(endpoints, 1), 30 * SECOND, move |at| {
        if at == 10 * SECOND {
            script_handles[4].set(slow.clone()).expect("valid");
        }
        if at == 12 * SECOND || at == END {
            script_counts.take(at, &script_handles);
        }
    })
    .await;
    let (before, after) = (counts.at(12 * SECOND)[4], counts.at(END)[4]);
    let slow_share = share(before, after, 18_000);
    assert!(
        slow_share <= 0.01,
        "the slow endpoint got {:.2} %",
        slow_share * 100.0
    );
    let (healthy_p99, p99) = (p99(&baseline, 12 * SECOND), p99(&sent, 12 * SECOND));
    assert!(
        p99 <= healthy_p99.mul_f64(1.2),
        "p99 {p99:?} against {healthy_p99:?} healthy"
    );
    eprintln!(
        "10x slower: {:.2} %, p99 {p99:?} (healthy {healthy_p99:?})",
        slow_share * 100.0
    );
}

/// A seeded generator for tower's `Balance`.
struct Seeded(fastrand::Rng);

impl tower::util::rng::Rng for Seeded {
    fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }
}

/// tower's `Balance` over `PeakEwma` (its usual pairing), on the same endpoints.
fn tower_peak_ewma(
    endpoints: Vec<(usize, Backend)>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send + 'static> {
    let discover = tokio_stream::iter(
        endpoints
            .into_iter()
            .map(|(k, s)| Ok::<_, Infallible>(Change::Insert(k, s))),
    );
    let load = tower::load::PeakEwmaDiscover::new(
        discover,
        Duration::from_millis(10),
        Duration::from_millis(600),
        tower::load::CompleteOnResponse::default(),
    );
    tower::balance::p2c::Balance::from_rng(load, Seeded(fastrand::Rng::with_seed(2)))
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failing_fast_is_avoided_where_towers_peak_ewma_feeds_it() {
    // 1 ms errors: fast, so a latency-only cost finds it the best endpoint.
    let black_hole = FaultConfig::default()
        .with_delay(Duration::from_millis(1))
        .with_error_rate(1.0);
    let (ours, sent) = misbehaving_endpoint(|e| rampart(e, 2), black_hole.clone()).await;
    assert!(ours <= 0.005, "PeakSuccess sent it {:.2} %", ours * 100.0);
    let errors = sent.iter().filter(|s| s.at >= 12 * SECOND && !s.ok).count();
    assert!(errors <= 90, "clients saw {errors} errors of 18 000");
    let (towers, _) = misbehaving_endpoint(tower_peak_ewma, black_hole).await;
    assert!(
        towers >= 0.2,
        "tower's PeakEwma sent it only {:.1} %",
        towers * 100.0
    );
    eprintln!(
        "failing fast: rampart PeakSuccess {:.3} %, tower PeakEwma {:.1} %",
        ours * 100.0,
        towers * 100.0
    );
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failing_every_call_is_avoided_and_regains_traffic_after_recovery() {
    assert_a_failing_endpoint_is_avoided_and_regains_traffic(|endpoints| rampart(endpoints, 3))
        .await;
}

#[tokio::test(start_paused = true)]
async fn three_identical_endpoints_share_evenly() {
    let (endpoints, handles) = fleet(3);
    drive(rampart(endpoints, 4), 30 * SECOND, |_| {}).await;
    for handle in &handles {
        let share = handle.stats().requests as f64 / 30_000.0;
        assert!((share - 1.0 / 3.0).abs() <= 0.03, "{share:.3}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_endpoint_keeps_the_others_statistics_and_reaches_its_share_within_5s() {
    let (mut endpoints, mut handles) = fleet(5);
    let (new_endpoint, new_handle) = endpoints.pop().zip(handles.pop()).expect("five");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (key, service) in endpoints {
        tx.send(Ok::<_, Infallible>(Change::Insert(key, service)))
            .expect("open");
    }
    let discover = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let mut balancer = P2c::new_with(
        discover,
        P2cConfig::default().with_seed(5),
        TokioClock::new(),
        PeakSuccess,
    )
    .expect("valid");
    // Warm the four up by hand, then add the fifth and keep going.
    let start = Instant::now();
    let mut calls = Vec::new();
    let mut per_second = Vec::new();
    let mut before = None;
    for n in 0..20_000_u32 {
        let at = Duration::from_millis(u64::from(n));
        tokio::time::sleep_until(start + at).await;
        if at == 10 * SECOND {
            before = Some(balancer.snapshot());
            tx.send(Ok(Change::Insert(new_endpoint.0, new_endpoint.1.clone())))
                .expect("open");
        }
        if at >= 10 * SECOND && at.subsec_millis() == 0 {
            per_second.push(new_handle.stats().requests);
        }
        calls.push(tokio::spawn(balancer.ready().await.expect("ready").call(n)));
        if at == 10 * SECOND {
            let before = before.as_ref().expect("taken");
            assert_the_old_endpoints_kept_their_statistics(before, &balancer.snapshot());
        }
    }
    for call in calls {
        call.await.expect("no panic").expect("ok");
    }
    assert_the_new_endpoint_ramps_up(&per_second);
}

#[tokio::test(start_paused = true)]
async fn cancelled_requests_do_not_lower_success() {
    let (endpoints, _) = fleet(2);
    let mut balancer = rampart(endpoints, 6);
    for n in 0..100 {
        let call = balancer.ready().await.expect("ready").call(n);
        drop(call); // the client gives up before any answer
    }
    tokio::time::sleep(SECOND).await;
    for endpoint in balancer.snapshot() {
        assert_eq!(
            (endpoint.success, endpoint.inflight),
            (1.0, 0),
            "{endpoint:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn removing_an_endpoint_loses_none_of_its_requests_in_flight() {
    let (endpoints, handles) = fleet(1);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (key, service) in endpoints {
        tx.send(Ok::<_, Infallible>(Change::Insert(key, service)))
            .expect("open");
    }
    let discover = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let mut balancer = P2c::new(discover, P2cConfig::default().with_seed(7)).expect("valid");
    let calls: Vec<_> = {
        let mut calls = Vec::new();
        for n in 0..10 {
            calls.push(tokio::spawn(balancer.ready().await.expect("ready").call(n)));
        }
        calls
    };
    tx.send(Ok(Change::Remove(0))).expect("open");
    // The removal is applied on the next poll_ready: nothing is left, so it fails fast.
    let err = tokio::time::timeout(5 * SECOND, async { balancer.ready().await?.call(99).await })
        .await
        .expect("fails within the wait")
        .unwrap_err();
    assert!(err.is::<rampart_balancer::NoEndpoints>(), "{err}");
    for (n, call) in (0..).zip(calls) {
        assert_eq!(call.await.expect("no panic").expect("answered"), n);
    }
    assert_eq!(handles[0].stats().requests, 10);
}
