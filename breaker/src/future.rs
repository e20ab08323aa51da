use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use rampart_core::{Classify, Clock, DefaultClassifier, Outcome, SystemClock};
use tower::BoxError;

use crate::{Rejected, SreBreaker};

/// Records an admitted call's outcome exactly once: when its response completes, or when it
/// is dropped without completing (cancelled, or unwinding from a panic).
///
/// It records at the instant the outcome arrives (one clock read), never at the instant the
/// call was admitted: a call that fails after a quiet spell longer than the window must count
/// in the window when it fails, and the admission instant's bucket may have expired by then.
#[derive(Debug)]
pub(crate) struct Completion<C, L> {
    breaker: Arc<SreBreaker<C>>,
    classifier: L,
    recorded: bool,
    /// [`SreBreaker::record`] for this clock type, captured where the bound is known, for
    /// `Drop` (which reads the clock too).
    record_now: fn(&SreBreaker<C>, Outcome),
}

impl<C: Clock, L> Completion<C, L> {
    pub(crate) fn new(breaker: Arc<SreBreaker<C>>, classifier: L) -> Self {
        Self {
            breaker,
            classifier,
            recorded: false,
            record_now: SreBreaker::record,
        }
    }

    fn complete<T, E>(&mut self, result: &Result<T, E>)
    where
        L: Classify<T, E>,
    {
        if !self.recorded {
            self.recorded = true;
            let outcome = self.classifier.classify(result.as_ref());
            self.breaker.record(outcome);
        }
    }
}

impl<C, L> Drop for Completion<C, L> {
    fn drop(&mut self) {
        if !self.recorded {
            let outcome = if std::thread::panicking() {
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

/// The response future of [`Breaker`](crate::Breaker).
///
/// # Cancellation
///
/// Dropping it before it completes drops the inner future and records the breaker's
/// `on_cancel` outcome (by default nothing).
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
    pub(crate) fn admitted(future: F, completion: Completion<C, L>) -> Self {
        Self {
            state: State::Admitted { future, completion },
        }
    }

    pub(crate) fn rejected(_rejected: Rejected) -> Self {
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
                let result = ready!(future.poll(cx));
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
