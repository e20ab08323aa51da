//! The inner service of the retry model: its readiness, its calls and each attempt's end are
//! set by the test, and it logs every attempt (the request it carries, whether its future is
//! still alive).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use rampart_core::Rejected;
use tower::{BoxError, Service};

use crate::harness::INJECTED;

/// How an attempt ends when next polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Not yet: the attempt is pending.
    Hold,
    /// `Ok(request)`.
    Succeed,
    /// An I/O error: a failure worth retrying.
    Fail,
    /// A local rejection (`rampart_core::Rejected`): a failure never retried.
    Reject,
    /// The attempt's future panics.
    Panic,
}

/// One attempt as the backend saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The request it carries.
    pub(crate) request: u32,
    /// Whether its future has not been dropped yet.
    pub(crate) live: bool,
}

#[derive(Debug)]
struct Board {
    ready: bool,
    panic_next_call: bool,
    attempts: Vec<Attempt>,
    commands: Vec<Command>,
}

/// The backend; clones share one board.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    board: Arc<Mutex<Board>>,
}

impl Backend {
    /// A ready backend that has seen nothing.
    pub(crate) fn new() -> Self {
        Self {
            board: Arc::new(Mutex::new(Board {
                ready: true,
                panic_next_call: false,
                attempts: Vec::new(),
                commands: Vec::new(),
            })),
        }
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.board.lock().ready = ready;
    }

    /// The next `call` panics.
    pub(crate) fn arm_call_panic(&self) {
        self.board.lock().panic_next_call = true;
    }

    /// Attempt number `attempt` (in call order) ends as `command` when next polled.
    pub(crate) fn command(&self, attempt: usize, command: Command) {
        self.board.lock().commands[attempt] = command;
    }

    /// Every attempt so far, in call order.
    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        self.board.lock().attempts.clone()
    }
}

impl Service<u32> for Backend {
    type Response = u32;
    type Error = BoxError;
    type Future = AttemptFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.board.lock().ready {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, request: u32) -> AttemptFuture {
        let mut board = self.board.lock();
        if std::mem::take(&mut board.panic_next_call) {
            drop(board);
            panic!("{INJECTED} in call");
        }
        board.attempts.push(Attempt {
            request,
            live: true,
        });
        board.commands.push(Command::Hold);
        AttemptFuture {
            attempt: board.attempts.len() - 1,
            board: Arc::clone(&self.board),
        }
    }
}

/// The future of one attempt.
#[derive(Debug)]
pub(crate) struct AttemptFuture {
    attempt: usize,
    board: Arc<Mutex<Board>>,
}

impl Future for AttemptFuture {
    type Output = Result<u32, BoxError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let board = self.board.lock();
        let request = board.attempts[self.attempt].request;
        match board.commands[self.attempt] {
            Command::Hold => Poll::Pending,
            Command::Succeed => Poll::Ready(Ok(request)),
            Command::Fail => Poll::Ready(Err(std::io::Error::other("connection reset").into())),
            Command::Reject => Poll::Ready(Err(Rejected::new().into())),
            Command::Panic => {
                drop(board);
                panic!("{INJECTED} in an attempt");
            }
        }
    }
}

impl Drop for AttemptFuture {
    fn drop(&mut self) {
        self.board.lock().attempts[self.attempt].live = false;
    }
}
