//! [`ResponseFuture`]: the response of an admitted call, whose outcome it records once, or the
//! immediate error of a rejected one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use rampart_core::{
    Classify, Clock, Completion, Criticality, DefaultClassifier, Outcome, Recorder, StripedArc,
    SystemClock,
};
use tower::BoxError;

use crate::{Rejected, SreBreaker};

/// Records an admitted call's outcome on its breaker, through a [`Completion`], at the instant
/// it arrives (one clock read): when the response completes, when the inner service panics,
/// or, with the breaker's `on_cancel` outcome, when the response future is dropped before
/// either (a cancellation). The outcome counts as one of the call's criticality (the metrics'
/// `criticality` label), whatever context is current when it arrives.
///
/// Never at the instant the call was admitted: a call that fails after a quiet spell longer
/// than the window must count in the window when it fails, and the admission instant's bucket
/// has expired by then.
#[derive(Debug)]
pub(crate) struct Admitted<C>(pub(crate) Holder<C>, pub(crate) Criticality);

/// How an admitted call holds its breaker: a [`Breaker`](crate::Breaker)'s calls through the
/// handle its services share (counted per stripe of threads), a keyed group's through the
/// key's own `Arc`.
#[derive(Debug)]
pub(crate) enum Holder<C> {
    Striped(StripedArc<Arc<SreBreaker<C>>>),
    Keyed(Arc<SreBreaker<C>>),
}

impl<C> std::ops::Deref for Holder<C> {
    type Target = SreBreaker<C>;

    #[inline]
    fn deref(&self) -> &SreBreaker<C> {
        match self {
            Self::Striped(breaker) => breaker,
            Self::Keyed(breaker) => breaker,
        }
    }
}

impl<C: Clock> Recorder for Admitted<C> {
    fn record(&mut self, outcome: Outcome) {
        self.0.record_for(self.1, outcome);
    }

    fn record_cancel(&mut self) {
        let outcome = self.0.config().on_cancel;
        if outcome != Outcome::Ignore {
            self.0.record_for(self.1, outcome);
        }
    }
}

/// The response future of [`Breaker`](crate::Breaker).
///
/// # Outcomes at the end of the body
///
/// When the classifier [defers](rampart_core::Classify::defer) a response's outcome (a gRPC
/// answer whose status comes in its trailers, with `GrpcClassifier` and `GrpcBody`), the
/// outcome is recorded when the body ends, fails or is dropped, not when the response arrives;
/// a body dropped before its end counts as a cancellation (the breaker's `on_cancel`).
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
        completion: Completion<Admitted<C>, L>,
    },
    /// Rejected by the breaker; the inner service was not called.
    Rejected(Rejected),
    /// The output has been returned.
    Done,
}

impl<F, C, L> ResponseFuture<F, C, L> {
    /// The inner service's `call` returned `future`.
    pub(crate) fn admitted(future: F, mut completion: Completion<Admitted<C>, L>) -> Self {
        completion.called();
        Self {
            state: State::Admitted { future, completion },
        }
    }

    /// The breaker rejected the call: the future resolves to `rejected` at once.
    pub(crate) fn rejected(rejected: Rejected) -> Self {
        Self {
            state: State::Rejected(rejected),
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
                ready!(completion.poll_inner_or_defer(future, cx)).map_err(Into::into)
            }
            StateProj::Rejected(rejected) => Err((*rejected).into()),
            StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
