use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_core::ConfigError;
use tower::{BoxError, Service};

use crate::future::Next;
use crate::handle::{Fate, Shared};
use crate::{FaultConfig, FaultHandle, FaultLayer, ResponseFuture};

/// A service that injects faults in front of `S`: see [`FaultConfig`] for what it does to
/// each request, and [`FaultLayer`] to build one.
///
/// Readiness is the inner service's. Errors of the inner service pass through untouched (as
/// `BoxError`); injected ones are [`InjectedError`](crate::InjectedError).
///
/// The added latency runs before the inner future is first polled: a lazy inner future (most
/// clients) has not sent its request yet, so this is latency on the way in. Delays wait on
/// tokio's timer, which fires on whole milliseconds: a 1.3 ms delay ends after 2 ms.
#[derive(Debug, Clone)]
pub struct Fault<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Fault<S> {
    /// Wraps `inner` with the faults of `config`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`FaultConfig::validate`]).
    pub fn new(inner: S, config: FaultConfig) -> Result<Self, ConfigError> {
        FaultLayer::new(config).map(|layer| tower::Layer::layer(&layer, inner))
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// A handle that changes and observes this service's faults.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle::new(Arc::clone(&self.shared))
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for Fault<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let (delay, fate) = self.shared.decide();
        let next = match fate {
            Fate::Proceed => Next::Proceed(self.inner.call(request)),
            Fate::Fail => Next::Fail,
            Fate::Hang => Next::Hang,
            Fate::Panic => Next::Panic,
        };
        ResponseFuture::after(delay, next)
    }
}
