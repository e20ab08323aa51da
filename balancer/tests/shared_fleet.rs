//! The fleet scenarios of `tests/fleet.rs` with `SharedP2c` in place of `P2c`: the same
//! endpoints, rates and thresholds, on paused time. The slow-endpoint scenario also runs with
//! each request on its own task and its own clone of the handle, as the handlers of a server
//! would share it. The slow, failing-fast and failing scenarios run again on a clock whose
//! recent time ticks every 4 ms, as `SystemClock`'s does: requests placed on its ticks, a
//! sample of them timed.

#[path = "fleet/support.rs"]
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_balancer::{NoEndpoints, P2cConfig, PeakSuccess, SharedP2c};
use rampart_core::{Clock, TokioClock};
use rampart_fault::{Distribution, FaultConfig};
use tokio::time::Instant;
use tower::discover::Change;
use tower::{Service, ServiceExt};

use crate::support::{
    Backend, Counts, END, SECOND, Sent, assert_a_failing_endpoint_is_avoided_and_regains_traffic,
    assert_the_new_endpoint_ramps_up, assert_the_old_endpoints_kept_their_statistics, drive, fleet,
    healthy, misbehaving_endpoint, p99, share,
};

type Balancer<C = TokioClock> = SharedP2c<usize, Backend, C>;

/// Tokio's paused time, its recent time on ticks of 4 ms (the kernel's coarse clock on most
/// distributions): a balancer on it places its requests on the ticks and times a sample. It
/// counts the reads of its precise time.
#[derive(Debug, Clone, Default)]
struct Ticking(TokioClock, Arc<AtomicU64>);

const TICK: Duration = Duration::from_millis(4);

impl Ticking {
    /// The reads of `now` so far, by all clones.
    fn precise_reads(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }
}

impl Clock for Ticking {
    fn now(&self) -> Duration {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.now()
    }

    fn recent(&self) -> Duration {
        let now = self.0.now();
        now.saturating_sub(Duration::from_nanos(
            (now.as_nanos() % TICK.as_nanos()) as u64,
        ))
    }

    fn recent_resolution(&self) -> Duration {
        TICK
    }
}

fn shared(endpoints: Vec<(usize, Backend)>, seed: u64) -> Balancer {
    shared_on(endpoints, seed, TokioClock::new())
}

fn shared_on<C: Clock + Clone>(
    endpoints: Vec<(usize, Backend)>,
    seed: u64,
    clock: C,
) -> Balancer<C> {
    let balancer = SharedP2c::empty_with(P2cConfig::default().with_seed(seed), clock, PeakSuccess)
        .expect("valid");
    for (key, service) in endpoints {
        balancer.insert(key, service);
    }
    balancer
}

/// `drive` with each request on its own task, sent through its own clone of `balancer`.
async fn drive_clones<C: Clock + Clone>(
    balancer: &Balancer<C>,
    duration: Duration,
    mut script: impl FnMut(Duration),
) -> Vec<Sent> {
    let start = Instant::now();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..(duration.as_millis() as u32) {
        let at = Duration::from_millis(u64::from(n));
        tokio::time::sleep_until(start + at).await;
        script(at);
        let (handle, sent) = (balancer.clone(), Arc::clone(&sent));
        tasks.push(tokio::spawn(async move {
            let result = handle.oneshot(n).await;
            sent.lock().push(Sent {
                at,
                latency: start.elapsed().saturating_sub(at),
                ok: result.is_ok(),
            });
        }));
    }
    for task in tasks {
        task.await.expect("no panic");
    }
    let mut sent = Arc::try_unwrap(sent).expect("all tasks done").into_inner();
    sent.sort_by_key(|s| s.at);
    sent
}

