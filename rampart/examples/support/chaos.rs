//! The loopback chaos run: three servers on 127.0.0.1, one failing half its requests slowly,
//! a bounded burst of real HTTP traffic through a client stack, and its tally.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use rampart::fault::{Distribution, FaultConfig};
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceExt};

use super::client::{Body, Endpoint, RoundRobin, rampart_stack};
use super::server::{self, Server};

/// The server that misbehaves.
pub const BAD: usize = 2;
/// How long a client waits for an answer, retries included.
pub const DEADLINE: Duration = Duration::from_secs(2);

/// Three servers, the last of which fails half its requests after 20–80 ms.
pub struct Fleet {
    /// The servers, `BAD` the misbehaving one.
    pub servers: Vec<Server>,
    /// The process's metrics.
    pub metrics: PrometheusHandle,
}

impl Fleet {
    /// Starts the fleet.
    ///
    /// # Errors
    ///
    /// If a server cannot start.
    pub async fn start() -> Result<Self, BoxError> {
        let metrics = server::metrics();
        let bad = FaultConfig::default()
            .with_latency(Distribution::log_normal_p99(
                Duration::from_millis(20),
                Duration::from_millis(80),
            ))
            .with_error_rate(0.5);
        let mut servers = Vec::new();
        for at in 0..3 {
            let faults = if at == BAD {
                bad.clone()
            } else {
                FaultConfig::default()
            };
            servers.push(server::start(&format!("server-{at}"), faults, metrics.clone()).await?);
        }
        Ok(Self { servers, metrics })
    }

    /// The servers' addresses.
    pub fn addrs(&self) -> Vec<std::net::SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    fn received(&self) -> Vec<u64> {
        self.servers
            .iter()
            .map(|s| s.faults.stats().requests)
            .collect()
    }
}

/// What became of a burst's requests, and where they went.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// The stack's name.
    pub stack: String,
    /// Requests sent.
    pub sent: u64,
    /// Answered 2xx within the deadline.
    pub succeeded: u64,
    /// Refused by the client's own protection (breaker, no endpoint) or shed by a server.
    pub rejected: u64,
    /// Answered with an error status, a transport error, or nothing within the deadline.
    pub failed: u64,
    /// Requests each server received (attempts, retries included).
    pub received: Vec<u64>,
    /// The bad server's share of what the servers received in the first fifth of the burst,
    /// and in the last half.
    pub bad_share: (f64, f64),
}

impl Tally {
    /// Successes over requests sent.
    pub fn success_rate(&self) -> f64 {
        self.succeeded as f64 / (self.sent as f64).max(1.0)
    }
}

/// How one request ended.
enum Fate {
    Succeeded,
    Rejected,
    Failed,
}

fn fate(result: Result<Result<Response<Incoming>, BoxError>, tokio::time::error::Elapsed>) -> Fate {
    match result {
        Ok(Ok(response)) if response.status().is_success() => Fate::Succeeded,
        Ok(Ok(response)) if response.status() == hyper::StatusCode::SERVICE_UNAVAILABLE => {
            Fate::Rejected
        }
        Ok(Err(error))
            if rampart::http::ErrorStatus::default()
                .of(&*error)
                .is_some_and(|m| m.retry_after.is_some()) =>
        {
            Fate::Rejected
        }
        _ => Fate::Failed,
    }
}

/// Sends `requests` GET `/work` requests through `stack` at `rate` per second (open loop:
/// a slow answer never delays the next request), each awaited up to [`DEADLINE`].
pub async fn burst<S>(fleet: &Fleet, name: &str, stack: S, requests: u64, rate: f64) -> Tally
where
    S: Service<Request<Body>, Response = Response<Incoming>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let start = Instant::now();
    let before = fleet.received();
    let mut early = None;
    let mut late_from = None;
    let mut calls = Vec::new();
    for n in 0..requests {
        tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate)).await;
        if n == requests / 5 {
            early = Some(fleet.received());
        }
        if n == requests / 2 {
            late_from = Some(fleet.received());
        }
        let request = Request::get("/work")
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let call = stack.clone().oneshot(request);
        calls.push(tokio::spawn(async move {
            fate(tokio::time::timeout(DEADLINE, call).await)
        }));
    }
    let mut tally = Tally {
        stack: name.to_owned(),
        sent: requests,
        ..Tally::default()
    };
    for call in calls {
        match call.await {
            Ok(Fate::Succeeded) => tally.succeeded += 1,
            Ok(Fate::Rejected) => tally.rejected += 1,
            Ok(Fate::Failed) | Err(_) => tally.failed += 1,
        }
    }
    let after = fleet.received();
    let early = early.unwrap_or_else(|| after.clone());
    let late_from = late_from.unwrap_or_else(|| after.clone());
    let share = |from: &[u64], to: &[u64]| {
        let got: Vec<u64> = to.iter().zip(from).map(|(t, f)| t - f).collect();
        got[BAD] as f64 / (got.iter().sum::<u64>() as f64).max(1.0)
    };
    tally.bad_share = (share(&before, &early), share(&late_from, &after));
    tally.received = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    tally
}

/// The tallies as a table.
pub fn table(tallies: &[Tally]) -> String {
    let mut out = format!(
        "{:<12} {:>6} {:>9} {:>8} {:>6} {:>8}  {:>20}  {:>22}\n",
        "stack",
        "sent",
        "succeeded",
        "rejected",
        "failed",
        "success",
        "received (servers)",
        "bad share early → late"
    );
    for t in tallies {
        let received = t
            .received
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>9} {:>8} {:>6} {:>7.2}%  {:>20}  {:>10.1}% → {:>6.1}%",
            t.stack,
            t.sent,
            t.succeeded,
            t.rejected,
            t.failed,
            100.0 * t.success_rate(),
            received,
            100.0 * t.bad_share.0,
            100.0 * t.bad_share.1,
        );
    }
    out
}

/// Sends `requests` at `rate` per second through an unprotected round robin over the fleet,
/// then through rampart's client stack (named `client` in the metrics): their tallies, in
/// that order.
///
/// # Errors
///
/// If rampart's stack cannot be built.
pub async fn compare(fleet: &Fleet, requests: u64, rate: f64) -> Result<[Tally; 2], BoxError> {
    let addrs = fleet.addrs();
    let unprotected = burst(
        fleet,
        "round robin",
        RoundRobin::new(&addrs),
        requests,
        rate,
    )
    .await;
    let stack = rampart_stack(&addrs, "client")?;
    let protected = burst(fleet, "rampart", stack, requests, rate).await;
    Ok([unprotected, protected])
}

/// The metrics exposition of the server at `addr`, fetched over HTTP as Prometheus would.
///
/// # Errors
///
/// If the server does not answer 200 within 5 s, or its body is not UTF-8.
pub async fn scrape(addr: SocketAddr) -> Result<String, BoxError> {
    let request = Request::get("/metrics").body(Body::default())?;
    let endpoint = Endpoint::each(&[addr]).remove(0);
    let response =
        tokio::time::timeout(Duration::from_secs(5), endpoint.oneshot(request)).await??;
    if !response.status().is_success() {
        return Err(format!("/metrics answered {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}
