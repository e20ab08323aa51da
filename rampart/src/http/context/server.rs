//! [`ServerContextLayer`]: an inbound request's criticality, read from its header as its
//! caller is trusted, and its deadline, read from the time its caller still waits; both
//! current for the whole handling of the request.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderValue, Request};
use rampart_core::{Clock, Criticality, Deadline, RequestContext, SystemClock, grpc_timeout};
use tower::{Layer, Service};

use super::config::ServerContextConfig;
use super::future::ResponseFuture;
use super::header_value;
use super::metrics::{DeadlineMetrics, Inbound, InboundDeadline, InboundMetrics};

/// The configuration, the metrics and the clock every service of one layer shares.
#[derive(Debug)]
struct Shared<C> {
    config: ServerContextConfig,
    metrics: InboundMetrics,
    deadlines: DeadlineMetrics,
    clock: C,
}

impl<C: Clock> Shared<C> {
    /// The context of the request with head `request`: its criticality and its deadline
    /// resolved, each counted, the head left saying them.
    fn resolve(&self, request: &mut Parts) -> RequestContext {
        let context = match self.resolve_criticality(request) {
            Some(criticality) => RequestContext::new().with_criticality(criticality),
            None => RequestContext::new(),
        };
        match self.resolve_deadline(request) {
            Some(deadline) => context.with_deadline(deadline),
            None => context,
        }
    }

    /// Resolves the criticality of the request with head `request`, counts how, and leaves
    /// the head saying what was resolved: the [`Criticality`] extension set and the header
    /// rewritten to it, or both removed when none was.
    fn resolve_criticality(&self, request: &mut Parts) -> Option<Criticality> {
        let (inbound, read) = self.config.read(request);
        self.metrics.count(inbound);
        let resolved = read.or(self.config.default_criticality());
        let header = self.config.header();
        if let Some(criticality) = resolved {
            if inbound != Inbound::Honoured {
                request.headers.insert(header, header_value(criticality));
            }
            request.extensions.insert(criticality);
        } else {
            request.headers.remove(header);
            request.extensions.remove::<Criticality>();
        }
        resolved
    }

    /// Resolves the deadline of the request with head `request` (reading the clock only when
    /// it has one), counts how, and leaves the head saying what was resolved: the
    /// [`Deadline`] extension set and the header rewritten to the timeout it was made from,
    /// or both removed when none was.
    fn resolve_deadline(&self, request: &mut Parts) -> Option<Deadline> {
        let (inbound, read) = self.config.read_timeout(request);
        self.deadlines.count(inbound);
        let header = self.config.deadline_header();
        let Some(timeout) = read.or(self.config.default_timeout()) else {
            request.headers.remove(header);
            request.extensions.remove::<Deadline>();
            return None;
        };
        if inbound != InboundDeadline::Honoured {
            // Always digits and a unit: a valid header value.
            match HeaderValue::try_from(grpc_timeout::format(timeout)) {
                Ok(value) => request.headers.insert(header, value),
                Err(_) => request.headers.remove(header),
            };
        }
        let deadline = Deadline::after(self.clock.now(), timeout);
        request.extensions.insert(deadline);
        Some(deadline)
    }
}

