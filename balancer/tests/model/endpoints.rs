//! The endpoints of the balancer model: services whose readiness, calls and responses are set
//! by the test. They log every `poll_ready` and every call, and report a call that no
//! `Ready` answer allowed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tower::{BoxError, Service};

use crate::harness::INJECTED;

/// What an endpoint's `poll_ready` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    Busy,
    /// An error: the balancer drops the endpoint.
    Broken,
}

/// How a call ends when next polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Hold,
    Succeed,
    Fail,
    Panic,
}

/// One call as the endpoints saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call {
    /// The service instance called.
    pub(crate) service: usize,
    pub(crate) request: u32,
    /// Whether its future has not been dropped yet.
    pub(crate) live: bool,
}

#[derive(Debug)]
struct Instance {
    readiness: Readiness,
    /// Whether its last `poll_ready` answered `Ready`, so that a call is allowed.
    granted: bool,
}

#[derive(Debug, Default)]
struct Board {
    instances: Vec<Instance>,
    calls: Vec<Call>,
    commands: Vec<Command>,
    /// `(instance, answer)` of every `poll_ready` since the last `take_polls`.
    polls: Vec<(usize, Readiness)>,
    panic_next_call: bool,
    violations: Vec<String>,
}

/// Every endpoint service instance, and what happened to them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoints {
    board: Arc<Mutex<Board>>,
}

impl Endpoints {
    /// A new service instance, answering `readiness`, and its number.
    pub(crate) fn instance(&self, readiness: Readiness) -> (usize, Endpoint) {
        let mut board = self.board.lock();
        board.instances.push(Instance {
            readiness,
            granted: false,
        });
        let instance = board.instances.len() - 1;
        let endpoint = Endpoint {
            instance,
            board: Arc::clone(&self.board),
        };
        (instance, endpoint)
    }

    pub(crate) fn set_readiness(&self, instance: usize, readiness: Readiness) {
        self.board.lock().instances[instance].readiness = readiness;
    }

    pub(crate) fn readiness(&self, instance: usize) -> Readiness {
        self.board.lock().instances[instance].readiness
    }

    /// The next call to any endpoint panics.
    pub(crate) fn arm_call_panic(&self) {
        self.board.lock().panic_next_call = true;
    }

    pub(crate) fn command(&self, call: usize, command: Command) {
        self.board.lock().commands[call] = command;
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.board.lock().calls.clone()
    }

    /// The `poll_ready` answers since the last time.
    pub(crate) fn take_polls(&self) -> Vec<(usize, Readiness)> {
        std::mem::take(&mut self.board.lock().polls)
    }

    /// Calls made without a `Ready` answer, described.
    pub(crate) fn violations(&self) -> Vec<String> {
        self.board.lock().violations.clone()
    }
}

/// One endpoint service instance.
#[derive(Debug)]
pub(crate) struct Endpoint {
    instance: usize,
    board: Arc<Mutex<Board>>,
}

impl Service<u32> for Endpoint {
    type Response = u32;
    type Error = BoxError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let mut board = self.board.lock();
        let readiness = board.instances[self.instance].readiness;
        board.instances[self.instance].granted = readiness == Readiness::Ready;
        board.polls.push((self.instance, readiness));
        match readiness {
            Readiness::Ready => Poll::Ready(Ok(())),
            Readiness::Busy => Poll::Pending,
            Readiness::Broken => Poll::Ready(Err("endpoint broken".into())),
        }
    }

    fn call(&mut self, request: u32) -> CallFuture {
        let mut board = self.board.lock();
        if !std::mem::take(&mut board.instances[self.instance].granted) {
            let violation = format!(
                "request {request} sent to instance {} without a Ready answer",
                self.instance
            );
            board.violations.push(violation);
        }
        if std::mem::take(&mut board.panic_next_call) {
            drop(board);
            panic!("{INJECTED} in call");
        }
        board.calls.push(Call {
            service: self.instance,
            request,
            live: true,
        });
        board.commands.push(Command::Hold);
        CallFuture {
            call: board.calls.len() - 1,
            board: Arc::clone(&self.board),
        }
    }
}

/// The future of one call.
#[derive(Debug)]
pub(crate) struct CallFuture {
    call: usize,
    board: Arc<Mutex<Board>>,
}

impl Future for CallFuture {
    type Output = Result<u32, BoxError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let board = self.board.lock();
        let request = board.calls[self.call].request;
        match board.commands[self.call] {
            Command::Hold => Poll::Pending,
            Command::Succeed => Poll::Ready(Ok(request)),
            Command::Fail => Poll::Ready(Err(std::io::Error::other("connection reset").into())),
            Command::Panic => {
                drop(board);
                panic!("{INJECTED} in a response");
            }
        }
    }
}

impl Drop for CallFuture {
    fn drop(&mut self) {
        self.board.lock().calls[self.call].live = false;
    }
}
