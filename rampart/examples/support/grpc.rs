//! gRPC over tonic: echo servers behind rampart's BBR limiter on 127.0.0.1, and the client
//! stack (retry → breaker → P2C over one channel per server) under tonic's generated client.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Full};
use rampart::core::{Clock, ManualClock};
use rampart::grpc::GrpcStatus;
use rampart::ratelimit::{BbrConfig, BbrLimitLayer, BbrLimiter, CpuUsage, ManualCpu};
use rampart_grpc_echo::{Echo, EchoClient, EchoServer, SayReply, SayRequest};
use tokio::sync::{Semaphore, mpsc};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::util::{BoxCloneService, MapResultLayer};
use tower::{BoxError, Service};

use rampart::ServiceBuilderExt;
use rampart::balancer::{P2c, P2cConfig};
use rampart::breaker::BreakerConfig;
use rampart::core::{GrpcBody, GrpcClassifier};
use rampart::http::clone_request;
use rampart::retry::pushback::{HttpPushback, dont_retry_header};
use rampart::retry::{GaveUpMark, Policy, RatioConfig, RetryConfig};
use tower::ServiceBuilder;
use tower::discover::ServiceList;

use super::client::Body;

/// A server's answer to a refusal of one of rampart's layers: its gRPC status as a
/// trailers-only response (by [`GrpcStatus`]: the limiter's `Overloaded` is `UNAVAILABLE` with
/// `grpc-retry-pushback-ms: 1000`). Any other error passes on, and tonic answers it `UNKNOWN`.
///
/// # Errors
///
/// The errors that are not rampart's.
pub fn answer_refusal(
    result: Result<http::Response<tonic::body::Body>, BoxError>,
) -> Result<http::Response<tonic::body::Body>, BoxError> {
    match result {
        Err(error) => match GrpcStatus::default().of(&*error) {
            Some(mapped) => Ok(mapped.response(tonic::body::Body::default())),
            None => Err(error),
        },
        answer => answer,
    }
}

/// A client's view of an error of its stack: a refusal by one of its own layers (the breaker,
/// an empty balancer, spent retries) is the tonic `Status` that [`GrpcStatus`] maps it to, with
/// its pushback; any other error is the `Status` tonic makes of it.
pub fn status_of(error: BoxError) -> Status {
    let Some(mapped) = GrpcStatus::default().of(&*error) else {
        return Status::from_error(error);
    };
    let mut metadata = http::HeaderMap::new();
    if let Some(pushback) = mapped.pushback {
        metadata.insert("grpc-retry-pushback-ms", pushback.header_value());
    }
    Status::with_metadata(
        Code::from_i32(i32::from(mapped.code.number())),
        mapped.message,
        MetadataMap::from_headers(metadata),
    )
}

/// Holds the requests that reach a server's handler until released: a test's way to keep
/// requests in flight for as long as it needs, without timers.
#[derive(Clone)]
pub struct Hold {
    arrived: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
}

/// The test's side of a [`Hold`].
pub struct Held {
    arrived: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

impl Held {
    /// A hold and its controls.
    pub fn new() -> (Hold, Self) {
        let (arrived, receiver) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        (
            Hold {
                arrived,
                release: Arc::clone(&release),
            },
            Self {
                arrived: receiver,
                release,
            },
        )
    }

    /// Waits until `count` more requests have reached the handler.
    pub async fn arrivals(&mut self, count: usize) {
        for _ in 0..count {
            self.arrived.recv().await.expect("the server is running");
        }
    }

    /// Lets `count` held requests go on.
    pub fn release(&self, count: usize) {
        self.release.add_permits(count);
    }
}

/// The echo service: `Say` answers the text (`"invalid"` with `INVALID_ARGUMENT`, `"fail"` with
/// the code of [`failing_say`](Self::failing_say) when set), `Repeat` streams the
/// text `count` times (and then fails with `fail_stream`, when set: an error in the trailers
/// after a body).
#[derive(Clone, Default)]
pub struct EchoService {
    server: u32,
    hold: Option<Hold>,
    fail_say: Option<Code>,
    fail_stream: Option<Code>,
    shed: Option<(u64, &'static str)>,
    backend: Option<Arc<Mutex<Client>>>,
    calls: Arc<AtomicU64>,
}

impl EchoService {
    /// Server number `server`, answering every call.
    pub fn new(server: u32) -> Self {
        Self {
            server,
            ..Self::default()
        }
    }

    /// Holds each call to `Say` until `hold` releases it.
    #[must_use]
    pub fn holding(self, hold: Hold) -> Self {
        Self {
            hold: Some(hold),
            ..self
        }
    }

