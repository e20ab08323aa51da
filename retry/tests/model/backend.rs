//! The inner service of the retry model: its readiness, its calls and each attempt's end are
//! set by the test, and it logs every attempt (the request it carries, whether its future is
//! still alive).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub(crate) use rampart_testkit::held::Command;
use rampart_testkit::held::{CallLog, HeldCall, Record};
use tower::{BoxError, Service};

/// One attempt as the backend saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The request it carries.
    pub(crate) request: u32,
    /// Whether its future has not been dropped yet.
    pub(crate) live: bool,
}

impl Record for Attempt {
    fn request(&self) -> u32 {
        self.request
    }

    fn dropped(&mut self) {
        self.live = false;
    }
}

/// The backend; clones share one readiness and one log of attempts.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    ready: Arc<AtomicBool>,
    log: CallLog<Attempt>,
}

impl Backend {
    /// A ready backend that has seen nothing.
    pub(crate) fn new() -> Self {
        Self {
            ready: Arc::new(AtomicBool::new(true)),
            log: CallLog::new(),
        }
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The next `call` panics.
    pub(crate) fn arm_call_panic(&self) {
        self.log.arm_call_panic();
    }

    /// Attempt number `attempt` (in call order) ends as `command` when next polled.
    pub(crate) fn command(&self, attempt: usize, command: Command) {
        self.log.command(attempt, command);
    }

    /// Every attempt so far, in call order.
    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        self.log.records()
    }
}

impl Service<u32> for Backend {
    type Response = u32;
    type Error = BoxError;
    type Future = HeldCall<Attempt>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.ready.load(Ordering::Relaxed) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, request: u32) -> HeldCall<Attempt> {
        self.log.call(Attempt {
            request,
            live: true,
        })
    }
}