/// Makes an inbound request's criticality and deadline current for its whole handling.
///
/// The criticality is read from its header if the caller is trusted ([`Trust`]), capped, or
/// the configured default otherwise. The deadline is the time the caller still waits, read
/// from `grpc-timeout` (or the configured header) and capped at
/// [`max_timeout`](ServerContextConfig::with_max_timeout), or the default timeout, added to
/// the layer's clock's instant at the request's arrival; see "Deadlines" in
/// [`ServerContextConfig`] for why no trust applies to it.
///
/// The service it makes ([`ServerContext`]) resolves both, leaves the request saying them (a
/// [`Criticality`] and a [`Deadline`] extension, and the headers rewritten to what was
/// resolved, so that a proxy passing headers on cannot forward a value that was not
/// honoured), and installs them as the request's [`RequestContext`] around the inner `call`
/// and each poll of the response future: every layer inside (the limiter sheds by the
/// criticality and refuses what cannot finish in time) and the handler read them with
/// [`current_criticality`](rampart_core::current_criticality) and
/// [`current_deadline`](rampart_core::current_deadline), and a [`ClientContextLayer`] on the
/// handler's outgoing calls carries them on.
///
/// Place it outermost, where requests arrive from the network. A malformed value never fails
/// a request: it gets the default and is counted. The layer itself fails no request, even one
/// whose deadline has passed on arrival: the layers inside refuse it (the limiter, an
/// [`EnforceDeadlineLayer`](crate::deadline::EnforceDeadlineLayer)).
///
/// # Clocks
///
/// A deadline is an instant of the layer's clock, the [`SystemClock`] unless built with
/// [`new_with`](Self::new_with) or [`ServerContextConfig::build_with`]; every layer that reads
/// it (the limiter, a client-side layer, the enforcing layer) must read a clock of the same
/// origin. A request without a deadline (no header, no default timeout) reads no clock.
///
/// # Metrics
///
/// `rampart_criticality_inbound_total{name, outcome}` counts each request once by what its
/// criticality header said: `honoured` (a trusted value within the cap), `capped` (a trusted
/// value lowered to the cap), `absent` (no header), `untrusted` (a header from a caller not
/// trusted to set one) or `malformed` (a trusted header that is not one criticality).
///
/// `rampart_deadline_inbound_total{name, outcome}` counts each request once by what its
/// deadline header said: `honoured` (a timeout within the cap), `capped` (a timeout lowered
/// to the cap), `absent` (no header) or `malformed` (not one `grpc-timeout` value).
///
/// The handles register when the layer is built: install the recorder first.
///
/// # Sharing
///
/// The layer holds its configuration, metrics and clock in an `Arc`: every service it makes,
/// and their clones, share them.
///
/// [`ClientContextLayer`]: crate::http::ClientContextLayer
/// [`Trust`]: crate::http::Trust
pub struct ServerContextLayer<C = SystemClock> {
    shared: Arc<Shared<C>>,
}

impl ServerContextLayer {
    /// A layer reading requests as `config` says, its deadlines on the [`SystemClock`], its
    /// metrics registered now. The configuration is taken as it is:
    /// [`ServerContextConfig::build`] checks it first.
    pub fn new(config: ServerContextConfig) -> Self {
        Self::new_with(config, SystemClock::new())
    }
}

impl<C> ServerContextLayer<C> {
    /// A layer reading requests as `config` says, its deadlines on `clock`, its metrics
    /// registered now. The configuration is taken as it is:
    /// [`ServerContextConfig::build_with`] checks it first.
    pub fn new_with(config: ServerContextConfig, clock: C) -> Self {
        let metrics = InboundMetrics::new(config.name());
        let deadlines = DeadlineMetrics::new(config.name());
        Self {
            shared: Arc::new(Shared {
                config,
                metrics,
                deadlines,
                clock,
            }),
        }
    }

    /// The layer's configuration.
    pub fn config(&self) -> &ServerContextConfig {
        &self.shared.config
    }

    /// The clock the layer's deadlines are instants of.
    pub fn clock(&self) -> &C {
        &self.shared.clock
    }
}

impl<C> Clone for ServerContextLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for ServerContextLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerContextLayer")
            .field("config", &self.shared.config)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

impl<S, C> Layer<S> for ServerContextLayer<C> {
    type Service = ServerContext<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerContext {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`ServerContextLayer`]: each request handled with its resolved criticality
/// and deadline current.
pub struct ServerContext<S, C = SystemClock> {
    inner: S,
    shared: Arc<Shared<C>>,
}

impl<S> ServerContext<S> {
    /// `inner`, its requests read as `config` says (a layer of its own: build the layer once
    /// to share it between services).
    pub fn new(inner: S, config: ServerContextConfig) -> Self {
        ServerContextLayer::new(config).layer(inner)
    }
}

impl<S, C> ServerContext<S, C> {
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

impl<S: Clone, C> Clone for ServerContext<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for ServerContext<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerContext")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

impl<S, C, B> Service<Request<B>> for ServerContext<S, C>
where
    S: Service<Request<B>>,
    C: Clock,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut head, body) = request.into_parts();
        let context = self.shared.resolve(&mut head);
        let request = Request::from_parts(head, body);
        let future = {
            let _entered = context.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, context)
    }
}
