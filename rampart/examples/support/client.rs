//! HTTP clients over hyper-util: one endpoint per server, and two stacks over them: rampart's
//! (retry → breaker → buffer → P2C) and an unprotected round robin.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart::HttpClassifier;
use rampart::ServiceBuilderExt;
use rampart::balancer::{P2c, P2cConfig};
use rampart::breaker::BreakerConfig;
use rampart::http::clone_request;
use rampart::retry::{Policy, RatioConfig, RetryConfig};
use tower::discover::ServiceList;
use tower::{BoxError, Service, ServiceBuilder};

/// Request bodies: whole, so a request can be copied for a retry.
pub type Body = Full<Bytes>;
type Call = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

/// One server: requests' paths are sent to its address over a shared connection pool.
#[derive(Clone)]
pub struct Endpoint {
    client: Client<HttpConnector, Body>,
    addr: SocketAddr,
}

impl Endpoint {
    /// An endpoint for each address, sharing one pool.
    pub fn each(addrs: &[SocketAddr]) -> Vec<Self> {
        let client = Client::builder(TokioExecutor::new()).build_http();
        addrs
            .iter()
            .map(|&addr| Self {
                client: client.clone(),
                addr,
            })
            .collect()
    }
}

impl Service<Request<Body>> for Endpoint {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Call;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pool opens connections on demand.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri = format!("http://{}{path}", self.addr);
        let client = self.client.clone();
        Box::pin(async move {
            *request.uri_mut() = uri.parse()?;
            Ok(client.request(request).await?)
        })
    }
}

/// rampart's client stack over `addrs`, named `name` in its metrics: retries within a
/// `RatioBudget`, the SRE breaker and P2C (`PeakSuccess`), each counting 5xx and 429 responses
/// as failures. The balancer's endpoints are labelled by their position in `addrs`.
///
/// # Errors
///
/// If a configuration is invalid.
pub fn rampart_stack(
    addrs: &[SocketAddr],
    name: &str,
) -> Result<
    impl Service<Request<Body>, Response = Response<Incoming>, Error = BoxError, Future: Send>
    + Clone
    + use<>,
    BoxError,
> {
    rampart_stack_over(Endpoint::each(addrs), name)
}

/// rampart's client stack, as [`rampart_stack`] builds it, over the given endpoint services
/// (labelled by their position), whatever their response bodies.
///
/// # Errors
///
/// If a configuration is invalid.
pub fn rampart_stack_over<E, B>(
    endpoints: Vec<E>,
    name: &str,
) -> Result<
    impl Service<Request<Body>, Response = Response<B>, Error = BoxError, Future: Send>
    + Clone
    + use<E, B>,
    BoxError,
>
where
    E: Service<Request<Body>, Response = Response<B>, Error = BoxError> + Send + 'static,
    E::Future: Send + 'static,
    B: Send + 'static,
{
    let balancer = P2c::new(
        ServiceList::new::<Request<Body>>(endpoints),
        P2cConfig::default().with_name(name.to_owned()),
    )?
    .with_classifier(HttpClassifier);
    let policy = Policy::new()
        .with_classifier(HttpClassifier)
        .with_cloner(clone_request::<Body>);
    Ok(ServiceBuilder::new()
        .budgeted_retry_with(
            RetryConfig::default().with_name(name.to_owned()),
            RatioConfig::default().build()?,
            policy,
        )?
        .sre_breaker_with(
            BreakerConfig::default().with_name(name.to_owned()),
            HttpClassifier,
        )?
        .buffer(1_024)
        .service(balancer))
}

/// No protection: each request to the next server in turn, once.
#[derive(Clone)]
pub struct RoundRobin {
    endpoints: Arc<[Endpoint]>,
    next: Arc<AtomicUsize>,
}

impl RoundRobin {
    /// Round robin over `addrs`.
    pub fn new(addrs: &[SocketAddr]) -> Self {
        Self {
            endpoints: Endpoint::each(addrs).into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Service<Request<Body>> for RoundRobin {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Call;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints[at].clone().call(request)
    }
}
