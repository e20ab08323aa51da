//! Driving a service by hand: one poll with a waker that does nothing, and a service whose
//! `call` panics.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tower::Service;

/// Polls `future` once, with a waker that does nothing.
pub fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// A service whose `call` panics (with "bug in call"); it is always ready.
#[derive(Debug, Clone)]
pub struct PanicsInCall;

impl Service<()> for PanicsInCall {
    type Response = ();
    type Error = Infallible;
    type Future = std::future::Ready<Result<(), Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        panic!("bug in call");
    }
}
