//! What a model test needs besides its model: the run's size from the environment, a
//! proptest runner that prints the minimal failing sequence, a watchdog that turns a deadlock
//! into a failure, quiet injected panics, and polls that catch panics.
//!
//! Used by the model tests of the retry layer and of the balancer.

use std::fmt::Debug;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};

/// The message every injected panic starts with; other panics are reported as usual.
pub const INJECTED: &str = "injected panic";

/// How long a run may go without finishing an operation before it counts as deadlocked.
const STALL: Duration = Duration::from_secs(60);

/// The size of a run, from `RAMPART_MODEL_CASES` (sequences), `RAMPART_MODEL_OPS` (the
/// longest sequence; lengths are uniform up to it) and `RAMPART_MODEL_SEED`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The number of sequences.
    pub cases: u32,
    /// The longest sequence.
    pub max_ops: usize,
    /// The seed of the first sequence.
    pub seed: u64,
}

impl Settings {
    /// The defaults (`cases` sequences of up to `max_ops` operations, a fixed seed so that a
    /// failure reproduces), overridden by the environment.
    pub fn from_env(cases: u32, max_ops: usize) -> Self {
        Self {
            cases: env_or("RAMPART_MODEL_CASES", cases),
            max_ops: env_or("RAMPART_MODEL_OPS", max_ops),
            seed: env_or("RAMPART_MODEL_SEED", 0x5EED_0013),
        }
    }

    /// Whether the run is large enough that every coverage goal must have been met.
    pub fn is_full(&self) -> bool {
        self.cases >= 100 && self.max_ops >= 200
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// Counts finished operations, for the watchdog and the run's report.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// One more operation finished.
    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Operations finished so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `test` on `settings.cases` values of `strategy`, under a watchdog; panics with the
/// minimal failing value if one fails. Returns the operations performed (as counted by the
/// test through the `Progress` it is handed).
///
/// # Panics
///
/// If the test fails (with the minimal failing value) or the runner aborts.
pub fn run<S>(
    name: &str,
    settings: Settings,
    strategy: S,
    test: impl Fn(S::Value, &Progress) -> Result<(), TestCaseError>,
) -> u64
where
    S: Strategy,
    S::Value: Debug,
{
    quiet_injected_panics();
    let progress = Progress::default();
    let finished = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (progress, finished, name) = (progress.clone(), Arc::clone(&finished), name.to_owned());
        thread::spawn(move || watch(&name, &progress, &finished))
    };
    let mut runner = TestRunner::new(Config {
        cases: settings.cases,
        rng_seed: RngSeed::Fixed(settings.seed),
        // ChaCha, the default, takes most of a debug build's run.
        rng_algorithm: RngAlgorithm::XorShift,
        failure_persistence: None,
        max_shrink_iters: 100_000,
        max_shrink_time: 120_000,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| test(value, &progress));
    finished.store(true, Ordering::Relaxed);
    watchdog.thread().unpark();
    let _ = watchdog.join();
    match result {
        Ok(()) => progress.count(),
        Err(TestError::Fail(reason, value)) => panic!(
            "{name}: {reason}\nminimal failing case (RAMPART_MODEL_SEED={}): {value:?}",
            settings.seed
        ),
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

/// Aborts the process if `progress` stands still for `STALL`: a deadlock would otherwise hang
/// the test run without saying where.
fn watch(name: &str, progress: &Progress, finished: &AtomicBool) {
    let (mut last, mut since) = (progress.count(), Instant::now());
    while !finished.load(Ordering::Relaxed) {
        thread::park_timeout(Duration::from_millis(200));
        let now = progress.count();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > STALL && !finished.load(Ordering::Relaxed) {
            eprintln!("{name}: no operation finished in {STALL:?} (after {now}): deadlock");
            std::process::abort();
        }
    }
}

/// Keeps the default panic report for every panic but the injected ones (thousands per run).
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !message(info.payload()).starts_with(INJECTED) {
                report(info);
            }
        }));
    });
}

