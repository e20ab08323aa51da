//! [`EnforceDeadline`]: the service, reading the current deadline at each `call`.

use std::task::{Context, Poll};

use rampart_core::{Clock, SystemClock, current_deadline};
use tower::{BoxError, Service};

use super::future::ResponseFuture;

/// The service of [`EnforceDeadlineLayer`](super::EnforceDeadlineLayer): each request's
/// future ended at the deadline current when it was called.
#[derive(Debug, Clone)]
pub struct EnforceDeadline<S, C = SystemClock> {
    inner: S,
    clock: C,
}

impl<S> EnforceDeadline<S> {
    /// `inner`, its requests' deadlines read on the [`SystemClock`].
    pub fn new(inner: S) -> Self {
        Self::new_with(inner, SystemClock::new())
    }
}

impl<S, C> EnforceDeadline<S, C> {
    /// `inner`, its requests' deadlines read on `clock`.
    pub const fn new_with(inner: S, clock: C) -> Self {
        Self { inner, clock }
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

impl<S, C, Request> Service<Request> for EnforceDeadline<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(deadline) = current_deadline() else {
            return ResponseFuture::unbounded(self.inner.call(request));
        };
        let now = self.clock.now();
        if deadline.is_expired(now) {
            return ResponseFuture::expired();
        }
        ResponseFuture::bounded(self.inner.call(request), deadline.remaining(now))
    }
}