/// The slow-endpoint scenario: endpoint 4 ten times slower from 10 s; its share from 12 s on
/// and the p99 beside a healthy run's, each request on its own clone when `clones`, the
/// balancers reading `clock`.
async fn ten_times_slower<C: Clock + Clone>(clones: bool, clock: C) -> (f64, Duration, Duration) {
    let slow = healthy().with_latency(Distribution::log_normal_p99(
        Duration::from_millis(100),
        Duration::from_millis(200),
    ));
    let (endpoints, _) = fleet(5);
    let healthy_run = shared_on(endpoints, 1, clock.clone());
    let baseline = if clones {
        drive_clones(&healthy_run, 30 * SECOND, |_| {}).await
    } else {
        drive(healthy_run, 30 * SECOND, |_| {}).await
    };
    let (endpoints, handles) = fleet(5);
    let counts = Counts::default();
    let (script_counts, script_handles) = (counts.clone(), handles.clone());
    let script = move |at| {
        if at == 10 * SECOND {
            script_handles[4].set(slow.clone()).expect("valid");
        }
        if at == 12 * SECOND || at == END {
            script_counts.take(at, &script_handles);
        }
    };
    let balancer = shared_on(endpoints, 1, clock);
    let sent = if clones {
        drive_clones(&balancer, 30 * SECOND, script).await
    } else {
        drive(balancer, 30 * SECOND, script).await
    };
    let slow_share = share(counts.at(12 * SECOND)[4], counts.at(END)[4], 18_000);
    (
        slow_share,
        p99(&baseline, 12 * SECOND),
        p99(&sent, 12 * SECOND),
    )
}

