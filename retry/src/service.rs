use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use rampart_core::{Clock, RequestContext, StripedArc};
use tower::{BoxError, Service};

use crate::future::ResponseFuture;
use crate::metrics::RetryMetrics;
use crate::{Budget, Policy, Retrier, RetryPolicy};

/// What every service of a retry layer shares: the retry rules and budget, the metrics, and
/// the clock that requests' deadlines are instants of (read only for requests with one).
///
/// Held in an `Arc` by the layer, and by each service it builds (in its [`Wrapped`]): cloned
/// only when a service is built, never per request.
pub(crate) struct Shared<B> {
    pub(crate) retrier: Retrier<B>,
    pub(crate) metrics: RetryMetrics,
    pub(crate) clock: Box<dyn Clock>,
}

impl<B: fmt::Debug> fmt::Debug for Shared<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("retrier", &self.retrier)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// What every clone of one service of a retry layer shares: the layer's state, and the
/// service the layer wrapped, which a request's first retry clones for the attempts after its
/// first. A request that is never retried clones no service: the first attempt goes to the
/// calling handle's own instance.
///
/// Held in a [`StripedArc`]: each request's response future takes a reference, and a
/// reference taken on one core writes no count that one on another core writes.
pub(crate) struct Wrapped<S, B> {
    pub(crate) layer: Arc<Shared<B>>,
    /// Locked only to clone it (once per retried request), so that a service that is `Send`
    /// but not `Sync` keeps the retry service `Send`.
    service: Mutex<S>,
}

impl<S: Clone, B> Wrapped<S, B> {
    /// A new instance of the wrapped service, for a request's retries.
    pub(crate) fn instance(&self) -> S {
        self.service.lock().clone()
    }
}

impl<S, B: fmt::Debug> fmt::Debug for Wrapped<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wrapped")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

/// A service that retries failed attempts at `S`, within a shared [`Budget`].
///
/// Each request deposits once into the budget: not when a layer outside sharing the budget (a
/// [`Hedge`](crate::Hedge) given the same `Arc`) has deposited for it already, as the
/// request's [`RequestContext::charged`](rampart_core::RequestContext::charged) says. Each
/// attempt is called with the request marked charged to the budget, so that a hedge layer
/// inside sharing it does not deposit again. When an attempt fails (as the policy `P`
/// decides), the request is retried if attempts remain, a copy of it exists, and the budget
/// allows a withdrawal for the request's criticality (the current
/// [`RequestContext`](rampart_core::RequestContext)'s when `call` is made, for all its
/// attempts: see [`Budget::withdraw_for`]), after the backoff's wait (or the wait the policy
/// asks for). The last attempt's result is returned. Dropping the response future cancels the
/// attempts in flight and any retries to come.
///
/// A request whose context carries a deadline gets no attempt that cannot finish before it
/// (see the crate docs' "Deadlines"): none at all if it has passed when `call` is made, no
/// retry with less than the predicted latency left, and each attempt cut at the deadline.
///
/// The first attempt goes to this service's instance of `S`, made ready by `poll_ready`.
/// Retries go to an instance of the request's own: a clone of the service the layer wrapped
/// (shared by this service's clones), made at the request's first retry, so that a request
/// answered at once clones no service (tower's `Retry` clones its inner service at every
/// call).
///
/// Readiness is the inner service's; retries wait for their instance's. Errors come back as
/// the inner service's (boxed), [`AttemptTimedOut`](crate::AttemptTimedOut), or
/// [`DeadlineExceeded`](rampart_core::DeadlineExceeded).
pub struct Retry<S, B, P = Policy> {
    inner: S,
    shared: StripedArc<Wrapped<S, B>>,
    policy: P,
}

impl<S: fmt::Debug, B: fmt::Debug, P: fmt::Debug> fmt::Debug for Retry<S, B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("shared", &self.shared.layer)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S: Clone, B, P: Clone> Clone for Retry<S, B, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S: Clone, B, P> Retry<S, B, P> {
    pub(crate) fn from_parts(inner: S, layer: Arc<Shared<B>>, policy: P) -> Self {
        let service = Mutex::new(inner.clone());
        Self {
            inner,
            shared: StripedArc::new(Wrapped { layer, service }),
            policy,
        }
    }
}

impl<S, B, P> Retry<S, B, P> {
    /// The budget this service shares with its clones.
    pub fn budget(&self) -> &B {
        self.shared.layer.retrier.budget()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably: this handle's instance, which its first attempts go to
    /// (retries go to clones of the service the layer wrapped).
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
        // The request's criticality and deadline, read from the current context once, for all
        // its attempts; the clock only for a request with a deadline.
        let context = RequestContext::current();
        let criticality = context.criticality().unwrap_or_default();
        let layer = &*self.shared.layer;
        let budget = layer.retrier.budget().id();
        let now = match context.deadline() {
            None => None,
            Some(deadline) => {
                let now = layer.clock.now();
                if deadline.is_expired(now) {
                    // No time at all: no attempt, no deposit; the service stays ready.
                    layer.metrics.first_skipped(criticality.class());
                    return ResponseFuture::expired(self.policy.clone(), self.shared.clone());
                }
                Some(now)
            }
        };
        let attempts = layer
            .retrier
            .start_charging(criticality, !context.is_charged_to(budget))
            .with_deadline(context.deadline());
        layer.metrics.first(criticality.class());
        // A copy only if a retry can follow this first attempt.
        let copy = if layer.retrier.allows_another(&attempts) {
            self.policy.clone_request(&request)
        } else {
            None
        };
        // The instance that `poll_ready` made ready; the retries get one of their own.
        let first = {
            // The first attempt: none before it; the request charged to this layer's budget.
            let _attempt = context.with_attempt(0).with_charged(budget).enter();
            self.inner.call(request)
        };
        ResponseFuture::new(
            first,
            attempts,
            now,
            copy,
            self.policy.clone(),
            self.shared.clone(),
        )
    }
}
