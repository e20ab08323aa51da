//! What the fleet scenarios share: the endpoints (`rampart-fault` backends, 10 ms log-normal
//! latency, p99 20 ms), the driver sending 1 000 requests per second on paused time, and the
//! measures of a run.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_fault::{Distribution, Fault, FaultConfig, FaultHandle, FaultLayer};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

pub(crate) const SECOND: Duration = Duration::from_secs(1);
/// The last millisecond of a 30 s run.
pub(crate) const END: Duration = Duration::from_millis(29_999);
pub(crate) type Backend =
    Fault<tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>>>;

pub(crate) fn healthy() -> FaultConfig {
    FaultConfig::default().with_latency(Distribution::log_normal_p99(
        Duration::from_millis(10),
        Duration::from_millis(20),
    ))
}

pub(crate) fn endpoint(seed: u64) -> (Backend, FaultHandle) {
    let (layer, handle) = FaultLayer::pair(healthy().with_seed(seed)).expect("valid");
    let answer: fn(u32) -> std::future::Ready<Result<u32, Infallible>> =
        |n| std::future::ready(Ok(n));
    (layer.layer(service_fn(answer)), handle)
}

/// `n` endpoints keyed 0..n, and their handles.
pub(crate) fn fleet(n: usize) -> (Vec<(usize, Backend)>, Vec<FaultHandle>) {
    (0..n)
        .map(|i| {
            let (service, handle) = endpoint(100 + i as u64);
            ((i, service), handle)
        })
        .unzip()
}

/// One request's fate: when it was sent, its latency, whether it succeeded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) at: Duration,
    pub(crate) latency: Duration,
    pub(crate) ok: bool,
}

