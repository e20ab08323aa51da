use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project::pin_project;
use rampart_core::{Classify, Clock, DefaultClassifier, Outcome, SystemClock};
use tower::BoxError;

use crate::{Rejected, SreBreaker};

/// Records an admitted call's outcome exactly once: when its response completes, or when it
/// is dropped without completing (cancelled, or unwinding from a panic).
///
/// It records at the instant the call was admitted, so that a request reads the clock once:
/// the breaker moved its window to that instant when admitting the call, and an instant older
/// than the window's newest bucket counts in the newest bucket.
#[derive(Debug)]
pub(crate) struct Completion<C, L> {
    breaker: Arc<SreBreaker<C>>,
    classifier: L,
    admitted_at: Duration,
    recorded: bool,
}

impl<C: Clock, L> Completion<C, L> {
    pub(crate) fn new(breaker: Arc<SreBreaker<C>>, classifier: L, admitted_at: Duration) -> Self {
        Self {
            breaker,
            classifier,
            admitted_at,
            recorded: false,
        }
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
            self.breaker.record_at(self.admitted_at, outcome);
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
                self.breaker.record_at(self.admitted_at, outcome);
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
