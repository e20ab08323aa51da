use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project::pin_project;
use rampart_core::{Clock, Deadline, DeadlineExceeded, Outcome, RequestContext, StripedArc};
use tokio::time::Sleep;
use tower::{BoxError, Service};

use crate::service::{Shared, Wrapped};
use crate::{
    AttemptTimedOut, Attempts, Budget, Decision, GaveUp, GaveUpMark, Next, RetryPolicy, StopReason,
};

/// The response future of [`Retry`](crate::Retry): the attempts of one request.
///
/// It sequences them: after each attempt, the policy classifies and judges the result and the
/// layer's [`Retrier`](crate::Retrier) says what follows. For a request with a deadline it
/// reads the layer's clock when each attempt starts, is first polled and ends: to check the
/// time left before a retry, to cut the attempt at the deadline (arming a timer only if it
/// waits), to measure a successful attempt's latency, and to decide at that instant. After a
/// server's pushback, and once one has held the layer's retries, it reads the clock at each
/// decision and before sending each retry ([`PushbackHold`](crate::PushbackHold)).
///
/// # Cancellation
///
/// Dropping it drops the attempt in flight and cancels every retry to come.
#[pin_project]
pub struct ResponseFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    #[pin]
    state: State<S::Future, Req, S::Response>,
    /// The service instance the retries are called on: made at the first retry, and boxed
    /// with it, so that the future of a request that is not retried stays small.
    service: Option<Box<S>>,
    /// A copy of the request for the next attempt, if there can be one.
    next: Option<Req>,
    policy: P,
    shared: StripedArc<Wrapped<S, B>>,
    /// The request's attempts so far.
    attempts: Attempts,
    /// For a request with a deadline, when the attempt in flight started.
    started: Option<Duration>,
}

#[pin_project(project = StateProj, project_replace = StateOwned)]
enum State<F, Req, Res> {
    /// An attempt in flight, with its timeout if any: the configured one, or the request's
    /// deadline if that comes first (`cut`).
    Attempt {
        #[pin]
        future: F,
        /// The timer of the timeout. For a cut at the deadline it is armed at the attempt's
        /// first pending poll: an attempt that answers at once registers no timer. Boxed, as
        /// the backoff's timer is, so that the future of a request that needs no timer stays
        /// small: it is moved on its way to the caller's task.
        timeout: Option<Pin<Box<Sleep>>>,
        /// The request's deadline, when the attempt is cut at it.
        cut: Option<Deadline>,
    },
    /// Waiting out the backoff before retrying `request`. Once a server's pushback has held
    /// the layer's retries, the answer being retried is kept in `last`, to be returned if a
    /// newer pushback holds the retry when the wait is over.
    Waiting {
        sleep: Pin<Box<Sleep>>,
        request: Req,
        last: Option<Result<Res, BoxError>>,
    },
    /// Waiting for the service to be ready to retry `request`.
    Ready {
        request: Req,
        last: Option<Result<Res, BoxError>>,
    },
    /// The request's deadline had passed when the layer was called: no attempt is made.
    Expired,
    /// The output has been returned.
    Done,
}

impl<S, Req, B, P> ResponseFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    /// The attempts of a request whose first attempt, `first`, started at `now` (read only for
    /// a request with a deadline).
    pub(crate) fn new(
        first: S::Future,
        attempts: Attempts,
        now: Option<Duration>,
        next: Option<Req>,
        policy: P,
        shared: StripedArc<Wrapped<S, B>>,
    ) -> Self {
        let (timeout, cut) = timeout(&shared.layer, &attempts, now);
        Self {
            state: State::Attempt {
                future: first,
                timeout,
                cut,
            },
            service: None,
            next,
            policy,
            shared,
            attempts,
            started: now,
        }
    }

    /// A request whose deadline had passed when the layer was called: it ends with
    /// [`DeadlineExceeded`] when first polled, no attempt made.
    pub(crate) fn expired(policy: P, shared: StripedArc<Wrapped<S, B>>) -> Self {
        Self {
            state: State::Expired,
            service: None,
            next: None,
            policy,
            attempts: Attempts::none(),
            shared,
            started: None,
        }
    }
}

