//! [`ResponseFuture`]: the inner service's response future, polled with the request's context
//! current.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;
use rampart_core::RequestContext;

/// The response future of [`ServerContext`] and [`ClientContext`]: the inner service's, with
/// the request's [`RequestContext`] current during each of its polls, on whatever thread polls
/// it, so that the layers and the handler inside read it with
/// [`current_criticality`](rampart_core::current_criticality).
///
/// [`ServerContext`]: crate::http::ServerContext
/// [`ClientContext`]: crate::http::ClientContext
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
