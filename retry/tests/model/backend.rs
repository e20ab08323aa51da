//! The inner service of the retry model: its readiness, its calls and each attempt's end are
//! set by the test, and it logs every attempt (the request it carries, whether its future is
//! still alive).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub(crate) use rampart_testkit::held::Command;
use rampart_testkit::held::{self, CallLog, HeldCall};
use tower::{BoxError, Service};

/// One attempt as the backend saw it (there is one backend: `to` is nothing).
pub(crate) type Attempt = held::Call<()>;

/// The backend; clones share one readiness and one log of attempts.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    ready: Arc<AtomicBool>,
    log: CallLog<()>,
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

    /// Every attempt, in call order.
    pub(crate) fn log(&self) -> &CallLog<()> {
        &self.log
    }
}

impl Service<u32> for Backend {
    type Response = u32;
    type Error = BoxError;
    type Future = HeldCall<()>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.ready.load(Ordering::Relaxed) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, request: u32) -> HeldCall<()> {
        self.log.call(Attempt::new((), request))
    }
}
