//! [`ClientContextLayer`]: an outgoing request's criticality, its own or the current
//! request's, written in its header.

use std::task::{Context, Poll};

use http::{HeaderName, Request};
use rampart_core::{Criticality, RequestContext};
use tower::{Layer, Service};

use super::future::ResponseFuture;
use super::{CRITICALITY_HEADER, header_value};

/// Carries a criticality on outgoing requests: the request's own [`Criticality`] extension,
/// or else the current request context's (the inbound request being handled, as a
/// [`ServerContextLayer`] installed it), written in the header (replacing any value there).
///
/// The service it makes ([`ClientContext`]) also makes that criticality current around the
/// inner `call` and each poll of the response future, so that a breaker or a retry placed
/// inside it sees the outgoing request's criticality. A request with neither an extension nor
/// a current criticality passes untouched, with no header.
///
/// ```
/// use http::Request;
/// use rampart::core::Criticality;
/// use rampart::http::{CRITICALITY_HEADER, ClientContextLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// // The transport, here a function that returns the header it would send.
/// let client = ServiceBuilder::new()
///     .layer(ClientContextLayer::new())
///     .service(service_fn(|request: Request<()>| async move {
///         Ok::<_, tower::BoxError>(request.headers().get(CRITICALITY_HEADER).cloned())
///     }));
///
/// let mut prefetch = Request::new(());
/// prefetch.extensions_mut().insert(Criticality::SHEDDABLE);
/// let sent = client.clone().oneshot(prefetch).await?;
/// assert_eq!(sent.unwrap(), "sheddable");
///
/// // No criticality of its own and none current: no header.
/// assert_eq!(client.oneshot(Request::new(())).await?, None);
/// # Ok(())
/// # }
/// ```
///
/// [`ServerContextLayer`]: crate::http::ServerContextLayer
#[derive(Debug, Clone)]
pub struct ClientContextLayer {
    header: HeaderName,
}

impl Default for ClientContextLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientContextLayer {
    /// A layer writing [`CRITICALITY_HEADER`](crate::http::CRITICALITY_HEADER).
    pub fn new() -> Self {
        Self {
            header: CRITICALITY_HEADER,
        }
    }

    /// Writes the criticality in `header` instead (gRPC metadata travels as headers, so this
    /// names a metadata key too).
    #[must_use]
    pub fn with_header(self, header: HeaderName) -> Self {
        Self { header }
    }

    /// The header the criticality is written in.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
}

impl<S> Layer<S> for ClientContextLayer {
    type Service = ClientContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientContext {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service of [`ClientContextLayer`]: each outgoing request carrying its criticality.
#[derive(Debug, Clone)]
pub struct ClientContext<S> {
    inner: S,
    header: HeaderName,
}

impl<S> ClientContext<S> {
    /// `inner`, its requests stamped with [`CRITICALITY_HEADER`](crate::http::CRITICALITY_HEADER).
    pub fn new(inner: S) -> Self {
        ClientContextLayer::new().layer(inner)
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

impl<S, B> Service<Request<B>> for ClientContext<S>
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

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let scope = RequestContext::current();
        let context = match request.extensions().get::<Criticality>() {
            Some(&own) => RequestContext::new().with_criticality(own).or(scope),
            None => scope,
        };
        if let Some(criticality) = context.criticality() {
            request
                .headers_mut()
                .insert(&self.header, header_value(criticality));
        }
        let future = {
            let _entered = context.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, context)
    }
}
