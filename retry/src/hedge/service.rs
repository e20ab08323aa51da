use std::fmt;
use std::task::{Context, Poll};

use rampart_core::{Clock, RequestContext, StripedArc, pick_hint};
use tower::{BoxError, Service};

use super::future::HedgeFuture;
use super::metrics::HedgeMetrics;
use super::{AnyRequest, Hedger, MayHedge};
use crate::{Budget, Policy, RetryPolicy};

/// What every service of a hedge layer shares: the hedging rules, window and budget, the
/// metrics, and the clock latencies and deadlines are read on.
pub(crate) struct Shared<B> {
    pub(crate) hedger: Hedger<B>,
    pub(crate) metrics: HedgeMetrics,
    pub(crate) clock: Box<dyn Clock>,
}

impl<B: fmt::Debug> fmt::Debug for Shared<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("hedger", &self.hedger)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// A service that sends a slow request to `S` again, within a shared [`Budget`], and
/// answers with the first copy to answer.
///
/// Each request deposits once into the budget: not when a layer outside sharing the budget (a
/// [`Retry`](crate::Retry) given the same `Arc`) has deposited for it already, as the
/// request's [`RequestContext::charged`] says. Every copy is called with the request marked
/// charged to the budget, so that a retry layer inside sharing it deposits for none of them
/// (a layer inside with a budget of its own deposits into it for each copy it sees). If no
/// answer has come after the hedge delay (the configured quantile of recent latencies), and
/// the request may be hedged (the filter `F`, and a copy from the policy `P`), one more copy
/// is sent, if the request's deadline leaves the predicted latency and the budget grants a
/// withdrawal for the request's criticality; up to
/// [`max_hedges`](crate::HedgeConfig::max_hedges) copies, a delay apart. The first answer
/// wins and the other copies are dropped. A failure is returned only when no other copy is
/// under way. Dropping the response future drops every copy.
///
/// Readiness is the inner service's; a hedge waits for it too. Errors come back as the inner
/// service's, boxed.
#[derive(Debug)]
pub struct Hedge<S, B, P = Policy, F = AnyRequest> {
    inner: S,
    shared: StripedArc<Shared<B>>,
    policy: P,
    filter: F,
}

impl<S: Clone, B, P: Clone, F: Clone> Clone for Hedge<S, B, P, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            filter: self.filter.clone(),
        }
    }
}

impl<S, B, P, F> Hedge<S, B, P, F> {
    pub(crate) fn from_parts(
        inner: S,
        shared: StripedArc<Shared<B>>,
        policy: P,
        filter: F,
    ) -> Self {
        Self {
            inner,
            shared,
            policy,
            filter,
        }
    }

    /// The budget this service shares with its clones (and with retry layers given it).
    pub fn budget(&self) -> &B {
        self.shared.hedger.budget()
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

impl<S, B, P, F, Req> Service<Req> for Hedge<S, B, P, F>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    B: Budget,
    P: RetryPolicy<Req, S::Response> + Clone,
    F: MayHedge<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = HedgeFuture<S, Req, B, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let shared = &*self.shared;
        let context = RequestContext::current();
        let now = shared.clock.now();
        // Deposit unless a layer outside sharing the budget did; every copy goes marked
        // charged to it, so that layers inside sharing it do not deposit again.
        let budget = shared.hedger.budget().id();
        let deposited = !context.is_charged_to(budget);
        if deposited {
            shared.hedger.deposit();
        }
        let context = context.with_charged(budget);
        let (delay, computed) = shared.hedger.delay_reporting_at(now);
        if computed {
            shared.metrics.delay(delay);
        }
        // The window times only the requests the filter allows: those the delay is for.
        let allowed = self.filter.may_hedge(&request);
        let plan = super::future::Plan {
            context,
            started: now,
            deposited,
            observed: allowed,
        };
        let copy = match delay {
            Some(_) if allowed => self.policy.clone_request(&request),
            _ => None,
        };
        // The copies go marked charged to the budget: in the context made current here if
        // this layer deposited (else the current context says so already).
        let _charged = deposited.then(|| context.enter());
        let (Some(delay), Some(copy)) = (delay, copy) else {
            // A cold window, or a request that may not be hedged (counted if it proves slow).
            let first = self.inner.call(request);
            return HedgeFuture::single(
                first,
                plan,
                delay,
                self.policy.clone(),
                self.shared.clone(),
            );
        };
        // Call the instance `poll_ready` made ready; keep it for the hedges and leave a fresh
        // clone here for the next request.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let (first, picked) = pick_hint::call_avoiding(&[], || ready.call(request));
        HedgeFuture::hedging(
            first,
            picked,
            plan,
            delay,
            ready,
            copy,
            self.policy.clone(),
            self.shared.clone(),
        )
    }
}