impl<S, Req, B, P> Future for ResponseFuture<S, Req, B, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    B: Budget,
    P: RetryPolicy<Req, S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Attempt {
                    future,
                    timeout,
                    cut,
                } => {
                    let shared = &*this.shared.layer;
                    let (result, answered, ended_at) =
                        ready!(poll_attempt(future, timeout, *cut, &*shared.clock, cx));
                    let outcome = this.policy.classify(result.as_ref());
                    shared.retrier.record(outcome);
                    let decision = this.policy.decide(outcome, result.as_ref());
                    let ended = Ended {
                        started: *this.started,
                        at: ended_at,
                        measured: answered && outcome == Outcome::Success,
                    };
                    let next = decide(shared, this.attempts, decision, this.next, ended);
                    shared
                        .metrics
                        .decided(&next, this.attempts.criticality().class());
                    let Next::Retry { wait, request } = next else {
                        this.state.set(State::Done);
                        let result = gave_up(result, &next, this.attempts, shared, this.policy);
                        return Poll::Ready(result);
                    };
                    let last = shared.retrier.ever_held().then_some(result);
                    this.state.set(State::Waiting {
                        sleep: Box::pin(tokio::time::sleep(wait)),
                        request,
                        last,
                    });
                }
                StateProj::Waiting { sleep, .. } => {
                    ready!(sleep.as_mut().poll(cx));
                    if let StateOwned::Waiting { request, last, .. } =
                        this.state.as_mut().project_replace(State::Done)
                    {
                        this.state.set(State::Ready { request, last });
                    }
                }
                StateProj::Ready { .. } => {
                    let service = this
                        .service
                        .get_or_insert_with(|| Box::new(this.shared.instance()));
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error.into()));
                    }
                    let StateOwned::Ready { request, last } =
                        this.state.as_mut().project_replace(State::Done)
                    else {
                        continue;
                    };
                    let shared = &*this.shared.layer;
                    if let Some(held) = held(last, this.attempts, shared, this.policy) {
                        return Poll::Ready(held);
                    }
                    let class = this.attempts.criticality().class();
                    // For a request with a deadline: the time may have run out during the
                    // backoff and the wait for readiness.
                    let now = this.attempts.deadline().map(|_| shared.clock.now());
                    if let Some(now) = now
                        && !shared.retrier.time_for_attempt(this.attempts, now)
                    {
                        shared.metrics.retry_skipped(class);
                        return Poll::Ready(Err(DeadlineExceeded::new().into()));
                    }
                    // A copy only if a retry can follow the attempt about to be made.
                    *this.next = if shared.retrier.allows_another(this.attempts) {
                        this.policy.clone_request(&request)
                    } else {
                        None
                    };
                    shared.metrics.retry(class);
                    let (timeout, cut) = timeout(shared, this.attempts, now);
                    *this.started = now;
                    // The attempt's number is current while the service is called, and the
                    // request charged to the layer's budget.
                    let previous = this.attempts.made().saturating_sub(1);
                    let charged = shared.retrier.budget().id();
                    let future = {
                        let _attempt = RequestContext::current()
                            .with_attempt(previous)
                            .with_charged(charged)
                            .enter();
                        service.call(request)
                    };
                    this.state.set(State::Attempt {
                        future,
                        timeout,
                        cut,
                    });
                }
                StateProj::Expired => {
                    this.state.set(State::Done);
                    return Poll::Ready(Err(DeadlineExceeded::new().into()));
                }
                StateProj::Done => return Poll::Pending,
            }
        }
    }
}

/// How an attempt ended, for [`decide`].
#[derive(Clone, Copy)]
struct Ended {
    /// When it started, for a request with a deadline.
    started: Option<Duration>,
    /// The clock's reading at its end, if taken.
    at: Option<Duration>,
    /// Whether its latency is a successful answer's, to be observed.
    measured: bool,
}

/// What follows an attempt of `attempts`' request that `ended` as the policy judged
/// `decision`. The time is read for a request with a deadline, and for a pushback or once one
/// has held the layer's retries; a successful answer's latency is observed for a request with a
/// deadline.
fn decide<B: Budget, Req>(
    shared: &Shared<B>,
    attempts: &mut Attempts,
    decision: Decision,
    next: &mut Option<Req>,
    ended: Ended,
) -> Next<Req> {
    let pushback = matches!(decision, Decision::RetryAfter(_));
    if ended.started.is_none() && !pushback && !shared.retrier.ever_held() {
        return shared.retrier.decide(attempts, decision, next);
    }
    let now = ended.at.unwrap_or_else(|| shared.clock.now());
    if let Some(started) = ended.started
        && ended.measured
    {
        shared.retrier.observe(now.saturating_sub(started));
    }
    shared.retrier.decide_at(attempts, decision, next, now)
}

