use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use rampart_core::pick_hint::{self, EndpointId, MAX_AVOIDED};
use rampart_core::{Outcome, RequestContext, StripedArc};
use tokio::time::Sleep;
use tower::{BoxError, Service};

use super::HedgeRefusal;
use super::service::Shared;
use crate::{Budget, Decision, RetryPolicy};

/// The response future of [`Hedge`](crate::Hedge): the copies of one request.
///
/// It polls every copy under way; the first answer wins (a failure only when no other copy is
/// under way) and the others are dropped. While a hedge may follow, a timer runs the hedge
/// delay, armed at the first poll that finds no answer: a request answered at once registers
/// no timer.
///
/// A copy that fails with a server's pushback (the policy's [`Decision::RetryAfter`] or
/// [`Decision::DontRetry`]) ends the request's hedging: no further copy is sent, and the
/// copies under way go on; a "retry after" also holds the layer's hedges for its wait
/// ([`Hedger::pushback_at`](crate::Hedger::pushback_at)), as gRPC's hedging stops on
/// pushback.
///
/// # Cancellation
///
/// Dropping it drops every copy under way and cancels the hedges to come.
///
/// # Panics
///
/// The hedge delay is a tokio timer (`tokio::time::sleep`): polled outside a tokio runtime
/// with its time driver enabled, a request that may be hedged and is not answered at its
/// first poll panics, as any tokio timer does. A request answered at its first poll, or that
/// may not be hedged (a cold window, the filter or the policy), needs no runtime. A panic of
/// a copy (its future or the inner service's `call`) comes through; the budget's withdrawal
/// for a hedge whose `call` panicked is counted as sent.
#[pin_project(project = Copies)]
pub struct HedgeFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    /// The first copy, until it answers or loses.
    #[pin]
    first: Option<S::Future>,
    /// The endpoint the first copy went to, if a balancer below said.
    first_pick: Option<EndpointId>,
    /// The hedges under way.
    hedges: Vec<Sent<S::Future>>,
    /// The hedge delay's timer, while it runs.
    #[pin]
    timer: Option<Sleep>,
    /// What the next hedge needs, while one may follow.
    next: Option<Next<S, Req>>,
    plan: Plan,
    /// For a request slower than the delay that may not be hedged: the delay, to count it.
    unhedged_after: Option<Duration>,
    policy: P,
    shared: StripedArc<Shared<B>>,
}

/// What a request's copies share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// The request's context when the layer was called, current again around each hedge.
    pub(crate) context: RequestContext,
    /// When the first copy was sent.
    pub(crate) started: Duration,
    /// Whether this layer deposited for the request (no retry layer outside did).
    pub(crate) deposited: bool,
    /// Whether the request's latency counts in the window: the filter allows it.
    pub(crate) observed: bool,
}

/// A hedge under way.
struct Sent<F> {
    future: Pin<Box<F>>,
    started: Duration,
    pick: Option<EndpointId>,
}

/// What the next hedge needs.
struct Next<S, Req> {
    /// The service instance hedges are called on.
    service: S,
    /// The request, to copy for each hedge.
    template: Req,
    delay: Duration,
    /// When the last copy was sent: the next is due a delay later.
    last_sent: Duration,
    /// Hedges still allowed.
    left: u32,
    /// The delay is over: waiting for the service to be ready.
    due: bool,
}

impl<S, Req, B, P> HedgeFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    /// A request that will not be hedged: the window is cold (`unhedged_after` is `None`), or
    /// the request may not be hedged after `unhedged_after` (the delay when it was called).
    pub(crate) fn single(
        first: S::Future,
        plan: Plan,
        unhedged_after: Option<Duration>,
        policy: P,
        shared: StripedArc<Shared<B>>,
    ) -> Self {
        Self {
            first: Some(first),
            first_pick: None,
            hedges: Vec::new(),
            timer: None,
            next: None,
            plan,
            unhedged_after,
            policy,
            shared,
        }
    }

    /// A request that may be hedged after `delay`, on `service`, with copies of `template`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hedging(
        first: S::Future,
        first_pick: Option<EndpointId>,
        plan: Plan,
        delay: Duration,
        service: S,
        template: Req,
        policy: P,
        shared: StripedArc<Shared<B>>,
    ) -> Self {
        let left = shared.hedger.config().max_hedges;
        Self {
            first: Some(first),
            first_pick,
            hedges: Vec::new(),
            timer: None,
            next: Some(Next {
                service,
                template,
                delay,
                last_sent: plan.started,
                left,
                due: false,
            }),
            plan,
            unhedged_after: None,
            policy,
            shared,
        }
    }
}

/// What the hedging step did.
enum Step {
    /// A hedge went out: poll it.
    Sent,
    /// Nothing to do until woken.
    Pending,
}

