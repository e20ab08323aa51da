use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_core::{Clock, ConfigError, RequestContext, SystemClock};
use tower::{BoxError, Service};

use crate::cpu::CpuUsage;
use crate::future::ResponseFuture;
use crate::{BbrConfig, BbrLimitLayer, BbrLimiter, SystemCpu};

/// A service that sheds requests to `S` while the server is overloaded, with a [`BbrLimiter`].
///
/// A shed request resolves at once to [`Overloaded`](crate::Overloaded) (boxed) without
/// calling `S`; so does a request whose current [`Deadline`](rampart_core::Deadline) has
/// passed ([`DeadlineExceeded`](rampart_core::DeadlineExceeded)) or would pass before it
/// could finish ([`WouldMissDeadline`](crate::WouldMissDeadline)). An admitted one holds a permit until its response completes, fails, panics or
/// is dropped: the response time and the in-flight count are recorded exactly once, whatever
/// happens. Readiness is the inner service's; inner errors pass through untouched.
#[derive(Debug)]
pub struct BbrLimit<S, C = SystemClock, U = SystemCpu> {
    inner: S,
    limiter: Arc<BbrLimiter<C, U>>,
}

impl<S: Clone, C, U> Clone for BbrLimit<S, C, U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<S> BbrLimit<S> {
    /// Wraps `inner` with a new limiter built from `config`.
    ///
    /// # Errors
    ///
    /// As [`BbrConfig::build`].
    pub fn new(inner: S, config: BbrConfig) -> Result<Self, ConfigError> {
        BbrLimitLayer::new(config).map(|layer| tower::Layer::layer(&layer, inner))
    }

    /// A [`BbrLimitLayer`] built from `config`.
    ///
    /// # Errors
    ///
    /// As [`BbrConfig::build`].
    pub fn layer(config: BbrConfig) -> Result<BbrLimitLayer, ConfigError> {
        BbrLimitLayer::new(config)
    }
}

impl<S, C, U> BbrLimit<S, C, U> {
    pub(crate) fn from_limiter(inner: S, limiter: Arc<BbrLimiter<C, U>>) -> Self {
        Self { inner, limiter }
    }

    /// The limiter this service shares with its clones.
    pub fn limiter(&self) -> &Arc<BbrLimiter<C, U>> {
        &self.limiter
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

impl<S, C, U, Req> Service<Req> for BbrLimit<S, C, U>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Clock,
    U: CpuUsage,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, U>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let limiter = &*self.limiter;
        let arrival = limiter.arrival();
        let context = RequestContext::current();
        if let Some(deadline) = context.deadline()
            && let Err(refusal) = limiter.check_deadline_as(
                (arrival.precise(limiter.clock()), arrival.at),
                deadline,
                context.criticality(),
            )
        {
            return ResponseFuture::refused(refusal.into_boxed());
        }
        match limiter.acquire_as(arrival, context.criticality()) {
            // The permit exists before the inner call: if `call` panics, it is released.
            Ok(permit) => ResponseFuture::admitted(self.inner.call(request), permit),
            Err(shed) => ResponseFuture::refused(shed),
        }
    }
}