/// Sends 1 000 requests per second for `duration` through `balancer`, calling `script` with
/// the elapsed time before each; returns every request's fate.
pub(crate) async fn drive<B>(
    mut balancer: B,
    duration: Duration,
    mut script: impl FnMut(Duration),
) -> Vec<Sent>
where
    B: Service<u32, Response = u32, Error = BoxError>,
    B::Future: Send + 'static,
{
    let start = Instant::now();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..(duration.as_millis() as u32) {
        let at = Duration::from_millis(u64::from(n));
        tokio::time::sleep_until(start + at).await;
        script(at);
        let call = balancer
            .ready()
            .await
            .expect("the balancer stays ready")
            .call(n);
        let sent = Arc::clone(&sent);
        tasks.push(tokio::spawn(async move {
            let result = call.await;
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

pub(crate) fn p99(sent: &[Sent], from: Duration) -> Duration {
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter(|s| s.at >= from)
        .map(|s| s.latency)
        .collect();
    latencies.sort();
    latencies[latencies.len() * 99 / 100]
}

/// The share of requests sent between two instants that `handle`'s endpoint received, from
/// request counts taken at those instants.
pub(crate) fn share(before: u64, after: u64, total: u64) -> f64 {
    (after - before) as f64 / total as f64
}

/// Each endpoint's request count, at one instant.
pub(crate) type Tally = (Duration, Vec<u64>);

/// Counts each endpoint's requests at the instants the script sees.
#[derive(Clone, Default)]
pub(crate) struct Counts(Arc<Mutex<Vec<Tally>>>);

impl Counts {
    pub(crate) fn take(&self, at: Duration, handles: &[FaultHandle]) {
        self.0
            .lock()
            .push((at, handles.iter().map(|h| h.stats().requests).collect()));
    }

    pub(crate) fn at(&self, at: Duration) -> Vec<u64> {
        self.0
            .lock()
            .iter()
            .find(|(t, _)| *t == at)
            .map(|(_, c)| c.clone())
            .expect("counted")
    }
}

/// Runs `n` endpoints for `duration`, applying `change` to endpoint 4 at 10 s; returns the
/// share of requests endpoint 4 got from 12 s on, and the fates.
pub(crate) async fn misbehaving_endpoint<B>(
    balancer: impl FnOnce(Vec<(usize, Backend)>) -> B,
    change: FaultConfig,
) -> (f64, Vec<Sent>)
where
    B: Service<u32, Response = u32, Error = BoxError>,
    B::Future: Send + 'static,
{
    let (endpoints, handles) = fleet(5);
    let counts = Counts::default();
    let (script_counts, script_handles) = (counts.clone(), handles.clone());
    let sent = drive(balancer(endpoints), 30 * SECOND, move |at| {
        if at == 10 * SECOND {
            script_handles[4].set(change.clone()).expect("valid");
        }
        if at == 12 * SECOND || at == END {
            script_counts.take(at, &script_handles);
        }
    })
    .await;
    (
        share(counts.at(12 * SECOND)[4], counts.at(END)[4], 18_000),
        sent,
    )
}

/// Checks the snapshots taken before and after an endpoint (key 4) joined four others and one
/// request was placed: the four keep their latency and success (Kratos rebuilds every node on
/// a membership change), and the one request went to exactly one endpoint.
pub(crate) fn assert_the_old_endpoints_kept_their_statistics(
    before: &[rampart_balancer::EndpointSnapshot<usize>],
    after: &[rampart_balancer::EndpointSnapshot<usize>],
) {
    let mut placed = 0;
    for old in before {
        let kept = after
            .iter()
            .find(|e| e.key == old.key)
            .expect("still there");
        assert_eq!(
            (kept.lag, kept.success),
            (old.lag, old.success),
            "{:?}",
            kept.key
        );
        placed += kept.picks - old.picks;
    }
    assert_eq!(after.len(), 5);
    assert_eq!(
        placed + after.iter().find(|e| e.key == 4).expect("new").picks,
        1
    );
}

/// Checks that an endpoint joining a loaded fleet takes its share within five seconds, from
/// its request counts taken once a second after it joined.
pub(crate) fn assert_the_new_endpoint_ramps_up(per_second: &[u64]) {
    let seconds: Vec<u64> = per_second.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "new endpoint, requests per second after joining: {:?}",
        &seconds[..6]
    );
    assert!(
        seconds[..5].iter().any(|&n| n >= 150),
        "the new endpoint's first seconds: {seconds:?}"
    );
}

/// Runs five endpoints through `balancer` for 40 s, the fifth failing every call from 5 s to
/// 25 s, and checks that it gets at most 2 % of the requests while it fails and, within 5 s
/// of its recovery, a second with at least half its fair share.
pub(crate) async fn assert_a_failing_endpoint_is_avoided_and_regains_traffic<B>(
    balancer: impl FnOnce(Vec<(usize, Backend)>) -> B,
) where
    B: Service<u32, Response = u32, Error = BoxError>,
    B::Future: Send + 'static,
{
    let (endpoints, handles) = fleet(5);
    let counts = Counts::default();
    let (script_counts, script_handles) = (counts.clone(), handles.clone());
    let failing = healthy().with_error_rate(1.0);
    drive(balancer(endpoints), 40 * SECOND, move |at| {
        if at == 5 * SECOND {
            script_handles[4].set(failing.clone()).expect("valid");
        }
        if at == 25 * SECOND {
            script_handles[4].set(healthy()).expect("valid");
        }
        if at.subsec_millis() == 0 {
            script_counts.take(at, &script_handles);
        }
    })
    .await;
    let second = |s: u32| {
        let (a, b) = (counts.at(s * SECOND)[4], counts.at((s + 1) * SECOND)[4]);
        share(a, b, 1_000)
    };
    let failing_share = share(counts.at(10 * SECOND)[4], counts.at(25 * SECOND)[4], 15_000);
    assert!(
        failing_share <= 0.02,
        "failing: {:.2} %",
        failing_share * 100.0
    );
    let regained = (25..30).any(|s| second(s) >= 0.10);
    assert!(
        regained,
        "no second within 5 s of recovery reached half its fair share: {:?}",
        (25..31).map(second).collect::<Vec<_>>()
    );
    eprintln!(
        "failing 100 %: {:.2} %; after recovery: {:?}",
        failing_share * 100.0,
        (25..31).map(second).collect::<Vec<_>>()
    );
}