/// The slow-endpoint scenario's thresholds, for the run named `run`: the slow endpoint gets
/// at most 1 % of the requests, and the p99 stays within 20 % of the healthy run's.
fn assert_the_slow_endpoint_is_avoided(
    run: &str,
    (slow_share, healthy_p99, p99): (f64, Duration, Duration),
) {
    assert!(
        slow_share <= 0.01,
        "{run}: the slow endpoint got {:.2} %",
        slow_share * 100.0
    );
    assert!(
        p99 <= healthy_p99.mul_f64(1.2),
        "{run}: p99 {p99:?} against {healthy_p99:?} healthy"
    );
    eprintln!(
        "10x slower, {run}: {:.2} %, p99 {p99:?} (healthy {healthy_p99:?})",
        slow_share * 100.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_10x_slower_endpoint_gets_under_1_percent_and_p99_stays_within_20_percent() {
    for clones in [false, true] {
        let figures = ten_times_slower(clones, TokioClock::new()).await;
        assert_the_slow_endpoint_is_avoided(&format!("clones {clones}"), figures);
    }
}

#[tokio::test(start_paused = true)]
async fn on_a_ticking_clock_a_10x_slower_endpoint_gets_under_1_percent_and_p99_stays_within_20_percent()
 {
    let figures = ten_times_slower(true, Ticking::default()).await;
    assert_the_slow_endpoint_is_avoided("ticking clock", figures);
}

#[tokio::test(start_paused = true)]
async fn on_a_ticking_clock_a_sample_is_timed_and_every_outcome_counts() {
    let (endpoints, handles) = fleet(3);
    let clock = Ticking::default();
    let balancer = shared_on(endpoints, 6, clock.clone());
    // From 1 s, every endpoint fails three calls in ten, at the same latency: they stay
    // alike, and share the traffic.
    let sent = drive_clones(&balancer, 4 * SECOND, |at| {
        if at == SECOND {
            for (seed, handle) in (9..).zip(&handles) {
                handle
                    .set(healthy().with_error_rate(0.3).with_seed(seed))
                    .expect("valid");
            }
        }
    })
    .await;
    assert_eq!(sent.len(), 4_000);
    // Four requests a tick: the first timed, then one in 16: a third of them, each read
    // twice. Timing every request would read it 8 000 times.
    let reads = clock.precise_reads();
    assert!((1_500..=3_500).contains(&reads), "{reads} reads of now");
    let snapshot = balancer.snapshot();
    eprintln!(
        "ticking clock: {reads} reads of now for 4 000 requests; success {:?}",
        snapshot.iter().map(|e| e.success).collect::<Vec<_>>()
    );
    for endpoint in &snapshot {
        assert_eq!(endpoint.inflight, 0);
        // The endpoints' latency: log-normal, 10 ms median; learnt from the sample.
        let lag_ms = endpoint.lag.as_secs_f64() * 1e3;
        assert!((5.0..=30.0).contains(&lag_ms), "{endpoint:?}");
        // Every completion teaches the success, timed or not.
        assert!((0.6..=0.8).contains(&endpoint.success), "{endpoint:?}");
        assert!(endpoint.picks >= 1_000, "{endpoint:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn on_a_ticking_clock_an_endpoint_failing_fast_is_avoided() {
    let black_hole = FaultConfig::default()
        .with_delay(Duration::from_millis(1))
        .with_error_rate(1.0);
    let (ours, sent) =
        misbehaving_endpoint(|e| shared_on(e, 2, Ticking::default()), black_hole).await;
    assert!(ours <= 0.005, "PeakSuccess sent it {:.2} %", ours * 100.0);
    let errors = sent.iter().filter(|s| s.at >= 12 * SECOND && !s.ok).count();
    assert!(errors <= 90, "clients saw {errors} errors of 18 000");
}

#[tokio::test(start_paused = true)]
async fn on_a_ticking_clock_a_failing_endpoint_is_avoided_and_regains_traffic_after_recovery() {
    assert_a_failing_endpoint_is_avoided_and_regains_traffic(|endpoints| {
        shared_on(endpoints, 3, Ticking::default())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failing_fast_is_avoided() {
    let black_hole = FaultConfig::default()
        .with_delay(Duration::from_millis(1))
        .with_error_rate(1.0);
    let (ours, sent) = misbehaving_endpoint(|e| shared(e, 2), black_hole).await;
    assert!(ours <= 0.005, "PeakSuccess sent it {:.2} %", ours * 100.0);
    let errors = sent.iter().filter(|s| s.at >= 12 * SECOND && !s.ok).count();
    assert!(errors <= 90, "clients saw {errors} errors of 18 000");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failing_every_call_is_avoided_and_regains_traffic_after_recovery() {
    assert_a_failing_endpoint_is_avoided_and_regains_traffic(|endpoints| shared(endpoints, 3))
        .await;
}

#[tokio::test(start_paused = true)]
async fn three_identical_endpoints_share_evenly() {
    let (endpoints, handles) = fleet(3);
    let balancer = shared(endpoints, 4);
    drive_clones(&balancer, 30 * SECOND, |_| {}).await;
    for handle in &handles {
        let share = handle.stats().requests as f64 / 30_000.0;
        assert!((share - 1.0 / 3.0).abs() <= 0.03, "{share:.3}");
    }
    let picks: u64 = balancer.snapshot().iter().map(|e| e.picks).sum();
    assert_eq!(picks, 30_000);
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
    let balancer = SharedP2c::new_with(
        discover,
        P2cConfig::default().with_seed(5),
        TokioClock::new(),
        PeakSuccess,
    )
    .expect("valid");
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
        let mut handle = balancer.clone();
        calls.push(tokio::spawn(handle.ready().await.expect("ready").call(n)));
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
    let balancer = shared(endpoints, 6);
    for n in 0..100 {
        let mut handle = balancer.clone();
        let call = handle.ready().await.expect("ready").call(n);
        drop(call);
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
    let balancer = shared(endpoints, 7);
    let mut calls = Vec::new();
    for n in 0..10 {
        let mut handle = balancer.clone();
        calls.push(tokio::spawn(handle.ready().await.expect("ready").call(n)));
    }
    assert!(balancer.remove(&0));
    let err = tokio::time::timeout(5 * SECOND, balancer.clone().oneshot(99))
        .await
        .expect("fails within the wait")
        .unwrap_err();
    assert!(err.is::<NoEndpoints>(), "{err}");
    for (n, call) in (0..).zip(calls) {
        assert_eq!(call.await.expect("no panic").expect("answered"), n);
    }
    assert_eq!(handles[0].stats().requests, 10);
}
