//! [`ResponseFuture`] and [`ClientResponseFuture`]: the inner service's response future, polled
//! with the request's context current.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;
use rampart_core::{DeadlineExceeded, RequestContext};
use tower::BoxError;

/// The response future of [`ServerContext`]: the inner service's, with the request's
/// [`RequestContext`] current during each of its polls, on whatever thread polls it, so that
/// the layers and the handler inside read it with
/// [`current_criticality`](rampart_core::current_criticality) and
/// [`current_deadline`](rampart_core::current_deadline).
///
/// [`ServerContext`]: crate::http::ServerContext
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    /// The inner service's future.
    #[pin]
    inner: F,
    /// The context current while `inner` is polled.
    context: RequestContext,
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, context: RequestContext) -> Self {
        Self { inner, context }
    }

    /// The context the inner future runs in.
    pub fn context(&self) -> RequestContext {
        self.context
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.context.enter();
        this.inner.poll(cx)
    }
}

/// The response future of [`ClientContext`]: the inner service's, with the outgoing request's
/// [`RequestContext`] current during each of its polls and its error boxed; or, for a request
/// whose deadline left no time to send it, [`DeadlineExceeded`] at its first poll.
///
/// [`ClientContext`]: crate::http::ClientContext
#[pin_project]
#[derive(Debug)]
pub struct ClientResponseFuture<F> {
    /// The inner service's future; none when the request was not sent.
    #[pin]
    inner: Option<F>,
    /// The context current while `inner` is polled.
    context: RequestContext,
}

impl<F> ClientResponseFuture<F> {
    /// The future of a request sent: `inner`, polled in `context`.
    pub(super) fn sent(inner: F, context: RequestContext) -> Self {
        Self {
            inner: Some(inner),
            context,
        }
    }

    /// The future of a request not sent: its deadline left no time.
    pub(super) fn exceeded(context: RequestContext) -> Self {
        Self {
            inner: None,
            context,
        }
    }

    /// The context the inner future runs in.
    pub fn context(&self) -> RequestContext {
        self.context
    }
}

impl<F, T, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let _entered = this.context.enter();
                inner.poll(cx).map_err(Into::into)
            }
            None => Poll::Ready(Err(DeadlineExceeded::new().into())),
        }
    }
}
