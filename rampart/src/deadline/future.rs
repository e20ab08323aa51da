//! [`ResponseFuture`]: the inner future raced against the deadline's timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use rampart_core::DeadlineExceeded;
use tokio::time::{Sleep, sleep};
use tower::BoxError;

/// The response future of [`EnforceDeadline`](super::EnforceDeadline): the inner service's
/// answer if it comes before the deadline, [`DeadlineExceeded`] once the deadline passes (the
/// inner future then dropped), or [`DeadlineExceeded`] at once for a request whose deadline
/// had passed when it was called.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    state: State<F>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F> {
    /// No deadline: the inner future alone.
    Unbounded {
        #[pin]
        inner: F,
    },
    /// The inner future and the timer of its deadline.
    Bounded {
        #[pin]
        inner: F,
        #[pin]
        timer: Sleep,
    },
    /// The deadline has passed: nothing left to run.
    Expired,
}

impl<F> ResponseFuture<F> {
    /// The future of a request without a deadline.
    pub(super) fn unbounded(inner: F) -> Self {
        Self {
            state: State::Unbounded { inner },
        }
    }

    /// The future of a request with `remaining` left of its deadline.
    pub(super) fn bounded(inner: F, remaining: Duration) -> Self {
        Self {
            state: State::Bounded {
                inner,
                timer: sleep(remaining),
            },
        }
    }

    /// The future of a request whose deadline has passed.
    pub(super) fn expired() -> Self {
        Self {
            state: State::Expired,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            StateProj::Unbounded { inner } => inner.poll(cx).map_err(Into::into),
            StateProj::Bounded { inner, timer } => {
                // The answer first: one that is ready at the deadline is not thrown away.
                if let Poll::Ready(answer) = inner.poll(cx) {
                    return Poll::Ready(answer.map_err(Into::into));
                }
                if timer.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Time is up: the inner future is dropped now, not when this one is.
                state.set(State::Expired);
                Poll::Ready(Err(DeadlineExceeded::new().into()))
            }
            StateProj::Expired => Poll::Ready(Err(DeadlineExceeded::new().into())),
        }
    }
}
