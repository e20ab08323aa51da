//! [`ResponseFuture`]: the response of an admitted call, whose outcome it records once, or the
//! immediate error of a rejected one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use rampart_core::{Classify, Clock, DefaultClassifier, Outcome, SystemClock};
use tower::BoxError;

use crate::{Rejected, SreBreaker};

/// Records an admitted call's outcome exactly once, at the instant it arrives (one clock
/// read): when the response completes, when the inner service panics, or when the response
/// future is dropped before either (a cancellation).
///
/// Never at the instant the call was admitted: a call that fails after a quiet spell longer
/// than the window must count in the window when it fails, and the admission instant's bucket
/// has expired by then.
///
/// A panic is told apart from a cancellation by where it happens, never by
/// `std::thread::panicking()`, which is false when a caller catches the panic around `call` or
/// around polling and drops the future later, and true when the caller panics for reasons of
/// its own while the call is in flight.
#[derive(Debug)]
pub(crate) struct Completion<C, L> {
    breaker: Arc<SreBreaker<C>>,
    classifier: L,
    recorded: bool,
    /// Set from construction until the inner service's `call` returns: a guard dropped while
    /// it is set is unwinding from a panic in `call`.
    calling: bool,
    /// [`SreBreaker::record`] for this clock type, captured where the bound is known, for
    /// `Drop` (which reads the clock too).
    record_now: fn(&SreBreaker<C>, Outcome),
}

impl<C: Clock, L> Completion<C, L> {
    /// A guard for a call about to be made: armed, so that a panic in the inner service's
    /// `call` counts as a failure.
    pub(crate) fn new(breaker: Arc<SreBreaker<C>>, classifier: L) -> Self {
        Self {
            breaker,
            classifier,
            recorded: false,
            calling: true,
            record_now: SreBreaker::record,
        }
    }

    /// Polls the inner future; if the poll panics, records a failure as the panic leaves it.
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
        self.record(outcome);
    }

    fn record(&mut self, outcome: Outcome) {
        if !self.recorded {
            self.recorded = true;
            self.breaker.record(outcome);
        }
    }
}

impl<C, L> Completion<C, L> {
    /// The inner service's `call` returned.
    fn called(&mut self) {
        self.calling = false;
    }
}

impl<C, L> Drop for Completion<C, L> {
    fn drop(&mut self) {
        if !self.recorded {
            let outcome = if self.calling {
                Outcome::Failure
            } else {
                self.breaker.config().on_cancel
            };
            if outcome != Outcome::Ignore {
                (self.record_now)(&self.breaker, outcome);
            }
        }
    }
}

/// Lives on the stack across one poll of the inner future and is forgotten when the poll
/// returns: it is dropped only by the unwinding of a panic in that poll, which it records as
/// the call's failure, whether or not a caller further up catches the panic.
struct PanicWatch<'a, C: Clock, L>(&'a mut Completion<C, L>);

impl<C: Clock, L> Drop for PanicWatch<'_, C, L> {
    fn drop(&mut self) {
        self.0.record(Outcome::Failure);
    }
}

/// The response future of [`Breaker`](crate::Breaker).
///
/// # Cancellation
///
/// Dropping it before it completes drops the inner future and records the breaker's
/// `on_cancel` outcome (by default nothing), at the instant it is dropped.
///
/// # Panics
///
/// A panic in the inner service (in its `call`, or in a poll of its future) counts as a
/// failure, recorded as the panic leaves it, whether or not a caller catches the panic; the
/// future dropped afterwards records nothing more.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F, C = SystemClock, L = DefaultClassifier> {
    #[pin]
    state: State<F, C, L>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F, C, L> {
    /// Admitted: waiting for the inner service; the outcome is recorded on completion.
    Admitted {
        #[pin]
        future: F,
        completion: Completion<C, L>,
    },
    /// Rejected by the breaker; the inner service was not called.
    Rejected,
    /// The output has been returned.
    Done,
}

impl<F, C, L> ResponseFuture<F, C, L> {
    /// The inner service's `call` returned `future`.
    pub(crate) fn admitted(future: F, mut completion: Completion<C, L>) -> Self {
        completion.called();
        Self {
            state: State::Admitted { future, completion },
        }
    }

    /// The breaker rejected the call: the future resolves to [`Rejected`] at once.
    pub(crate) fn rejected() -> Self {
        Self {
            state: State::Rejected,
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
            StateProj::Admitted { future, completion } => {
                let result = ready!(completion.poll_inner(future, cx));
                completion.complete(&result);
                result.map_err(Into::into)
            }
            StateProj::Rejected => Err(Rejected::new().into()),
            StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
