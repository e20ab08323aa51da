use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Service};

use crate::future::ResponseFuture;
use crate::metrics::RetryMetrics;
use crate::{Budget, Policy, Retrier, RetryPolicy};

/// What every service of a retry layer shares: the retry rules and budget, the metrics.
#[derive(Debug)]
pub(crate) struct Shared<B> {
    pub(crate) retrier: Retrier<B>,
    pub(crate) metrics: RetryMetrics,
}

/// A service that retries failed attempts at `S`, within a shared [`Budget`].
///
/// Each request deposits once into the budget. When an attempt fails (as the policy `P`
/// decides), the request is retried if attempts remain, a copy of it exists, and the budget
/// allows a withdrawal for the request's criticality (the current
/// [`RequestContext`](rampart_core::RequestContext)'s when `call` is made, for all its
/// attempts: see [`Budget::withdraw_for`]), after the backoff's wait (or the wait the policy
/// asks for). The last attempt's result is returned. Dropping the response future cancels the
/// attempts in flight and any retries to come.
///
/// Readiness is the inner service's; retries wait for it too. Errors come back as the inner
/// service's (boxed), or [`AttemptTimedOut`](crate::AttemptTimedOut).
#[derive(Debug)]
pub struct Retry<S, B, P = Policy> {
    inner: S,
    shared: Arc<Shared<B>>,
    policy: P,
}

impl<S: Clone, B, P: Clone> Clone for Retry<S, B, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            policy: self.policy.clone(),
        }
    }
}

impl<S, B, P> Retry<S, B, P> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<B>>, policy: P) -> Self {
        Self {
            inner,
            shared,
            policy,
        }
    }

    /// The budget this service shares with its clones.
    pub fn budget(&self) -> &B {
        self.shared.retrier.budget()
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

impl<S, B, P, Req> Service<Req> for Retry<S, B, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    B: Budget,
    P: RetryPolicy<Req, S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, B, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The request's criticality, read from the current context once, for all its attempts.
        let attempts = self.shared.retrier.start();
        self.shared.metrics.first(attempts.criticality().class());
        // A copy only if a retry can follow this first attempt.
        let copy = if self.shared.retrier.allows_another(&attempts) {
            self.policy.clone_request(&request)
        } else {
            None
        };
        // Call the instance that `poll_ready` made ready; keep it for the retries and leave
        // a fresh clone here for the next request (tower's `Retry` does the same).
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let first = ready.call(request);
        ResponseFuture::new(
            first,
            ready,
            attempts,
            copy,
            self.policy.clone(),
            Arc::clone(&self.shared),
        )
    }
}
