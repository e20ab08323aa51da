//! [`ServerContextLayer`]: an inbound request's criticality, read from its header as its
//! caller is trusted, and current for the whole handling of the request.

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderName, Request};
use rampart_core::{Criticality, RequestContext};
use tower::{Layer, Service};

use super::future::ResponseFuture;
use super::metrics::{Inbound, InboundMetrics};
use super::trust::Trust;
use super::{CRITICALITY_HEADER, header_value};

/// How a [`ServerContextLayer`] reads an inbound request's criticality.
///
/// | setting | default |
/// | --- | --- |
/// | [`with_header`](Self::with_header) | [`CRITICALITY_HEADER`] (`rampart-criticality`) |
/// | [`with_trust`](Self::with_trust) | [`Trust::None`]: no caller's value is honoured |
/// | [`with_max`](Self::with_max) | none: an honoured value is taken as it is |
/// | [`with_default`](Self::with_default) | none: the layers inside use theirs ([`Criticality::CRITICAL`]) |
/// | [`with_name`](Self::with_name) | `"default"` |
///
/// [`CRITICALITY_HEADER`]: crate::http::CRITICALITY_HEADER
#[derive(Debug, Clone)]
pub struct ServerContextConfig {
    header: HeaderName,
    trust: Trust,
    max: Option<Criticality>,
    default: Option<Criticality>,
    name: Cow<'static, str>,
}

impl Default for ServerContextConfig {
    fn default() -> Self {
        Self {
            header: CRITICALITY_HEADER,
            trust: Trust::None,
            max: None,
            default: None,
            name: Cow::Borrowed("default"),
        }
    }
}

impl ServerContextConfig {
    /// Reads the criticality from `header` (gRPC metadata travels as headers, so this names a
    /// metadata key too).
    #[must_use]
    pub fn with_header(self, header: HeaderName) -> Self {
        Self { header, ..self }
    }

    /// Honours the header of the requests `trust` accepts; the others get the default.
    #[must_use]
    pub fn with_trust(self, trust: Trust) -> Self {
        Self { trust, ..self }
    }

    /// Lowers an honoured value above `max` to `max`: callers may lower their requests'
    /// importance freely, but raise it only so far. The default is not capped: it is the
    /// service's own choice.
    #[must_use]
    pub fn with_max(self, max: Criticality) -> Self {
        Self {
            max: Some(max),
            ..self
        }
    }

    /// The criticality of a request whose header is absent, untrusted or malformed. Without
    /// one, such a request carries none, and each layer inside uses its own default
    /// ([`Criticality::CRITICAL`]).
    #[must_use]
    pub fn with_default(self, default: Criticality) -> Self {
        Self {
            default: Some(default),
            ..self
        }
    }

    /// The `name` label of the layer's metrics.
    #[must_use]
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// The header the criticality is read from.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Which callers' values are honoured.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The highest criticality a caller can set, if capped.
    pub fn max(&self) -> Option<Criticality> {
        self.max
    }

    /// The criticality of a request that sets none the layer honours, if configured.
    pub fn default_criticality(&self) -> Option<Criticality> {
        self.default
    }

    /// The `name` label of the layer's metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the head of an inbound request says, as this configuration reads it: how it
    /// counts, and the value it sets, if any (before the default).
    fn read(&self, request: &Parts) -> (Inbound, Option<Criticality>) {
        let mut values = request.headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return (Inbound::Absent, None);
        };
        if !self.trust.trusts(request) {
            return (Inbound::Untrusted, None);
        }
        if values.next().is_some() {
            return (Inbound::Malformed, None);
        }
        let Some(criticality) = value.to_str().ok().and_then(|text| text.parse().ok()) else {
            return (Inbound::Malformed, None);
        };
        match self.max {
            Some(max) if criticality > max => (Inbound::Capped, Some(max)),
            _ => (Inbound::Honoured, Some(criticality)),
        }
    }
}

/// The configuration and the metrics every service of one layer shares.
#[derive(Debug)]
struct Shared {
    config: ServerContextConfig,
    metrics: InboundMetrics,
}

impl Shared {
    /// Resolves the criticality of the request with head `request`, counts how, and leaves
    /// the head saying what was resolved: the [`Criticality`] extension set and the header
    /// rewritten to it, or both removed when none was.
    fn resolve(&self, request: &mut Parts) -> Option<Criticality> {
        let (inbound, read) = self.config.read(request);
        self.metrics.count(inbound);
        let resolved = read.or(self.config.default);
        let header = &self.config.header;
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
}

/// Makes an inbound request's criticality current for its whole handling: read from its
/// header if its caller is trusted ([`Trust`]), capped, or the configured default otherwise.
///
/// The service it makes ([`ServerContext`]) resolves each request's criticality, leaves the
/// request saying it (a [`Criticality`] extension, and the header rewritten to it, so that
/// a proxy passing headers on cannot forward a value that was not honoured), and installs it
/// as the request's [`RequestContext`] around the inner `call` and each poll of the response
/// future: every layer inside (the limiter sheds by it) and the handler read it with
/// [`current_criticality`](rampart_core::current_criticality), and a [`ClientContextLayer`]
/// on the handler's outgoing calls carries it on.
///
/// Place it outermost, where requests arrive from the network. A malformed value (not one
/// criticality, not UTF-8, several values) never fails a request: it gets the default and is
/// counted.
///
/// # Metrics
///
/// `rampart_criticality_inbound_total{name, outcome}` counts each request once by what its
/// header said: `honoured` (a trusted value within the cap), `capped` (a trusted value
/// lowered to the cap), `absent` (no header), `untrusted` (a header from a caller not trusted
/// to set one) or `malformed` (a trusted header that is not one criticality). The handles
/// register when the layer is built: install the recorder first.
///
/// # Sharing
///
/// The layer holds its configuration and metrics in an `Arc`: every service it makes, and
/// their clones, share them.
///
/// [`ClientContextLayer`]: crate::http::ClientContextLayer
#[derive(Debug, Clone)]
pub struct ServerContextLayer {
    shared: Arc<Shared>,
}

impl ServerContextLayer {
    /// A layer reading requests as `config` says, its metrics registered now.
    pub fn new(config: ServerContextConfig) -> Self {
        let metrics = InboundMetrics::new(config.name());
        Self {
            shared: Arc::new(Shared { config, metrics }),
        }
    }

    /// The layer's configuration.
    pub fn config(&self) -> &ServerContextConfig {
        &self.shared.config
    }
}

impl<S> Layer<S> for ServerContextLayer {
    type Service = ServerContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerContext {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`ServerContextLayer`]: each request handled with its resolved criticality
/// current.
#[derive(Debug, Clone)]
pub struct ServerContext<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ServerContext<S> {
    /// `inner`, its requests read as `config` says (a layer of its own: build the layer once
    /// to share it between services).
    pub fn new(inner: S, config: ServerContextConfig) -> Self {
        ServerContextLayer::new(config).layer(inner)
    }

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

impl<S, B> Service<Request<B>> for ServerContext<S>
where
    S: Service<Request<B>>,
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
        let context = match self.shared.resolve(&mut head) {
            Some(criticality) => RequestContext::new().with_criticality(criticality),
            None => RequestContext::new(),
        };
        let request = Request::from_parts(head, body);
        let future = {
            let _entered = context.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, context)
    }
}
