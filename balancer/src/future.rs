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
/// response completes, a failure when the endpoint panics (as the panic leaves it), nothing but
/// the in-flight count when the response future is dropped before either (a cancellation).
///
/// A panic is told apart from a cancellation by where it happens, never by
/// `std::thread::panicking()`, which is false when a caller catches the panic around `call` or
/// around polling and drops the future later, and true when the caller panics for reasons of
/// its own while the request is in flight.
#[derive(Debug)]
pub(crate) struct Completion<C, L> {
    stats: Arc<EndpointStats>,
    ticket: Ticket,
    clock: C,
    classifier: L,
    done: bool,
    /// Set from construction until the endpoint's `call` returns: a guard dropped while it is
    /// set is unwinding from a panic in `call`.
    calling: bool,
    /// `Clock::now` for this clock type, captured where the bound is known, for `Drop`.
    now: fn(&C) -> Duration,
}

impl<C: Clock, L> Completion<C, L> {
    /// A guard for a request about to be sent: armed, so that a panic in the endpoint's
    /// `call` counts as a failure.
    pub(crate) fn new(stats: Arc<EndpointStats>, ticket: Ticket, clock: C, classifier: L) -> Self {
        Self {
            stats,
            ticket,
            clock,
            classifier,
            done: false,
            calling: true,
            now: C::now,
        }
    }

    /// Polls the endpoint's future; if the poll panics, records a failure as the panic
    /// leaves it.
    #[inline]
    fn poll_inner<F: Future>(
        &mut self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let watch = PanicWatch(self);
        let poll = future.poll(cx);
        std::mem::forget(watch);
        poll
    }

    fn complete<T, E>(&mut self, result: &Result<T, E>)
    where
        L: Classify<T, E>,
    {
        let outcome = self.classifier.classify(result.as_ref());
        self.end(Some(outcome));
    }

    fn end(&mut self, outcome: Option<Outcome>) {
        if !self.done {
            self.done = true;
            self.stats.end(&self.ticket, self.clock.now(), outcome);
        }
    }
}

impl<C, L> Completion<C, L> {
    /// The endpoint's `call` returned.
    fn called(&mut self) {
        self.calling = false;
    }
}

impl<C, L> Drop for Completion<C, L> {
    fn drop(&mut self) {
        if !self.done {
            let outcome = self.calling.then_some(Outcome::Failure);
            self.stats
                .end(&self.ticket, (self.now)(&self.clock), outcome);
        }
    }
}

/// Lives on the stack across one poll of the endpoint's future and is forgotten when the poll
/// returns: it is dropped only by the unwinding of a panic in that poll, which it records as
/// the request's failure, whether or not a caller further up catches the panic.
struct PanicWatch<'a, C: Clock, L>(&'a mut Completion<C, L>);

impl<C: Clock, L> Drop for PanicWatch<'_, C, L> {
    fn drop(&mut self) {
        self.0.end(Some(Outcome::Failure));
    }
}

/// The response future of [`P2c`](crate::P2c).
///
/// # Cancellation
///
/// Dropping it before it completes drops the endpoint's future; the endpoint's in-flight count
/// goes down, and its latency and success are left alone (a client giving up says nothing about
/// the endpoint).
///
/// # Panics
///
/// A panic in the endpoint (in its `call`, or in a poll of its future) counts as a failure,
/// recorded as the panic leaves it, whether or not a caller catches the panic; the future
/// dropped afterwards records nothing more.
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
    /// The endpoint's `call` returned `future`.
    pub(crate) fn sent(future: F, mut completion: Completion<C, L>) -> Self {
        completion.called();
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
                let result = ready!(completion.poll_inner(future, cx));
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
