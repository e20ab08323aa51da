//! The endpoints of the balancer model: services whose readiness, calls and responses are set
//! by the test. They log every `poll_ready` and every call, and report a call that no
//! `Ready` answer allowed.

use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
pub(crate) use rampart_testkit::held::Command;
use rampart_testkit::held::{self, CallLog, HeldCall};
use tower::{BoxError, Service};

/// What an endpoint's `poll_ready` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    Busy,
    /// An error: the balancer drops the endpoint.
    Broken,
}

/// One call as the endpoints saw it: `to` is the service instance called.
pub(crate) type Call = held::Call<usize>;

/// The future of one call.
pub(crate) type CallFuture = HeldCall<usize>;

#[derive(Debug)]
struct Instance {
    readiness: Readiness,
    /// Whether its last `poll_ready` answered `Ready`, so that a call is allowed.
    granted: bool,
}

#[derive(Debug, Default)]
struct Board {
    instances: Vec<Instance>,
    /// `(instance, answer)` of every `poll_ready` since the last `take_polls`.
    polls: Vec<(usize, Readiness)>,
    violations: Vec<String>,
}

/// Every endpoint service instance, and what happened to them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoints {
    board: Arc<Mutex<Board>>,
    log: CallLog<usize>,
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
            log: self.log.clone(),
        };
        (instance, endpoint)
    }

    pub(crate) fn set_readiness(&self, instance: usize, readiness: Readiness) {
        self.board.lock().instances[instance].readiness = readiness;
    }

    pub(crate) fn readiness(&self, instance: usize) -> Readiness {
        self.board.lock().instances[instance].readiness
    }

    /// The calls to every endpoint, in call order.
    pub(crate) fn log(&self) -> &CallLog<usize> {
        &self.log
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
    log: CallLog<usize>,
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
        drop(board);
        self.log.call(Call::new(self.instance, request))
    }
}
