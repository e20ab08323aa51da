//! An inner service whose calls all stay pending until the test gives one verdict for all of
//! them: succeed, fail or panic. For tests that poll a layer's futures by hand and decide
//! exactly when and how each request ends.
//!
//! ```
//! use std::future::Future;
//! use std::task::{Context, Waker};
//!
//! use rampart_testkit::verdict::{Undecided, Verdict};
//! use tower::Service;
//!
//! let backend = Undecided::default();
//! let mut call = Box::pin(backend.clone().call(()));
//! let mut cx = Context::from_waker(Waker::noop());
//! assert!(call.as_mut().poll(&mut cx).is_pending(), "no verdict yet");
//! backend.decide(Verdict::Fail);
//! assert!(matches!(call.as_mut().poll(&mut cx), std::task::Poll::Ready(Err(_))));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use tower::Service;

use crate::model::INJECTED;

/// How every call of an [`Undecided`] ends when next polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    /// Not yet: calls stay pending.
    Wait,
    /// `Ok(())`.
    Succeed,
    /// An I/O error.
    Fail,
    /// Polling a call panics (with the injected panic).
    Panic,
}

/// The service; clones share one verdict, so the test keeps one to decide for the one inside
/// the layer. Always ready.
#[derive(Debug, Clone, Default)]
pub struct Undecided {
    verdict: Arc<AtomicU8>,
}

impl Undecided {
    /// From now on, every call (made or to come) ends as `verdict` when next polled.
    pub fn decide(&self, verdict: Verdict) {
        self.verdict.store(verdict as u8, Ordering::Relaxed);
    }
}

impl Service<()> for Undecided {
    type Response = ();
    type Error = std::io::Error;
    type Future = UndecidedCall;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> UndecidedCall {
        UndecidedCall {
            verdict: Arc::clone(&self.verdict),
        }
    }
}

/// One call to an [`Undecided`].
#[derive(Debug)]
pub struct UndecidedCall {
    verdict: Arc<AtomicU8>,
}

impl Future for UndecidedCall {
    type Output = Result<(), std::io::Error>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let verdict = self.verdict.load(Ordering::Relaxed);
        if verdict == Verdict::Wait as u8 {
            Poll::Pending
        } else if verdict == Verdict::Succeed as u8 {
            Poll::Ready(Ok(()))
        } else if verdict == Verdict::Fail as u8 {
            Poll::Ready(Err(std::io::Error::other("backend down")))
        } else {
            panic!("{INJECTED} in a response");
        }
    }
}
