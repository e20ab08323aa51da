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
