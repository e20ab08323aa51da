use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use rampart_core::{Clock, SystemClock};
use tower::BoxError;

use crate::{CpuUsage, Overloaded, OwnedPermit, SystemCpu};

/// The response future of [`BbrLimit`](crate::BbrLimit) and
/// [`KeyedBbrLimit`](crate::KeyedBbrLimit).
///
/// # Cancellation
///
/// Dropping it before it completes drops the inner future and takes the request out of
/// flight, recording nothing: a cancelled request is not throughput. So is a request whose
/// inner future panicked. A request completes when the inner future returns, with a response
/// or an error.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F, C = SystemClock, U = SystemCpu> {
    #[pin]
    state: State<F, C, U>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F, C, U> {
    /// Admitted: waiting for the inner service; the permit is released on completion.
    Admitted {
        #[pin]
        future: F,
        permit: Option<OwnedPermit<C, U>>,
    },
    /// Refused (shed, or unable to meet its deadline); the inner service was not called.
    Refused(Option<BoxError>),
    /// The output has been returned.
    Done,
}

impl<F, C, U> ResponseFuture<F, C, U> {
    pub(crate) fn admitted(future: F, permit: OwnedPermit<C, U>) -> Self {
        Self {
            state: State::Admitted {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn refused(error: impl Into<BoxError>) -> Self {
        Self {
            state: State::Refused(Some(error.into())),
        }
    }
}

impl<F, C, U, T, E> Future for ResponseFuture<F, C, U>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Clock,
    U: CpuUsage,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Admitted { future, permit } => {
                let result = ready!(future.poll(cx));
                // A completion, whatever the outcome.
                if let Some(permit) = permit.take() {
                    permit.complete();
                }
                result.map_err(Into::into)
            }
            StateProj::Refused(error) => {
                Err(error.take().unwrap_or_else(|| Overloaded::new().into()))
            }
            StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
