use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use tokio::time::Sleep;
use tower::{BoxError, Service};

use crate::service::Shared;
use crate::{AttemptTimedOut, Attempts, Budget, Next, RetryPolicy};

/// The response future of [`Retry`](crate::Retry): the attempts of one request.
///
/// It sequences them: after each attempt, the policy classifies and judges the result and the
/// layer's [`Retrier`](crate::Retrier) says what follows.
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
}

#[pin_project(project = StateProj, project_replace = StateOwned)]
enum State<F, Req> {
    /// An attempt in flight, with its deadline if any.
    Attempt {
        #[pin]
        future: F,
        #[pin]
        deadline: Option<Sleep>,
    },
    /// Waiting out the backoff before retrying `request`.
    Waiting {
        #[pin]
        sleep: Sleep,
        request: Req,
    },
    /// Waiting for the service to be ready to retry `request`.
    Ready { request: Req },
    /// The output has been returned.
    Done,
}

impl<S, Req, B, P> ResponseFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        first: S::Future,
        service: S,
        attempts: Attempts,
        next: Option<Req>,
        policy: P,
        shared: Arc<Shared<B>>,
    ) -> Self {
        Self {
            state: State::Attempt {
                future: first,
                deadline: deadline(&shared),
            },
            service,
            next,
            policy,
            shared,
            attempts,
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
                StateProj::Attempt { future, deadline } => {
                    let result = match deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
                        Some(Poll::Ready(())) => Err(AttemptTimedOut::new().into()),
                        _ => ready!(future.poll(cx)).map_err(Into::into),
                    };
                    let shared = &**this.shared;
                    let outcome = this.policy.classify(result.as_ref());
                    shared.retrier.record(outcome);
                    let decision = this.policy.decide(outcome, result.as_ref());
                    let next = shared.retrier.decide(this.attempts, decision, this.next);
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
                    // A copy only if a retry can follow the attempt about to be made.
                    *this.next = if shared.retrier.allows_another(this.attempts) {
                        this.policy.clone_request(&request)
                    } else {
                        None
                    };
                    shared.metrics.retry(this.attempts.criticality().class());
                    let future = this.service.call(request);
                    this.state.set(State::Attempt {
                        future,
                        deadline: deadline(shared),
                    });
                }
                StateProj::Done => return Poll::Pending,
            }
        }
    }
}

/// The deadline of an attempt starting now, if attempts have one.
fn deadline<B>(shared: &Shared<B>) -> Option<Sleep> {
    shared
        .retrier
        .config()
        .attempt_timeout
        .map(tokio::time::sleep)
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