/// A panic's message.
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// What a poll (or a call) gave.
#[derive(Debug)]
pub enum Polled<T> {
    /// Ready with this output.
    Ready(T),
    /// Not ready.
    Pending,
    /// It panicked, with this message.
    Panicked(String),
}

/// Runs `f`, catching a panic.
///
/// # Errors
///
/// The panic's message, if `f` panicked.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(&*payload))
}

/// How a request is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// Its response future is dropped.
    Dropped,
    /// Its response future is dropped while the caller unwinds from a panic of its own (not
    /// the service's): still a cancellation.
    Unwound,
}

/// Drops `value` as `how` says.
///
/// # Panics
///
/// If the caller's own panic does not unwind (it always does).
pub fn cancel<T>(value: T, how: Cancellation) {
    match how {
        Cancellation::Dropped => drop(value),
        Cancellation::Unwound => {
            let unwound = caught(move || {
                let _held = value;
                panic!("{INJECTED} in the caller");
            });
            assert!(unwound.is_err(), "the caller's panic unwinds");
        }
    }
}

/// Polls `future` once with a waker that does nothing, catching a panic around the poll: the
/// future survives it and is dropped later, as panic-catching middleware does.
pub fn poll_catching<F: Future + ?Sized>(future: &mut Pin<Box<F>>) -> Polled<F::Output> {
    match caught(|| {
        future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }) {
        Ok(Poll::Ready(output)) => Polled::Ready(output),
        Ok(Poll::Pending) => Polled::Pending,
        Err(message) => Polled::Panicked(message),
    }
}

/// Polls `future` once, owning it while it is polled: if the poll panics the future is dropped
/// during the unwinding, as when nothing catches the panic. Gives the future back otherwise.
pub fn poll_unwinding<F: Future + ?Sized>(
    future: Pin<Box<F>>,
) -> (Option<Pin<Box<F>>>, Polled<F::Output>) {
    let polled = caught(move || {
        let mut future = future;
        let poll = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        (future, poll)
    });
    match polled {
        Ok((future, Poll::Ready(output))) => (Some(future), Polled::Ready(output)),
        Ok((future, Poll::Pending)) => (Some(future), Polled::Pending),
        Err(message) => (None, Polled::Panicked(message)),
    }
}

/// A current-thread runtime on tokio's paused clock, for one sequence.
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

/// Counts the situations a run must reach, so that a generator that stopped producing one
/// fails the run instead of silently testing less.
#[derive(Debug)]
pub struct Coverage<const N: usize> {
    names: [&'static str; N],
    counts: [AtomicU64; N],
}

impl<const N: usize> Coverage<N> {
    /// Goals with these names, none reached yet.
    pub fn new(names: [&'static str; N]) -> Self {
        Self {
            names,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Goal number `goal` reached once more.
    pub fn hit(&self, goal: usize) {
        self.counts[goal].fetch_add(1, Ordering::Relaxed);
    }

    /// Panics naming every goal never reached but the `excused` ones; returns the counts for
    /// the report.
    ///
    /// # Panics
    ///
    /// If a goal but the `excused` ones was never reached.
    pub fn assert_all_reached(&self, name: &str, excused: &[usize]) -> String {
        let counts: Vec<(&str, u64)> = self
            .names
            .iter()
            .zip(&self.counts)
            .enumerate()
            .filter(|(goal, _)| !excused.contains(goal))
            .map(|(_, (goal, count))| (*goal, count.load(Ordering::Relaxed)))
            .collect();
        let missed: Vec<&str> = counts
            .iter()
            .filter(|(_, count)| *count == 0)
            .map(|(goal, _)| *goal)
            .collect();
        assert!(missed.is_empty(), "{name}: never reached: {missed:?}");
        counts
            .iter()
            .map(|(goal, count)| format!("{goal} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
