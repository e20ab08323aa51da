//! A hand-driven inner service: each call's response future stays pending until the test
//! decides its fate (succeed, fail or panic), and the next `call` itself can be told to panic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Once;
use std::task::{Context, Poll};

use proptest::prelude::{Just, Strategy, prop_oneof};
use tower::Service;

/// How a call of the [`Backend`] ends, once the test has decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Not decided: the call's future stays pending.
    Pending,
    /// The future resolves to `Ok(call id)`.
    Succeed,
    /// The future resolves to `Err(BackendError)`.
    Fail,
    /// Polling the future panics (with [`InjectedPanic`]).
    Panic,
}

/// How a decided call ends: mostly successes, often failures, sometimes panics.
pub fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        10 => Just(Fate::Succeed),
        7 => Just(Fate::Fail),
        3 => Just(Fate::Panic),
    ]
}

/// The payload of every panic the harness injects. The panic hook keeps quiet about it, and
/// [`catching`] catches only it: any other panic is a defect and fails the test.
#[derive(Debug)]
pub struct InjectedPanic;

/// The backend's own error, which the layers must pass through untouched.
#[derive(Debug, PartialEq, Eq)]
pub struct BackendError;

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the backend failed")
    }
}

impl std::error::Error for BackendError {}

#[derive(Debug, Default)]
struct State {
    not_ready: bool,
    panic_in_call: bool,
    /// Calls made so far; a call's id is the count before it.
    calls: u64,
    /// The fate of each call whose future is alive.
    alive: HashMap<u64, Fate>,
}

/// The inner service. Clones share one state: the test keeps a clone to steer the one
/// inside the layer.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    state: Rc<RefCell<State>>,
}

impl Backend {
    /// A ready backend with no calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `poll_ready` answer ready or pending.
    pub fn set_ready(&self, ready: bool) {
        self.state.borrow_mut().not_ready = !ready;
    }

    /// Whether `poll_ready` answers ready.
    pub fn is_ready(&self) -> bool {
        !self.state.borrow().not_ready
    }

    /// Makes every `call` panic (before creating a future) until told otherwise.
    pub fn set_panic_in_call(&self, panic: bool) {
        self.state.borrow_mut().panic_in_call = panic;
    }

    /// The number of calls made so far (including those that panicked).
    pub fn calls(&self) -> u64 {
        self.state.borrow().calls
    }

    /// The number of call futures alive (created and not yet dropped).
    pub fn alive(&self) -> usize {
        self.state.borrow().alive.len()
    }

    /// Decides how call `id` ends, if its future is still alive.
    pub fn decide(&self, id: u64, fate: Fate) {
        if let Some(slot) = self.state.borrow_mut().alive.get_mut(&id) {
            *slot = fate;
        }
    }
}

impl<R> Service<R> for Backend {
    type Response = u64;
    type Error = BackendError;
    type Future = BackendCall;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BackendError>> {
        if self.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _: R) -> BackendCall {
        let mut state = self.state.borrow_mut();
        let id = state.calls;
        state.calls += 1;
        if state.panic_in_call {
            drop(state);
            panic::panic_any(InjectedPanic);
        }
        state.alive.insert(id, Fate::Pending);
        BackendCall {
            id,
            state: Rc::clone(&self.state),
        }
    }
}

/// The future of one backend call.
#[derive(Debug)]
pub struct BackendCall {
    id: u64,
    state: Rc<RefCell<State>>,
}

impl Future for BackendCall {
    type Output = Result<u64, BackendError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let fate = self.state.borrow().alive.get(&self.id).copied();
        match fate {
            Some(Fate::Pending) => Poll::Pending,
            Some(Fate::Succeed) => Poll::Ready(Ok(self.id)),
            Some(Fate::Fail) => Poll::Ready(Err(BackendError)),
            Some(Fate::Panic) => panic::panic_any(InjectedPanic),
            None => unreachable!("a live call future has a fate"),
        }
    }
}

impl Drop for BackendCall {
    fn drop(&mut self) {
        self.state.borrow_mut().alive.remove(&self.id);
    }
}

/// Runs `f`, catching an [`InjectedPanic`] (`None`); any other panic goes on unwinding.
pub fn catching<T>(f: impl FnOnce() -> T) -> Option<T> {
    quiet_injected_panics();
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) if payload.is::<InjectedPanic>() => None,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Installs (once) a panic hook that prints every panic but the injected ones.
fn quiet_injected_panics() {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let report = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<InjectedPanic>() {
                report(info);
            }
        }));
    });
}
