use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project::pin_project;
use rampart_core::{Classify, Clock, DefaultClassifier, Outcome, SystemClock};
use tower::BoxError;

use crate::NoEndpoints;
use crate::endpoint::{EndpointStats, Ticket};

/// Records a request's end on its endpoint exactly once: its outcome and latency when the
/// response completes, nothing but the in-flight count when it is cancelled, a failure when the
/// endpoint panicked.
#[derive(Debug)]
pub(crate) struct Completion<C, L> {
    stats: Arc<EndpointStats>,
    ticket: Ticket,
    clock: C,
    classifier: L,
    done: bool,
    /// `Clock::now` for this clock type, captured where the bound is known, for `Drop`.
    now: fn(&C) -> Duration,
}

impl<C: Clock, L> Completion<C, L> {
    pub(crate) fn new(stats: Arc<EndpointStats>, ticket: Ticket, clock: C, classifier: L) -> Self {
        Self {
            stats,
            ticket,
            clock,
            classifier,
            done: false,
            now: C::now,
        }
    }

    fn complete<T, E>(&mut self, result: &Result<T, E>)
    where
        L: Classify<T, E>,
    {
        if !self.done {
            self.done = true;
            let outcome = self.classifier.classify(result.as_ref());
            self.stats
                .end(&self.ticket, self.clock.now(), Some(outcome));
        }
    }
}

impl<C, L> Drop for Completion<C, L> {
    fn drop(&mut self) {
        if !self.done {
            let outcome = std::thread::panicking().then_some(Outcome::Failure);
            self.stats
                .end(&self.ticket, (self.now)(&self.clock), outcome);
        }
    }
}

/// The response future of [`P2c`](crate::P2c).
///
/// # Cancellation
///
/// Dropping it before it completes drops the endpoint's future; the endpoint's in-flight count
/// goes down, and its latency and success are left alone (a client giving up says nothing about
/// the endpoint).
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F, C = SystemClock, L = DefaultClassifier> {
    #[pin]
    state: State<F, C, L>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F, C, L> {
    /// Sent to an endpoint; its outcome is recorded on completion.
    Sent {
        #[pin]
        future: F,
        completion: Completion<C, L>,
    },
    /// No endpoint was available.
    NoEndpoint,
    /// The output has been returned.
    Done,
}

impl<F, C, L> ResponseFuture<F, C, L> {
    pub(crate) fn sent(future: F, completion: Completion<C, L>) -> Self {
        Self {
            state: State::Sent { future, completion },
        }
    }

    pub(crate) fn no_endpoint() -> Self {
        Self {
            state: State::NoEndpoint,
        }
    }
}

impl<F, C, L, T, E> Future for ResponseFuture<F, C, L>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Clock,
    L: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Sent { future, completion } => {
                let result = ready!(future.poll(cx));
                completion.complete(&result);
                result.map_err(Into::into)
            }
            StateProj::NoEndpoint => Err(NoEndpoints::new().into()),
            StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
