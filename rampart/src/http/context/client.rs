//! [`ClientContextLayer`]: an outgoing request's criticality and deadline, its own or the
//! current request's, written in their headers.

use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use rampart_core::{Clock, Criticality, Deadline, RequestContext, SystemClock, grpc_timeout};
use tower::{BoxError, Layer, Service};

use super::future::ClientResponseFuture;
use super::{ATTEMPTS_HEADER, CRITICALITY_HEADER, DEADLINE_HEADER, header_value};

/// The time taken off a deadline's remaining time on the wire unless configured otherwise.
const DEFAULT_MARGIN: Duration = Duration::from_millis(5);

/// Carries a criticality and a deadline on outgoing requests: the request's own
/// [`Criticality`] and [`Deadline`] extensions, or else the current request context's (the
/// inbound request being handled, as a [`ServerContextLayer`] installed it), written in their
/// headers (replacing any values there).
///
/// The deadline goes as the time that remains of it on the layer's clock less a margin
/// ([`with_margin`](Self::with_margin), 5 ms by default: the time the request takes to be
/// serialised, cross the network and be read before the next server's clock starts counting,
/// so that the callee gives up no later than its caller does), in `grpc-timeout`'s form, in
/// [`DEADLINE_HEADER`] (configurable). When nothing remains after the margin the request is
/// not sent: its future fails at once with [`DeadlineExceeded`](rampart_core::DeadlineExceeded)
/// and the inner service is not called. A chain of services thus shares one budget, each hop
/// spending its part of it.
///
/// The service it makes ([`ClientContext`]) also makes the criticality and deadline current
/// around the inner `call` and each poll of the response future, so that a breaker or a retry
/// placed inside it sees the outgoing request's. A request with neither extensions nor a
/// current context passes untouched, with no header (and no clock read).
///
/// Place it below a retry layer, next to the transport: each attempt is then stamped with
/// what remains when it is sent (a retry inside it would send the first attempt's timeout
/// again). There it also writes each retry's number in [`ATTEMPTS_HEADER`]
/// (`grpc-previous-rpc-attempts`: the attempts made before this one, which the retry layer
/// sets in the current context; the first attempt carries none). The deadline's clock, the [`SystemClock`] unless built with
/// [`new_with`](Self::new_with), must have the origin of the clock that made the deadline
/// (the server-side layer's).
///
/// ```
/// use std::time::Duration;
///
/// use http::Request;
/// use rampart::core::{Clock, Criticality, Deadline, DeadlineExceeded, ManualClock};
/// use rampart::http::{CRITICALITY_HEADER, ClientContextLayer, DEADLINE_HEADER};
/// use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let clock = ManualClock::new();
/// // The transport, here a function that returns the headers it would send.
/// let client = ClientContextLayer::new_with(clock.clone()).layer(service_fn(
///     |request: Request<()>| async move { Ok::<_, tower::BoxError>(request.headers().clone()) },
/// ));
///
/// let mut prefetch = Request::new(());
/// prefetch.extensions_mut().insert(Criticality::SHEDDABLE);
/// prefetch.extensions_mut().insert(Deadline::after(clock.now(), Duration::from_millis(100)));
/// clock.advance(Duration::from_millis(20));
/// let sent = client.clone().oneshot(prefetch).await?;
/// assert_eq!(sent[CRITICALITY_HEADER], "sheddable");
/// assert_eq!(sent[DEADLINE_HEADER], "75000000n"); // 100 - 20 - the 5 ms margin, in ns
///
/// // No criticality or deadline of its own and none current: no header.
/// assert!(client.clone().oneshot(Request::new(())).await?.is_empty());
///
/// // Less than the margin left: not sent.
/// let mut late = Request::new(());
/// late.extensions_mut().insert(Deadline::after(clock.now(), Duration::from_millis(3)));
/// let refused = client.oneshot(late).await.unwrap_err();
/// assert!(refused.is::<DeadlineExceeded>());
/// # Ok(())
/// # }
/// ```
///
/// [`ServerContextLayer`]: crate::http::ServerContextLayer
#[derive(Debug, Clone)]
pub struct ClientContextLayer<C = SystemClock> {
    header: HeaderName,
    deadline_header: HeaderName,
    margin: Duration,
    clock: C,
}

