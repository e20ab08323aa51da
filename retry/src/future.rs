use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use std::time::Duration;

use pin_project::pin_project;
use rampart_core::{DeadlineExceeded, Outcome};
use tokio::time::Sleep;
use tower::{BoxError, Service};

use crate::service::Shared;
use crate::{AttemptTimedOut, Attempts, Budget, Next, RetryPolicy};

/// The response future of [`Retry`](crate::Retry): the attempts of one request.
///
/// It sequences them: after each attempt, the policy classifies and judges the result and the
/// layer's [`Retrier`](crate::Retrier) says what follows. For a request with a deadline it
/// reads the layer's clock when each attempt starts and ends: to cap the attempt's timeout at
/// the time left, to measure a successful attempt's latency, and to decide at that instant.
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
    state: State<S::Future, Req>,
    /// The service instance the retries are called on.
    service: S,
    /// A copy of the request for the next attempt, if there can be one.
    next: Option<Req>,
    policy: P,
    shared: Arc<Shared<B>>,
    /// The request's attempts so far.
    attempts: Attempts,
    /// For a request with a deadline, when the attempt in flight started.
    started: Option<Duration>,
}

#[pin_project(project = StateProj, project_replace = StateOwned)]
enum State<F, Req> {
    /// An attempt in flight, with its timeout if any: the configured one, or the request's
    /// deadline if that comes first (`cut`).
    Attempt {
        #[pin]
        future: F,
        #[pin]
        timeout: Option<Sleep>,
        /// Whether the timeout is the request's deadline.
        cut: bool,
    },
    /// Waiting out the backoff before retrying `request`.
    Waiting {
        #[pin]
        sleep: Sleep,
        request: Req,
    },
    /// Waiting for the service to be ready to retry `request`.
    Ready { request: Req },
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
        service: S,
        attempts: Attempts,
        now: Option<Duration>,
        next: Option<Req>,
        policy: P,
        shared: Arc<Shared<B>>,
    ) -> Self {
        let (timeout, cut) = timeout(&shared, &attempts, now);
        Self {
            state: State::Attempt {
                future: first,
                timeout,
                cut,
            },
            service,
            next,
            policy,
            shared,
            attempts,
            started: now,
        }
    }

    /// A request whose deadline had passed when the layer was called: it ends with
    /// [`DeadlineExceeded`] when first polled, no attempt made.
    pub(crate) fn expired(service: S, policy: P, shared: Arc<Shared<B>>) -> Self {
        Self {
            state: State::Expired,
            service,
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
    S: Service<Req>,
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
                    let (result, answered) =
                        match timeout.as_pin_mut().map(|timeout| timeout.poll(cx)) {
                            Some(Poll::Ready(())) if *cut => {
                                (Err(DeadlineExceeded::new().into()), false)
                            }
                            Some(Poll::Ready(())) => (Err(AttemptTimedOut::new().into()), false),
                            _ => (ready!(future.poll(cx)).map_err(Into::into), true),
                        };
                    let shared = &**this.shared;
                    let outcome = this.policy.classify(result.as_ref());
                    shared.retrier.record(outcome);
                    let decision = this.policy.decide(outcome, result.as_ref());
                    let next = match *this.started {
                        None => shared.retrier.decide(this.attempts, decision, this.next),
                        Some(started) => {
                            let now = shared.clock.now();
                            if answered && outcome == Outcome::Success {
                                shared.retrier.observe(now.saturating_sub(started));
                            }
                            shared
                                .retrier
                                .decide_at(this.attempts, decision, this.next, now)
                        }
                    };
                    shared
                        .metrics
                        .decided(&next, this.attempts.criticality().class());
                    let Next::Retry { wait, request } = next else {
                        this.state.set(State::Done);
                        return Poll::Ready(result);
                    };
                    this.state.set(State::Waiting {
                        sleep: tokio::time::sleep(wait),
                        request,
                    });
                }
                StateProj::Waiting { sleep, .. } => {
                    ready!(sleep.poll(cx));
                    if let StateOwned::Waiting { request, .. } =
                        this.state.as_mut().project_replace(State::Done)
                    {
                        this.state.set(State::Ready { request });
                    }
                }
                StateProj::Ready { .. } => {
                    if let Err(error) = ready!(this.service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error.into()));
                    }
                    let StateOwned::Ready { request } =
                        this.state.as_mut().project_replace(State::Done)
                    else {
                        continue;
                    };
                    let shared = &**this.shared;
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
                    let future = this.service.call(request);
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

/// The timeout of an attempt of `attempts`' request starting at `now` (given for a request
/// with a deadline), if it has one: the configured attempt timeout, or the time left before the
/// request's deadline if that is shorter (then `true`: the attempt is cut at the deadline).
fn timeout<B>(
    shared: &Shared<B>,
    attempts: &Attempts,
    now: Option<Duration>,
) -> (Option<Sleep>, bool) {
    let configured = shared.retrier.config().attempt_timeout;
    let remaining = attempts
        .deadline()
        .zip(now)
        .map(|(deadline, now)| deadline.remaining(now));
    match (configured, remaining) {
        (Some(configured), Some(remaining)) if configured < remaining => {
            (Some(tokio::time::sleep(configured)), false)
        }
        (_, Some(remaining)) => (Some(tokio::time::sleep(remaining)), true),
        (configured, None) => (configured.map(tokio::time::sleep), false),
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
