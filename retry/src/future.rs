use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use fastrand::Rng;
use pin_project::pin_project;
use tokio::time::Sleep;
use tower::{BoxError, Service};

use crate::layer::Shared;
use crate::{AttemptTimedOut, Budget, Decision, RetryPolicy};

/// The response future of [`Retry`](crate::Retry): the attempts of one request.
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
    /// Attempts started so far.
    attempts: u32,
    /// The previous wait (for decorrelated jitter) and the jitter generator, made on the
    /// first retry.
    previous_wait: Duration,
    rng: Option<Rng>,
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
        next: Option<Req>,
        policy: P,
        shared: Arc<Shared<B>>,
    ) -> Self {
        let deadline = shared.config.attempt_timeout.map(tokio::time::sleep);
        Self {
            state: State::Attempt {
                future: first,
                deadline,
            },
            service,
            next,
            policy,
            shared,
            attempts: 1,
            previous_wait: Duration::ZERO,
            rng: None,
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
                    shared.budget.record(outcome);
                    let (wait, copy) = match this.policy.decide(outcome, result.as_ref()) {
                        Decision::Stop => (None, None),
                        _ if !shared.allows_another_after(*this.attempts) => (None, None),
                        // `None` if the request could not be copied: it cannot be retried.
                        Decision::Retry => (None, this.next.take()),
                        Decision::RetryAfter(wait) => (Some(wait), this.next.take()),
                    };
                    // The budget is asked last, only for a retry that would otherwise happen.
                    let Some(request) = copy.filter(|_| shared.withdraw()) else {
                        this.state.set(State::Done);
                        return Poll::Ready(result);
                    };
                    let rng = this.rng.get_or_insert_with(|| {
                        let seed = shared
                            .seeds
                            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
                        Rng::with_seed(seed)
                    });
                    let wait = wait.unwrap_or_else(|| {
                        shared
                            .config
                            .backoff
                            .delay(*this.attempts, *this.previous_wait, rng)
                    });
                    *this.previous_wait = wait;
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
                    *this.attempts += 1;
                    // A copy only if a retry can follow the attempt about to be made.
                    *this.next = if this.shared.allows_another_after(*this.attempts) {
                        this.policy.clone_request(&request)
                    } else {
                        None
                    };
                    this.shared.metrics.retry();
                    let future = this.service.call(request);
                    let deadline = this.shared.config.attempt_timeout.map(tokio::time::sleep);
                    this.state.set(State::Attempt { future, deadline });
                }
                StateProj::Done => return Poll::Pending,
            }
        }
    }
}

impl<S, Req, B, P> std::fmt::Debug for ResponseFuture<S, Req, B, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
