//! The calls of a hand-driven inner service in a sequence model: each call is logged with a
//! record the test chooses, its future stays pending until the test commands how it ends, and
//! the next call can be told to panic. Used by the retry layer's backend and the balancer's
//! endpoints.
//!
//! ```
//! use std::future::Future;
//! use std::task::{Context, Poll, Waker};
//!
//! use rampart_testkit::held::{CallLog, Command, Record};
//!
//! #[derive(Debug, Clone, PartialEq)]
//! struct Seen {
//!     request: u32,
//!     live: bool,
//! }
//!
//! impl Record for Seen {
//!     fn request(&self) -> u32 {
//!         self.request
//!     }
//!
//!     fn dropped(&mut self) {
//!         self.live = false;
//!     }
//! }
//!
//! let log = CallLog::new();
//! let mut call = Box::pin(log.call(Seen { request: 7, live: true }));
//! let mut cx = Context::from_waker(Waker::noop());
//! assert!(call.as_mut().poll(&mut cx).is_pending(), "held until commanded");
//! log.command(0, Command::Succeed);
//! assert!(matches!(call.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
//! drop(call);
//! assert_eq!(log.records(), [Seen { request: 7, live: false }]);
//! ```

use std::fmt::Debug;
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

/// What the log keeps of one call.
pub trait Record: Clone + Debug {
    /// The request the call carries: a successful call answers with it.
    fn request(&self) -> u32;

    /// The call's future has been dropped.
    fn dropped(&mut self);
}

#[derive(Debug)]
struct Board<T> {
    records: Vec<T>,
    commands: Vec<Command>,
    panic_next_call: bool,
}

/// Every call made so far, in call order; clones share one log.
#[derive(Debug)]
pub struct CallLog<T> {
    board: Arc<Mutex<Board<T>>>,
}

impl<T> Clone for CallLog<T> {
    fn clone(&self) -> Self {
        Self {
            board: Arc::clone(&self.board),
        }
    }
}

impl<T: Record> Default for CallLog<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The log's lock; an injected panic never holds it, so poisoning means nothing here.
fn lock<T>(board: &Mutex<Board<T>>) -> MutexGuard<'_, Board<T>> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Record> CallLog<T> {
    /// A log with no calls.
    pub fn new() -> Self {
        Self {
            board: Arc::new(Mutex::new(Board {
                records: Vec::new(),
                commands: Vec::new(),
                panic_next_call: false,
            })),
        }
    }

    /// The next [`call`](Self::call) panics.
    pub fn arm_call_panic(&self) {
        lock(&self.board).panic_next_call = true;
    }

    /// Logs a call described by `record`; its future is pending until commanded otherwise.
    ///
    /// # Panics
    ///
    /// With the injected panic, instead of logging, if the call was told to panic.
    pub fn call(&self, record: T) -> HeldCall<T> {
        let mut board = lock(&self.board);
        if std::mem::take(&mut board.panic_next_call) {
            drop(board);
            panic!("{INJECTED} in call");
        }
        board.records.push(record);
        board.commands.push(Command::Hold);
        HeldCall {
            call: board.records.len() - 1,
            board: Arc::clone(&self.board),
        }
    }

    /// Call number `call` (in call order) ends as `command` when next polled.
    pub fn command(&self, call: usize, command: Command) {
        lock(&self.board).commands[call] = command;
    }

    /// Every call so far, in call order.
    pub fn records(&self) -> Vec<T> {
        lock(&self.board).records.clone()
    }
}

/// The future of one logged call.
#[derive(Debug)]
pub struct HeldCall<T: Record> {
    call: usize,
    board: Arc<Mutex<Board<T>>>,
}

impl<T: Record> Future for HeldCall<T> {
    type Output = Result<u32, BoxError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let board = lock(&self.board);
        let request = board.records[self.call].request();
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

impl<T: Record> Drop for HeldCall<T> {
    fn drop(&mut self) {
        lock(&self.board).records[self.call].dropped();
    }
}
