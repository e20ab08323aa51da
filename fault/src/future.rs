use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use tokio::time::Sleep;
use tower::BoxError;

use crate::error::in_runtime;
use crate::{InjectedError, MissingRuntime};

/// The response future of [`Fault`](crate::Fault).
///
/// # Cancellation
///
/// Dropping it drops the inner future (if the request got that far) and nothing else.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    state: State<F>,
}

#[pin_project(project = StateProj, project_replace = StateOwned)]
#[derive(Debug)]
enum State<F> {
    /// Waiting out the added latency; the inner future (created by `call`, not yet polled)
    /// or the injected fault comes next.
    Delaying {
        #[pin]
        sleep: Sleep,
        next: Next<F>,
    },
    /// Polling the inner service's future.
    Inner {
        #[pin]
        future: F,
    },
    /// The request fails now.
    Failing,
    /// The request never completes.
    Hanging,
    /// The request panics when polled.
    Panicking,
    /// The request could not be delayed: no tokio runtime.
    NoRuntime,
    /// The output has been returned.
    Done,
}

/// What follows the added latency.
#[derive(Debug)]
pub(crate) enum Next<F> {
    /// The inner service's future (created, not yet polled).
    Proceed(F),
    /// Fail with `InjectedError`.
    Fail,
    /// Never complete.
    Hang,
    /// Panic when polled.
    Panic,
}

impl<F> ResponseFuture<F> {
    /// A future that waits `delay`, then goes on as `next` says.
    pub(crate) fn after(delay: Duration, next: Next<F>) -> Self {
        let state = if delay.is_zero() {
            State::from_next(next)
        } else if in_runtime() {
            State::Delaying {
                sleep: tokio::time::sleep(delay),
                next,
            }
        } else {
            State::NoRuntime
        };
        Self { state }
    }
}

impl<F> State<F> {
    fn from_next(next: Next<F>) -> Self {
        match next {
            Next::Proceed(future) => Self::Inner { future },
            Next::Fail => Self::Failing,
            Next::Hang => Self::Hanging,
            Next::Panic => Self::Panicking,
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
        loop {
            match state.as_mut().project() {
                StateProj::Delaying { sleep, .. } => {
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The inner future was never pinned while it waited, so it may move.
                    if let StateOwned::Delaying { next, .. } =
                        state.as_mut().project_replace(State::Done)
                    {
                        state.set(State::from_next(next));
                    }
                }
                StateProj::Inner { future } => {
                    let output = std::task::ready!(future.poll(cx));
                    state.set(State::Done);
                    return Poll::Ready(output.map_err(Into::into));
                }
                StateProj::Failing => {
                    state.set(State::Done);
                    return Poll::Ready(Err(InjectedError::new().into()));
                }
                StateProj::NoRuntime => {
                    state.set(State::Done);
                    return Poll::Ready(Err(MissingRuntime::new().into()));
                }
                StateProj::Panicking => {
                    state.set(State::Done);
                    panic!("rampart-fault: injected panic");
                }
                // A hung request never completes; a finished one has nothing more to give.
                StateProj::Hanging | StateProj::Done => return Poll::Pending,
            }
        }
    }
}