/// The result of a retry due now that a pushback which arrived during its wait holds: the
/// answer it would have retried, `last`, kept during the wait once pushback has held the
/// layer's retries; `None` when it goes ahead.
fn held<T, B, Req, P: RetryPolicy<Req, T>>(
    last: Option<Result<T, BoxError>>,
    attempts: &Attempts,
    shared: &Shared<B>,
    policy: &P,
) -> Option<Result<T, BoxError>> {
    let last = last?;
    if !shared.retrier.holds_retries_at(shared.clock.now()) {
        return None;
    }
    let stop = Next::Stop(StopReason::Pushback);
    shared
        .metrics
        .decided(&stop, attempts.criticality().class());
    Some(gave_up(last, &stop, attempts, shared, policy))
}

/// The result of a request the layer stopped retrying: if the configuration says so, a failure
/// it gave up on wrapped in [`GaveUp`] and an answer it gave up on marked by the policy;
/// anything else as it is.
fn gave_up<T, B, Req, P: RetryPolicy<Req, T>>(
    result: Result<T, BoxError>,
    next: &Next<Req>,
    attempts: &Attempts,
    shared: &Shared<B>,
    policy: &P,
) -> Result<T, BoxError> {
    let reason = match next {
        Next::Stop(
            reason @ (StopReason::MaxAttempts
            | StopReason::BudgetExhausted
            | StopReason::Pushback
            | StopReason::NoTimeLeft),
        ) if shared.retrier.config().mark_gave_up => *reason,
        _ => return result,
    };
    match result {
        Err(error) => Err(GaveUp::new(reason, attempts.made(), error).into()),
        Ok(mut response) => {
            let mark = GaveUpMark {
                reason,
                attempts: attempts.made(),
            };
            policy.mark_gave_up(&mut response, mark);
            Ok(response)
        }
    }
}

/// The timeout of an attempt of `attempts`' request starting at `now` (given for a request
/// with a deadline), if it has one: the configured attempt timeout's timer, or, if the request's
/// deadline comes first, that deadline (its timer armed at the attempt's first pending poll).
fn timeout<B>(
    shared: &Shared<B>,
    attempts: &Attempts,
    now: Option<Duration>,
) -> (Option<Pin<Box<Sleep>>>, Option<Deadline>) {
    let configured = shared.retrier.config().attempt_timeout;
    match (configured, attempts.deadline().zip(now)) {
        (Some(configured), Some((deadline, now))) if configured < deadline.remaining(now) => {
            (Some(Box::pin(tokio::time::sleep(configured))), None)
        }
        (_, Some((deadline, _))) => (None, Some(deadline)),
        (configured, None) => (
            configured.map(|configured| Box::pin(tokio::time::sleep(configured))),
            None,
        ),
    }
}

/// Polls an attempt: its result once it ends, whether the service answered (rather than the
/// attempt running out of time), and the clock's reading at its end if taken. An attempt cut at
/// the request's deadline reads the clock at its first poll, before polling the service (past
/// the deadline, the attempt is cut, as its timer would have cut it), and arms its timer if
/// that poll is pending.
fn poll_attempt<F, T, E>(
    future: Pin<&mut F>,
    timeout: &mut Option<Pin<Box<Sleep>>>,
    cut: Option<Deadline>,
    clock: &dyn Clock,
    cx: &mut Context<'_>,
) -> Poll<(Result<T, BoxError>, bool, Option<Duration>)>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    let fired = |timeout: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>| {
        timeout
            .as_mut()
            .is_some_and(|timeout| timeout.as_mut().poll(cx).is_ready())
    };
    if fired(timeout, cx) {
        return Poll::Ready((Err(timed_out(cut.is_some())), false, None));
    }
    let deadline = match cut {
        Some(deadline) if timeout.is_none() => deadline,
        _ => {
            return future
                .poll(cx)
                .map(|result| (result.map_err(Into::into), true, None));
        }
    };
    // Unarmed: the deadline is checked first, as an armed timer would be.
    let now = clock.now();
    if deadline.is_expired(now) {
        return Poll::Ready((Err(timed_out(true)), false, Some(now)));
    }
    if let Poll::Ready(result) = future.poll(cx) {
        return Poll::Ready((result.map_err(Into::into), true, Some(now)));
    }
    *timeout = Some(Box::pin(tokio::time::sleep(deadline.remaining(now))));
    if fired(timeout, cx) {
        return Poll::Ready((Err(timed_out(true)), false, None));
    }
    Poll::Pending
}

/// The error of an attempt that ran out of time: cut at the request's deadline, or past the
/// configured attempt timeout.
fn timed_out(cut: bool) -> BoxError {
    if cut {
        DeadlineExceeded::new().into()
    } else {
        AttemptTimedOut::new().into()
    }
}

impl<S, Req, B, P> std::fmt::Debug for ResponseFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts.made())
            .finish_non_exhaustive()
    }
}
