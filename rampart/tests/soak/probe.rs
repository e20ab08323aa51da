//! The client's endpoints, probed: each attempt a server is sent is counted by what became of
//! it, and in the request's own [`Attempts`]; its response body is read whole (so that the
//! connection returns to the pool).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use tower::{BoxError, Service};

use crate::support::client::{Body, Endpoint};

/// A response whose body has been read.
pub type Buffered = Response<Full<Bytes>>;

/// How many attempts of one request reached an endpoint: carried in the request's
/// extensions, which the retry layer copies into every attempt.
#[derive(Debug, Clone, Default)]
pub struct Attempts(Arc<AtomicU32>);

impl Attempts {
    /// Attempts that reached an endpoint so far.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the attempts sent to one endpoint became, counted as they end.
#[derive(Debug, Default)]
pub struct Counts {
    calls: AtomicU64,
    ok: AtomicU64,
    shed: AtomicU64,
    errors: AtomicU64,
    other: AtomicU64,
    transport: AtomicU64,
}

/// [`Counts`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointTally {
    /// Attempts sent.
    pub calls: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Answered 503: shed by the server's limiter.
    pub shed: u64,
    /// Answered 500: an injected error.
    pub errors: u64,
    /// Answered with any other status.
    pub other: u64,
    /// No answer: the connection failed or closed.
    pub transport: u64,
}

impl EndpointTally {
    /// Attempts the server answered.
    pub fn answered(&self) -> u64 {
        self.ok + self.shed + self.errors + self.other
    }
}

impl Counts {
    /// The counts now.
    pub fn tally(&self) -> EndpointTally {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EndpointTally {
            calls: read(&self.calls),
            ok: read(&self.ok),
            shed: read(&self.shed),
            errors: read(&self.errors),
            other: read(&self.other),
            transport: read(&self.transport),
        }
    }

    fn record(&self, result: &Result<Buffered, BoxError>) {
        let counter = match result {
            Ok(response) if response.status().is_success() => &self.ok,
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => &self.shed,
            Ok(response) if response.status() == StatusCode::INTERNAL_SERVER_ERROR => &self.errors,
            Ok(_) => &self.other,
            Err(_) => &self.transport,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// An endpoint that counts its attempts.
#[derive(Clone)]
pub struct Probe {
    inner: Endpoint,
    counts: Arc<Counts>,
}

/// A probe for each address (sharing one connection pool), and their counts.
pub fn probes(addrs: &[std::net::SocketAddr]) -> (Vec<Probe>, Vec<Arc<Counts>>) {
    Endpoint::each(addrs)
        .into_iter()
        .map(|inner| {
            let counts = Arc::new(Counts::default());
            let probe = Probe {
                inner,
                counts: Arc::clone(&counts),
            };
            (probe, counts)
        })
        .unzip()
}

impl Service<Request<Body>> for Probe {
    type Response = Buffered;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Buffered, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if let Some(attempts) = request.extensions().get::<Attempts>() {
            attempts.0.fetch_add(1, Ordering::Relaxed);
        }
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let counts = Arc::clone(&self.counts);
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = async {
                let (parts, body) = call.await?.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok(Response::from_parts(parts, Full::new(body)))
            }
            .await;
            counts.record(&result);
            result
        })
    }
}