    /// Answers `Say` requests whose text is `"fail"` with `code` (a trailers-only response).
    #[must_use]
    pub fn failing_say(self, code: Code) -> Self {
        Self {
            fail_say: Some(code),
            ..self
        }
    }

    /// Ends each `Repeat` stream with `code` after its messages.
    #[must_use]
    pub fn failing_stream(self, code: Code) -> Self {
        Self {
            fail_stream: Some(code),
            ..self
        }
    }

    /// Answers the first `calls` calls to `Say` as a shedding server does: `RESOURCE_EXHAUSTED`
    /// with `grpc-retry-pushback-ms: pushback` (any text, to try malformed values).
    #[must_use]
    pub fn shedding_first(self, calls: u64, pushback: &'static str) -> Self {
        Self {
            shed: Some((calls, pushback)),
            ..self
        }
    }

    /// Answers `Say` by calling `backend` with the same request: a service in the middle of a
    /// chain, passing its backend's answer (status and metadata) on to its caller.
    #[must_use]
    pub fn forwarding(self, backend: Client) -> Self {
        Self {
            backend: Some(Arc::new(Mutex::new(backend))),
            ..self
        }
    }

    /// The calls that reached the handler.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn reply(&self, text: &str) -> SayReply {
        SayReply {
            text: text.to_owned(),
            server: self.server,
        }
    }
}

/// A stream of replies.
pub type Replies = Pin<Box<dyn tokio_stream::Stream<Item = Result<SayReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn say(
        &self,
        request: tonic::Request<SayRequest>,
    ) -> Result<tonic::Response<SayReply>, Status> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some((shed, pushback)) = self.shed
            && call < shed
        {
            let mut status = Status::resource_exhausted("shedding");
            let value = pushback
                .parse()
                .map_err(|_| Status::internal("bad value"))?;
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", value);
            return Err(status);
        }
        if let Some(hold) = &self.hold {
            let _ = hold.arrived.send(());
            let permit = hold.release.acquire().await;
            permit.map_err(|_| Status::cancelled("released"))?.forget();
        }
        let request = request.into_inner();
        if let Some(backend) = &self.backend {
            let mut backend = backend.lock().expect("not poisoned").clone();
            return backend.say(request).await;
        }
        if request.text == "invalid" {
            return Err(Status::invalid_argument("the caller's own error"));
        }
        if let Some(code) = self.fail_say
            && request.text == "fail"
        {
            return Err(Status::new(code, "failing as asked"));
        }
        Ok(tonic::Response::new(self.reply(&request.text)))
    }

    type RepeatStream = Replies;

    async fn repeat(
        &self,
        request: tonic::Request<SayRequest>,
    ) -> Result<tonic::Response<Replies>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = request.into_inner();
        let mut items: Vec<Result<SayReply, Status>> = (0..request.count)
            .map(|_| Ok(self.reply(&request.text)))
            .collect();
        if let Some(code) = self.fail_stream {
            items.push(Err(Status::new(code, "failing after the messages")));
        }
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

/// A running tonic server.
pub struct GrpcServer {
    /// Where it listens (on 127.0.0.1).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `echo` on an ephemeral port of 127.0.0.1 behind `limiter`, its refusals answered
/// by [`answer_refusal`].
///
/// # Errors
///
/// If the port cannot be bound.
pub async fn serve<C, U>(
    echo: EchoService,
    limiter: Arc<BbrLimiter<C, U>>,
) -> Result<GrpcServer, BoxError>
where
    C: Clock,
    U: CpuUsage,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let router = tonic::transport::Server::builder()
        .layer(MapResultLayer::new(answer_refusal))
        .layer(BbrLimitLayer::from_limiter(limiter))
        .add_service(EchoServer::new(echo));
    let task = tokio::spawn(async move {
        // Serving ends when the task is aborted.
        let _ = router.serve_with_incoming(incoming).await;
    });
    Ok(GrpcServer { addr, task })
}

/// A limiter that sheds deterministically: the CPU reads 95 % and nothing has completed yet,
/// so its proven capacity is tiny and it admits two requests in flight, no more.
///
/// # Errors
///
/// Never with these settings; the type is the builder's.
pub fn hot_limiter(name: &str) -> Result<Arc<BbrLimiter<ManualClock, ManualCpu>>, BoxError> {
    Ok(Arc::new(
        BbrConfig::default()
            .with_name(name.to_owned())
            .build_with(ManualClock::new(), ManualCpu::new(0.95))?,
    ))
}

/// A lazily connecting channel to `addr`, as a service of whole request bodies (so the retry
/// layer above it can copy a request).
#[derive(Clone)]
pub struct GrpcEndpoint(Channel);

