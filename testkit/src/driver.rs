//! Driving response futures by hand (poll once, with an injected panic caught around the poll
//! or unwinding through the future's owner), the number of cases, and the deadlock watchdog.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::backend::catching;

/// Cases per property unless `RAMPART_MODEL_CASES` says otherwise: with sequences of a
/// random length up to 840, 320 cases run about 1.2 × 10⁵ operations, well clear of the
/// minimum (256 fell below it about one run in thirty).
pub const DEFAULT_CASES: u32 = 320;
/// The fewest operations a default run must execute per property.
pub const MIN_DEFAULT_OPERATIONS: u64 = 100_000;
/// Shrinking steps on a failure: sequences are long, and a short failing one is worth a wait.
const MAX_SHRINK_ITERS: u32 = 20_000;
/// How long the harness may go without finishing a step before it reports a deadlock.
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// What one poll of a response future gave.
#[derive(Debug)]
pub enum Polled<T> {
    /// Not ready.
    Pending,
    /// Ready with this output.
    Ready(T),
    /// The poll panicked (an injected panic).
    Panicked,
}

/// Polls `future` once with a no-op waker, catching an injected panic around the poll: the
/// future survives the panic, for the caller to drop later (as panic-catching middleware does).
pub fn poll_caught<F: Future>(future: &mut Pin<Box<F>>) -> Polled<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match catching(|| future.as_mut().poll(&mut cx)) {
        Some(Poll::Ready(output)) => Polled::Ready(output),
        Some(Poll::Pending) => Polled::Pending,
        None => Polled::Panicked,
    }
}

/// Polls `future` once inside a closure that owns it: an injected panic drops the future
/// while unwinding. Returns the future if it is still pending.
pub fn poll_owned<F: Future>(future: Pin<Box<F>>) -> (Option<Pin<Box<F>>>, Polled<F::Output>) {
    let mut cx = Context::from_waker(Waker::noop());
    let polled = catching(move || {
        let mut future = future;
        let poll = future.as_mut().poll(&mut cx);
        (future, poll)
    });
    match polled {
        Some((future, Poll::Pending)) => (Some(future), Polled::Pending),
        Some((_, Poll::Ready(output))) => (None, Polled::Ready(output)),
        None => (None, Polled::Panicked),
    }
}

/// `RAMPART_MODEL_CASES`, or [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("RAMPART_MODEL_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Counts the operations a property executes, across cases.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    operations: Arc<AtomicU64>,
}

impl Progress {
    /// One more operation done.
    pub fn step(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
    }

    /// Operations done so far.
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }
}

/// Runs the property `test` over the strategy `strategy()` makes, with [`cases`] cases, on a
/// thread watched for deadlocks: if no operation completes for two minutes, the test fails
/// instead of hanging. With the default number of cases, also checks that at least
/// [`MIN_DEFAULT_OPERATIONS`] operations ran.
///
/// # Panics
///
/// If the property fails (with the minimal failing case), stalls, or runs too few operations.
pub fn run_property<S, F>(name: &str, strategy: impl FnOnce() -> S + Send + 'static, test: F)
where
    S: proptest::strategy::Strategy,
    F: Fn(S::Value, &Progress) -> Result<(), TestCaseError> + Send + 'static,
{
    let progress = Progress::default();
    let cases = cases();
    let (done, finished) = mpsc::channel();
    let watched = progress.clone();
    let worker = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut runner = TestRunner::new(Config {
                cases,
                failure_persistence: None,
                max_shrink_iters: MAX_SHRINK_ITERS,
                ..Config::default()
            });
            let result = runner
                .run(&strategy(), |value| test(value, &watched))
                .map_err(|failure| failure.to_string());
            let _ = done.send(());
            result
        })
        .expect("the property's thread starts");
    let mut last = (progress.operations(), 0_u32);
    loop {
        match finished.recv_timeout(Duration::from_secs(1)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let now = progress.operations();
                last = if now == last.0 {
                    (now, last.1 + 1)
                } else {
                    (now, 0)
                };
                assert!(
                    Duration::from_secs(last.1.into()) < STALL_LIMIT,
                    "{name}: no operation completed for {STALL_LIMIT:?} (deadlock?)"
                );
            }
        }
    }
    match worker.join() {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => panic!("{name}: {failure}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
    if cases == DEFAULT_CASES {
        assert!(
            progress.operations() >= MIN_DEFAULT_OPERATIONS,
            "{name}: only {} operations ran",
            progress.operations()
        );
    }
}