impl<S, Req, B, P> Future for HedgeFuture<S, Req, B, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    B: Budget,
    P: RetryPolicy<Req, S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(first) = this.first.as_mut().as_pin_mut()
                && let Poll::Ready(result) = first.poll(cx)
            {
                this.first.set(None);
                let started = this.plan.started;
                if let Some(output) = this.finish(result.map_err(Into::into), started, false) {
                    return Poll::Ready(output);
                }
            }
            let mut index = 0;
            while let Some(hedge) = this.hedges.get_mut(index) {
                let Poll::Ready(result) = hedge.future.as_mut().poll(cx) else {
                    index += 1;
                    continue;
                };
                let hedge = this.hedges.swap_remove(index);
                if let Some(output) = this.finish(result.map_err(Into::into), hedge.started, true) {
                    return Poll::Ready(output);
                }
            }
            match this.hedge(cx) {
                Step::Sent => {}
                Step::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S, Req, B, P> Copies<'_, S, Req, B, P>
where
    S: Service<Req>,
    B: Budget,
    P: RetryPolicy<Req, S::Response>,
{
    /// A copy sent at `started` answered with `result`: the request's output if it wins, or
    /// `None` if it is a failure while another copy is under way (it is dropped).
    fn finish(
        &mut self,
        result: Result<S::Response, BoxError>,
        started: Duration,
        is_hedge: bool,
    ) -> Option<Result<S::Response, BoxError>> {
        let outcome = self.policy.classify(result.as_ref());
        if outcome == Outcome::Failure {
            self.read_pushback(result.as_ref());
            if self.first.is_some() || !self.hedges.is_empty() {
                return None;
            }
        }
        let shared = &**self.shared;
        let now = shared.clock.now();
        if outcome != Outcome::Failure && self.plan.observed {
            shared.hedger.observe_at(now, now.saturating_sub(started));
            if is_hedge && self.first.is_some() {
                // The first copy is slower than this: at least this long.
                shared
                    .hedger
                    .observe_at(now, now.saturating_sub(self.plan.started));
            }
        }
        if self.plan.deposited {
            shared.hedger.record(outcome);
        }
        let class = self.plan.context.criticality().unwrap_or_default().class();
        if is_hedge && outcome != Outcome::Failure {
            shared.metrics.won(class);
        }
        if let Some(delay) = self.unhedged_after.take()
            && now.saturating_sub(self.plan.started) >= delay
        {
            shared.metrics.refused(HedgeRefusal::Policy, class);
        }
        // The losers are dropped: cancelled.
        self.first.set(None);
        self.hedges.clear();
        self.timer.set(None);
        *self.next = None;
        Some(result)
    }

    /// A copy failed with `result`: if the server pushed back (the policy decides
    /// [`Decision::RetryAfter`] or [`Decision::DontRetry`]), no further hedge of this request,
    /// and a "retry after" holds the layer's hedges for its wait.
    #[cold]
    #[inline(never)]
    fn read_pushback(&mut self, result: Result<&S::Response, &BoxError>) {
        match self.policy.decide(Outcome::Failure, result) {
            Decision::RetryAfter(wait) => {
                let shared = &**self.shared;
                shared.hedger.pushback_at(shared.clock.now(), wait);
            }
            Decision::DontRetry => {}
            Decision::Stop | Decision::Retry => return,
        }
        *self.next = None;
        self.timer.set(None);
    }

    /// Runs the hedge delay and sends the next hedge when it is over, the service ready and
    /// the deadline, the budget and servers' pushback allow.
    fn hedge(&mut self, cx: &mut Context<'_>) -> Step {
        let Some(next) = self.next.as_mut() else {
            return Step::Pending;
        };
        let shared = &**self.shared;
        if !next.due {
            if self.timer.is_none() {
                let now = shared.clock.now();
                let wait = (next.last_sent + next.delay).saturating_sub(now);
                if wait.is_zero() {
                    next.due = true;
                } else {
                    self.timer.set(Some(tokio::time::sleep(wait)));
                }
            }
            if let Some(timer) = self.timer.as_mut().as_pin_mut() {
                if timer.poll(cx).is_pending() {
                    return Step::Pending;
                }
                self.timer.set(None);
                next.due = true;
            }
        }
        match next.service.poll_ready(cx) {
            Poll::Pending => return Step::Pending,
            Poll::Ready(Err(_)) => {
                // No hedge can go; the copies under way go on.
                *self.next = None;
                return Step::Pending;
            }
            Poll::Ready(Ok(())) => {}
        }
        let class = self.plan.context.criticality().unwrap_or_default().class();
        let Some(copy) = self.policy.clone_request(&next.template) else {
            shared.metrics.refused(HedgeRefusal::Policy, class);
            *self.next = None;
            return Step::Pending;
        };
        let now = shared.clock.now();
        let criticality = self.plan.context.criticality().unwrap_or_default();
        if let Err(refusal) =
            shared
                .hedger
                .may_send_at(now, self.plan.context.deadline(), criticality)
        {
            shared.metrics.refused(refusal, class);
            *self.next = None;
            return Step::Pending;
        }
        // Avoid the endpoints still working on this request.
        let mut avoid = [EndpointId::new(0); MAX_AVOIDED];
        let mut len = 0;
        let picks = self.first.is_some().then_some(*self.first_pick).flatten();
        for (slot, pick) in avoid.iter_mut().zip(
            picks
                .into_iter()
                .chain(self.hedges.iter().filter_map(|h| h.pick)),
        ) {
            *slot = pick;
            len += 1;
        }
        // Counted with the withdrawal, before the call: a `call` that panics has spent it.
        shared.metrics.sent(class);
        let context = self.plan.context;
        let service = &mut next.service;
        let (future, pick) = pick_hint::call_avoiding(avoid.get(..len).unwrap_or_default(), || {
            let _context = context.enter();
            service.call(copy)
        });
        self.hedges.push(Sent {
            future: Box::pin(future),
            started: now,
            pick,
        });
        next.left -= 1;
        if next.left == 0 {
            *self.next = None;
        } else {
            next.due = false;
            next.last_sent = now;
        }
        Step::Sent
    }
}

impl<S, Req, B, P> std::fmt::Debug for HedgeFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeFuture")
            .field("first_under_way", &self.first.is_some())
            .field("hedges_under_way", &self.hedges.len())
            .field("may_hedge", &self.next.is_some())
            .finish_non_exhaustive()
    }
}