impl GrpcEndpoint {
    /// A channel to each address (they connect on first use).
    ///
    /// # Errors
    ///
    /// Never for a socket address.
    pub fn each(addrs: &[SocketAddr]) -> Result<Vec<Self>, BoxError> {
        addrs
            .iter()
            .map(|addr| {
                Ok(Self(
                    Channel::from_shared(format!("http://{addr}"))?.connect_lazy(),
                ))
            })
            .collect()
    }
}

type Call<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl Service<http::Request<Body>> for GrpcEndpoint {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Call<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let call = self.0.call(request.map(tonic::body::Body::new));
        Box::pin(async move { call.await.map_err(Into::into) })
    }
}

/// The adapter between tonic's generated client and a stack of whole request bodies: it reads
/// each request's body (a unary or server-streaming call's single message) into memory, and
/// answers the stack's own refusals with their gRPC status ([`status_of`]), and marks
/// "don't retry" (`grpc-retry-pushback-ms: -1`) on an answer the stack's retries gave up on.
#[derive(Clone)]
pub struct WholeBody(Stack);

impl WholeBody {
    /// The adapter over `stack`.
    pub fn new(stack: Stack) -> Self {
        Self(stack)
    }
}

// Over the one stack type, in a type without parameters: with the stack's type (which names
// `BoxError`, a trait object with a lifetime) among the client's type parameters, the compiler
// cannot prove the generated client's futures `Send`, which a handler calling a backend through
// this client needs.
impl Service<http::Request<tonic::body::Body>> for WholeBody {
    type Response = http::Response<tonic::body::Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.0.poll_ready(cx).map_err(status_of)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // The clone takes the place of the service that is ready, which makes the call.
        let fresh = self.0.clone();
        let mut ready = std::mem::replace(&mut self.0, fresh);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let whole = body.collect().await?.to_bytes();
            let request = http::Request::from_parts(parts, Full::new(whole));
            let mut response = ready.call(request).await.map_err(status_of)?;
            if response.extensions().get::<GaveUpMark>().is_some() {
                // The retry layer gave up on this answer: the caller must not retry it either.
                let (name, value) = dont_retry_header(true);
                response
                    .headers_mut()
                    .insert(name, http::HeaderValue::from_static(value));
            }
            Ok(response)
        })
    }
}

/// A client stack of whole request bodies over tonic channels.
pub type Stack = BoxCloneService<http::Request<Body>, http::Response<tonic::body::Body>, BoxError>;

/// tonic's generated echo client over a [`Stack`].
pub type Client = EchoClient<WholeBody>;

/// rampart's client stack for gRPC over `addrs`, named `name` in its metrics: retry (honouring
/// `grpc-retry-pushback-ms`, within a `RatioBudget`) → breaker → buffer → P2C, the breaker and
/// the balancer counting gRPC outcomes with [`GrpcClassifier`], also those that arrive in the
/// trailers after a body ([`GrpcBody`] wraps each channel's responses).
///
/// # Errors
///
/// If a configuration is invalid.
pub fn grpc_stack(addrs: &[SocketAddr], name: &str, retry: RetryConfig) -> Result<Stack, BoxError> {
    let endpoints: Vec<_> = GrpcEndpoint::each(addrs)?
        .into_iter()
        .map(|channel| {
            ServiceBuilder::new()
                .map_response(GrpcBody::wrap)
                .service(channel)
        })
        .collect();
    let balancer = P2c::new(
        ServiceList::new::<http::Request<Body>>(endpoints),
        P2cConfig::default().with_name(name.to_owned()),
    )?
    .with_classifier(GrpcClassifier);
    let policy = Policy::new()
        .with_classifier(GrpcClassifier)
        .with_cloner(clone_request::<Body>)
        .with_pushback(HttpPushback);
    let stack = ServiceBuilder::new()
        .map_response(|response: http::Response<GrpcBody<tonic::body::Body>>| {
            response.map(tonic::body::Body::new)
        })
        .budgeted_retry_with(
            retry.with_name(name.to_owned()),
            RatioConfig::default().build()?,
            policy,
        )?
        .sre_breaker_with(
            BreakerConfig::default().with_name(name.to_owned()),
            GrpcClassifier,
        )?
        .buffer(1_024)
        .service(balancer);
    Ok(BoxCloneService::new(stack))
}

/// The echo client over [`grpc_stack`] with the default retry configuration.
///
/// # Errors
///
/// If a configuration is invalid.
pub fn rampart_client(addrs: &[SocketAddr], name: &str) -> Result<Client, BoxError> {
    let stack = grpc_stack(addrs, name, RetryConfig::default())?;
    Ok(EchoClient::new(WholeBody::new(stack)))
}

/// A message to echo.
pub fn say(text: &str, count: u32) -> SayRequest {
    SayRequest {
        text: text.to_owned(),
        count,
    }
}
