use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;
use rampart_core::DeadlineExceeded;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tower::BoxError;

use super::queue::{Booking, Dropped};
use super::{QueueTimeout, Served, SimBackend};
use crate::{MissingRuntime, QueueFull};

/// The response future of [`SimBackend`](super::SimBackend): resolves when the request's
/// service ends, or with the error of a request its queue dropped
/// ([`QueueTimeout`], [`DeadlineExceeded`]).
///
/// # Cancellation
///
/// Dropping it does not free the request's worker or queue slot: the simulated server does
/// the work anyway.
#[pin_project(project = SimFutureProj)]
#[derive(Debug)]
pub struct SimFuture {
    #[pin]
    state: State,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State {
    /// Held in the queue until a worker takes it (or the queue drops it); holds the backend, so
    /// that the queue outlives it.
    Held {
        arrival: Instant,
        booking: oneshot::Receiver<Result<Booking, Dropped>>,
        _backend: SimBackend,
    },
    /// Dropped by the queue.
    Dropped(Dropped),
    /// Waiting for the booked service to end.
    Serving {
        #[pin]
        until_done: Sleep,
        served: Served,
    },
    /// Rejected: the queue was full.
    Rejected,
    /// Called outside a tokio runtime.
    NoRuntime,
    /// The output has been returned.
    Done,
}

impl SimFuture {
    pub(super) fn serving(arrival: Instant, booking: Booking) -> Self {
        let served = Served {
            queued: booking.start.saturating_duration_since(arrival),
            service: booking.finish.saturating_duration_since(booking.start),
        };
        let until_done = tokio::time::sleep_until(booking.finish);
        Self {
            state: State::Serving { until_done, served },
        }
    }

    pub(super) fn held(
        arrival: Instant,
        booking: oneshot::Receiver<Result<Booking, Dropped>>,
        backend: SimBackend,
    ) -> Self {
        Self {
            state: State::Held {
                arrival,
                booking,
                _backend: backend,
            },
        }
    }

    pub(super) fn dropped(dropped: Dropped) -> Self {
        Self {
            state: State::Dropped(dropped),
        }
    }

    pub(super) fn rejected() -> Self {
        Self {
            state: State::Rejected,
        }
    }

    pub(super) fn missing_runtime() -> Self {
        Self {
            state: State::NoRuntime,
        }
    }
}

impl Future for SimFuture {
    type Output = Result<Served, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        if let StateProj::Held {
            arrival, booking, ..
        } = state.as_mut().project()
        {
            match std::task::ready!(Pin::new(booking).poll(cx)) {
                Ok(Ok(booking)) => {
                    let serving = Self::serving(*arrival, booking);
                    state.set(serving.state);
                }
                Ok(Err(dropped)) => state.set(State::Dropped(dropped)),
                // The queue keeps every held request's sender while the backend exists, and
                // this future holds the backend: unreachable.
                Err(_) => state.set(State::NoRuntime),
            }
        }
        let output = match state.as_mut().project() {
            StateProj::Serving { until_done, served } => {
                std::task::ready!(until_done.poll(cx));
                Ok(*served)
            }
            StateProj::Dropped(dropped) => Err(match *dropped {
                Dropped::Expired => DeadlineExceeded::new().into(),
                Dropped::TimedOut(waited) => QueueTimeout::new(waited).into(),
            }),
            StateProj::Rejected => Err(QueueFull::new().into()),
            StateProj::NoRuntime => Err(MissingRuntime::new().into()),
            // Still held (the branch above returned while it is), or done.
            StateProj::Held { .. } | StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