impl Default for ClientContextLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientContextLayer {
    /// A layer writing [`CRITICALITY_HEADER`] and [`DEADLINE_HEADER`], its deadlines read on
    /// the [`SystemClock`].
    pub fn new() -> Self {
        Self::new_with(SystemClock::new())
    }
}

impl<C> ClientContextLayer<C> {
    /// A layer writing [`CRITICALITY_HEADER`] and [`DEADLINE_HEADER`], its deadlines read on
    /// `clock` (of the same origin as the clock that made them).
    pub fn new_with(clock: C) -> Self {
        Self {
            header: CRITICALITY_HEADER,
            deadline_header: DEADLINE_HEADER,
            margin: DEFAULT_MARGIN,
            clock,
        }
    }

    /// Writes the criticality in `header` instead (gRPC metadata travels as headers, so this
    /// names a metadata key too).
    #[must_use]
    pub fn with_header(self, header: HeaderName) -> Self {
        Self { header, ..self }
    }

    /// Writes the deadline in `header` instead of `grpc-timeout` (in the same form), for
    /// servers that read it there (a gRPC server reads `grpc-timeout` only).
    #[must_use]
    pub fn with_deadline_header(self, header: HeaderName) -> Self {
        Self {
            deadline_header: header,
            ..self
        }
    }

    /// Takes `margin` off the remaining time written on each request (5 ms by default): the
    /// time between this layer's reading of the clock and the next server's, spent
    /// serialising, on the network and parsing. Zero writes the remaining time as it is.
    #[must_use]
    pub fn with_margin(self, margin: Duration) -> Self {
        Self { margin, ..self }
    }

    /// The header the criticality is written in.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The header the deadline is written in.
    pub fn deadline_header(&self) -> &HeaderName {
        &self.deadline_header
    }

    /// The time taken off the remaining time written on each request.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// The clock the deadlines are read on.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<S, C: Clone> Layer<S> for ClientContextLayer<C> {
    type Service = ClientContext<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientContext {
            inner,
            header: self.header.clone(),
            deadline_header: self.deadline_header.clone(),
            margin: self.margin,
            clock: self.clock.clone(),
        }
    }
}

/// The service of [`ClientContextLayer`]: each outgoing request carrying its criticality and
/// what remains of its deadline.
#[derive(Debug, Clone)]
pub struct ClientContext<S, C = SystemClock> {
    inner: S,
    header: HeaderName,
    deadline_header: HeaderName,
    margin: Duration,
    clock: C,
}

impl<S> ClientContext<S> {
    /// `inner`, its requests stamped as [`ClientContextLayer::new`] stamps them.
    pub fn new(inner: S) -> Self {
        ClientContextLayer::new().layer(inner)
    }
}

impl<S, C> ClientContext<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, this wrapper consumed.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, B> Service<Request<B>> for ClientContext<S, C>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ClientResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let extensions = request.extensions();
        let mut own = RequestContext::new();
        if let Some(&criticality) = extensions.get::<Criticality>() {
            own = own.with_criticality(criticality);
        }
        if let Some(&deadline) = extensions.get::<Deadline>() {
            own = own.with_deadline(deadline);
        }
        let context = own.or(RequestContext::current());
        if let Some(criticality) = context.criticality() {
            request
                .headers_mut()
                .insert(&self.header, header_value(criticality));
        }
        if let Some(previous) = context.attempt().filter(|&previous| previous > 0) {
            request
                .headers_mut()
                .insert(ATTEMPTS_HEADER, HeaderValue::from(previous));
        }
        if let Some(deadline) = context.deadline() {
            let left = deadline
                .remaining(self.clock.now())
                .saturating_sub(self.margin);
            if left.is_zero() {
                return ClientResponseFuture::exceeded(context);
            }
            // Always digits and a unit: a valid header value.
            if let Ok(value) = HeaderValue::try_from(grpc_timeout::format(left)) {
                request.headers_mut().insert(&self.deadline_header, value);
            }
        }
        let future = {
            let _entered = context.enter();
            self.inner.call(request)
        };
        ClientResponseFuture::sent(future, context)
    }
}
