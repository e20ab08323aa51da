//! The lab's own HTTP load generator: an open loop that sends every request at its arrival
//! instant whatever became of the others (over a keep-alive pool of HTTP/1 connections), a
//! closed loop that finds the server's capacity, and the once-a-second poll of `/stats`. Each
//! `/work` request carries its arrival instant in an `x-request-start: t=<microseconds since
//! the UNIX epoch>` header, as nginx and Heroku's routers stamp requests, so the server can
//! tell how long it waited before reaching the stack.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::signals::{REQUEST_START, request_start_value, since_epoch};
use super::stats::Stats;
use crate::sim::{Fate, Record};

/// A live server, as the load generator reaches it.
#[derive(Debug, Clone)]
pub struct Target {
    client: Client<HttpConnector, Empty<Bytes>>,
    work: Uri,
    stats: Uri,
}

impl Target {
    /// The server at `addr`, over a new connection pool.
    ///
    /// # Panics
    ///
    /// Never: a socket address always makes a valid URI.
    pub fn new(addr: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let uri = |path: &str| {
            format!("http://{addr}{path}")
                .parse()
                .expect("a socket address makes a valid URI")
        };
        Self {
            client,
            work: uri("/work"),
            stats: uri("/stats"),
        }
    }

    /// Sends one `GET /work` that arrived `arrived` after the UNIX epoch (its `x-request-start`)
    /// and reads its answer whole: the status, or why there is none.
    async fn work(
        &self,
        arrived: Duration,
    ) -> Result<StatusCode, hyper_util::client::legacy::Error> {
        let mut request = get(&self.work);
        if let Some(stamp) = request_start_value(arrived) {
            request.headers_mut().insert(REQUEST_START, stamp);
        }
        let response = self.client.request(request).await?;
        let status = response.status();
        // Reading the body to its end returns the connection to the pool.
        let _ = response.into_body().collect().await;
        Ok(status)
    }

    /// The server's `/stats`, or `None` when it does not answer within `patience`.
    pub async fn stats(&self, patience: Duration) -> Option<Stats> {
        let answer = async {
            let response = self.client.request(get(&self.stats)).await.ok()?;
            let body = response.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice(&body).ok()
        };
        tokio::time::timeout(patience, answer).await.ok().flatten()
    }
}

fn get(uri: &Uri) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri.clone();
    request
}

/// What an open-loop run sent and what became of it.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Requests sent.
    pub sent: u64,
    /// Arrivals not sent because `max_in_flight` requests were already waiting.
    pub unsent: u64,
    /// One record per request sent, in order of arrival.
    pub records: Vec<Record>,
    /// The 99th percentile of how late the generator sent a request after its arrival
    /// instant: a generator starved of CPU offers less than the script says.
    pub lag_p99: Duration,
}

/// Sends `GET /work` to `target` at every arrival (since the call), open loop: each request
/// is spawned at its instant, whatever became of the earlier ones, and waited for until
/// `timeout` after that instant. Arrivals finding `max_in_flight` requests still waiting are
/// counted as unsent, so that the generator cannot run away.
///
/// An answer is [`Fate::Served`] when it is a 200, [`Fate::Refused`] when it is a 503 (a
/// shed request), [`Fate::Failed`] otherwise (another status, or no connection);
/// [`Fate::TimedOut`] when nothing whole came back in time. Latencies count from the arrival
/// instant, and so does the age the request's `x-request-start` header gives the server.
pub async fn open_loop(
    target: &Target,
    arrivals: &[Duration],
    timeout: Duration,
    max_in_flight: usize,
) -> Sent {
    let start = Instant::now();
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let records = Arc::new(Mutex::new(Vec::with_capacity(arrivals.len())));
    let mut tasks = JoinSet::new();
    let (mut sent, mut unsent) = (0, 0);
    let mut lags = Vec::with_capacity(arrivals.len());
    for &at in arrivals {
        let due = start + at;
        tokio::time::sleep_until(due).await;
        let lag = due.elapsed();
        lags.push(lag);
        // The wall-clock instant of the arrival, read now: no drift from the run's start.
        let arrived = since_epoch(SystemTime::now()).saturating_sub(lag);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            unsent += 1;
            continue;
        };
        sent += 1;
        let (target, records) = (target.clone(), Arc::clone(&records));
        tasks.spawn(async move {
            let answer = tokio::time::timeout_at(due + timeout, target.work(arrived)).await;
            let latency = due.elapsed().min(timeout);
            drop(slot);
            records.lock().push(Record {
                at,
                latency,
                fate: fate(answer.as_ref().ok()),
            });
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut records = std::mem::take(&mut *records.lock());
    records.sort_by_key(|record| record.at);
    lags.sort();
    let lag_p99 = lags.get(lags.len() * 99 / 100).copied().unwrap_or_default();
    Sent {
        sent,
        unsent,
        records,
        lag_p99,
    }
}

/// A request's fate from its answer (`None`: none in time).
pub fn fate<E>(answer: Option<&Result<StatusCode, E>>) -> Fate {
    match answer {
        None => Fate::TimedOut,
        Some(Ok(StatusCode::OK)) => Fate::Served,
        Some(Ok(StatusCode::SERVICE_UNAVAILABLE)) => Fate::Refused,
        Some(_) => Fate::Failed,
    }
}

/// The server's capacity in requests per second: `concurrency` clients each send a request
/// as soon as their last one is answered; successes answered during `measure`, after a
/// `warm_up`, per second.
pub async fn capacity(
    target: &Target,
    concurrency: usize,
    warm_up: Duration,
    measure: Duration,
) -> f64 {
    let start = Instant::now();
    let (from, to) = (start + warm_up, start + warm_up + measure);
    let answered = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for _ in 0..concurrency {
        let (target, answered) = (target.clone(), Arc::clone(&answered));
        clients.spawn(async move {
            while Instant::now() < to {
                let arrived = since_epoch(SystemTime::now());
                let answer =
                    tokio::time::timeout(Duration::from_secs(1), target.work(arrived)).await;
                let now = Instant::now();
                if matches!(answer, Ok(Ok(StatusCode::OK))) && now >= from && now < to {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while clients.join_next().await.is_some() {}
    answered.load(Ordering::Relaxed) as f64 / measure.as_secs_f64()
}
