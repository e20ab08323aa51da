use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;
use tokio::time::{Instant, Sleep};
use tower::BoxError;

use super::Served;
use super::queue::Booking;
use crate::{MissingRuntime, QueueFull};

/// The response future of [`SimBackend`](super::SimBackend): resolves when the request's
/// service ends.
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
        let output = match state.as_mut().project() {
            StateProj::Serving { until_done, served } => {
                std::task::ready!(until_done.poll(cx));
                Ok(*served)
            }
            StateProj::Rejected => Err(QueueFull::new().into()),
            StateProj::NoRuntime => Err(MissingRuntime::new().into()),
            StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
