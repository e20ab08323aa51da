//! [`ResponseFuture`]: the inner service's response of an admitted request, or the immediate
//! error of a refused one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use tower::BoxError;

use crate::QuotaExceeded;

/// The response future of [`Quota`](crate::Quota).
///
/// It only sequences: the token was taken when the request was admitted, so dropping the
/// future, an inner error or a panic changes nothing in the quota.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    state: State<F>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F> {
    /// Admitted: the inner service's future.
    Admitted(#[pin] F),
    /// Refused; the inner service was not called.
    Refused(QuotaExceeded),
    /// The output has been returned.
    Done,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn admitted(future: F) -> Self {
        Self {
            state: State::Admitted(future),
        }
    }

    pub(crate) fn refused(refused: QuotaExceeded) -> Self {
        Self {
            state: State::Refused(refused),
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
        let output = match state.as_mut().project() {
            StateProj::Admitted(future) => ready!(future.poll(cx)).map_err(Into::into),
            StateProj::Refused(refused) => Err((*refused).into()),
            StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
