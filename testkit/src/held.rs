//! The calls of a hand-driven inner service in a sequence model: each call is logged (where it
//! went, its request, whether its future is alive), its future stays pending until the test
//! commands how it ends, and the next call can be told to panic. Used by the retry layer's backend and the balancer's
//! endpoints.
//!
//! ```
//! use std::future::Future;
//! use std::task::{Context, Poll, Waker};
//!
//! use rampart_testkit::held::{Call, CallLog, Command};
//!
//! let log = CallLog::new();
//! let mut call = Box::pin(log.call(Call::new("primary", 7)));
//! let mut cx = Context::from_waker(Waker::noop());
//! assert!(call.as_mut().poll(&mut cx).is_pending(), "held until commanded");
//! log.command(0, Command::Succeed);
//! assert!(matches!(call.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
//! drop(call);
//! let ended = Call { live: false, ..Call::new("primary", 7) };
//! assert_eq!(log.calls(), [ended]);
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use rampart_core::Rejected;
use tower::BoxError;

use crate::model::INJECTED;

/// How a held call ends when next polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Not yet: the call is pending.
    Hold,
    /// `Ok(request)`.
    Succeed,
    /// An I/O error: a failure.
    Fail,
    /// A local rejection ([`Rejected`]): a failure that is the caller's own.
    Reject,
    /// The call's future panics (with the injected panic).
    Panic,
}

/// One call as the inner service saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<K> {
    /// Where it went, as the test tells its inner services apart (an instance, or nothing).
    pub to: K,
    /// The request it carries: a successful call answers with it.
    pub request: u32,
    /// Whether its future has not been dropped yet.
    pub live: bool,
}

impl<K> Call<K> {
    /// A call of `request` to `to`, its future alive.
    pub const fn new(to: K, request: u32) -> Self {
        Self {
            to,
            request,
            live: true,
        }
    }
}

#[derive(Debug)]
struct Board<K> {
    calls: Vec<Call<K>>,
    commands: Vec<Command>,
    panic_next_call: bool,
}

/// Every call made so far, in call order; clones share one log.
#[derive(Debug)]
pub struct CallLog<K> {
    board: Arc<Mutex<Board<K>>>,
}

impl<K> Clone for CallLog<K> {
    fn clone(&self) -> Self {
        Self {
            board: Arc::clone(&self.board),
        }
    }
}

impl<K: Clone> Default for CallLog<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// The log's lock; an injected panic never holds it, so poisoning means nothing here.
fn lock<K>(board: &Mutex<Board<K>>) -> MutexGuard<'_, Board<K>> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Clone> CallLog<K> {
    /// A log with no calls.
    pub fn new() -> Self {
        Self {
            board: Arc::new(Mutex::new(Board {
                calls: Vec::new(),
                commands: Vec::new(),
                panic_next_call: false,
            })),
        }
    }

    /// The next [`call`](Self::call) panics.
    pub fn arm_call_panic(&self) {
        lock(&self.board).panic_next_call = true;
    }

    /// Logs `call`; its future is pending until commanded otherwise.
    ///
    /// # Panics
    ///
    /// With the injected panic, instead of logging, if the call was told to panic.
    pub fn call(&self, call: Call<K>) -> HeldCall<K> {
        let mut board = lock(&self.board);
        if std::mem::take(&mut board.panic_next_call) {
            drop(board);
            panic!("{INJECTED} in call");
        }
        board.calls.push(call);
        board.commands.push(Command::Hold);
        HeldCall {
            call: board.calls.len() - 1,
            board: Arc::clone(&self.board),
        }
    }

    /// Call number `call` (in call order) ends as `command` when next polled.
    pub fn command(&self, call: usize, command: Command) {
        lock(&self.board).commands[call] = command;
    }

    /// Every call so far, in call order.
    pub fn calls(&self) -> Vec<Call<K>> {
        lock(&self.board).calls.clone()
    }
}

/// The future of one logged call.
#[derive(Debug)]
pub struct HeldCall<K> {
    call: usize,
    board: Arc<Mutex<Board<K>>>,
}

impl<K: Clone> Future for HeldCall<K> {
    type Output = Result<u32, BoxError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let board = lock(&self.board);
        let request = board.calls[self.call].request;
        match board.commands[self.call] {
            Command::Hold => Poll::Pending,
            Command::Succeed => Poll::Ready(Ok(request)),
            Command::Fail => Poll::Ready(Err(std::io::Error::other("connection reset").into())),
            Command::Reject => Poll::Ready(Err(Rejected::new().into())),
            Command::Panic => {
                drop(board);
                panic!("{INJECTED} in a response");
            }
        }
    }
}

impl<K> Drop for HeldCall<K> {
    fn drop(&mut self) {
        lock(&self.board).calls[self.call].live = false;
    }
}
