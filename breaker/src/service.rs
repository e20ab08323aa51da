//! [`Breaker`]: the service that asks the breaker before each call.

use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_core::{
    Classify, Clock, Completion, ConfigError, DefaultClassifier, RequestContext, StripedArc,
    SystemClock,
};
use tower::{BoxError, Service};

use crate::future::{Admitted, Holder, ResponseFuture};
use crate::{BreakerConfig, BreakerLayer, SreBreaker};

/// A service that throttles calls to `S` with an [`SreBreaker`].
///
/// Each call first asks the breaker: a rejected call resolves at once to
/// [`Rejected`](crate::Rejected) (boxed) without calling `S`; an admitted one is called, and
/// its outcome, as the classifier `L` judges it, is recorded when its response completes. A
/// response future dropped before completing counts as the config's `on_cancel` (by default not
/// at all); one whose inner service panicked (in `call` or in a poll of its future) counts as a
/// failure, whether or not a caller caught the panic.
///
/// Readiness is the inner service's: the breaker decides in `call`, never in `poll_ready`, so
/// a throttled client is never "not ready". Inner errors pass through untouched.
///
/// A call's criticality is the [`RequestContext`]'s current in `call`: the breaker rejects the
/// least critical calls first (see [`SreBreaker`]), and a rejection carries the criticality the
/// context said.
///
/// Build it with [`BreakerLayer`] or [`Breaker::new`].
#[derive(Debug)]
pub struct Breaker<S, C = SystemClock, L = DefaultClassifier> {
    inner: S,
    /// Cloned with each service and each admitted call: counted per stripe of threads.
    shared: StripedArc<Arc<SreBreaker<C>>>,
    classifier: L,
}

impl<S: Clone, C, L: Clone> Clone for Breaker<S, C, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S> Breaker<S> {
    /// Wraps `inner` with a new breaker built from `config`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    pub fn new(inner: S, config: BreakerConfig) -> Result<Self, ConfigError> {
        BreakerLayer::new(config).map(|layer| tower::Layer::layer(&layer, inner))
    }

    /// A [`BreakerLayer`] built from `config`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    pub fn layer(config: BreakerConfig) -> Result<BreakerLayer, ConfigError> {
        BreakerLayer::new(config)
    }
}

impl<S, C, L> Breaker<S, C, L> {
    pub(crate) fn from_parts(
        inner: S,
        breaker: StripedArc<Arc<SreBreaker<C>>>,
        classifier: L,
    ) -> Self {
        Self {
            inner,
            shared: breaker,
            classifier,
        }
    }

    /// The breaker this service shares with its clones.
    pub fn breaker(&self) -> &Arc<SreBreaker<C>> {
        &self.shared
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

impl<S, C, L, Req> Service<Req> for Breaker<S, C, L>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
    L: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let now = self.shared.now();
        let said = RequestContext::current().criticality();
        if let Err(rejected) = self.shared.admit_at(now, said, None) {
            return ResponseFuture::rejected(rejected);
        }
        // Armed before the inner call: if `call` itself panics, the guard records a failure.
        let admitted = Admitted(
            Holder::Striped(self.shared.clone()),
            said.unwrap_or_default(),
        );
        let completion = Completion::new(admitted, self.classifier.clone());
        ResponseFuture::admitted(self.inner.call(request), completion)
    }
}
