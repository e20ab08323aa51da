//! Shared pieces of rampart's criterion benchmarks.
//!
//! Every group that claims a speed measures its floors beside it, in the same run: the
//! cheapest possible implementation of the same work (an `AtomicU64::fetch_add`, a
//! `parking_lot::Mutex` add, each clock source) and, for the layers, a bare service and the
//! tower equivalent. Compare rows of one run only; these machines are noisy.
#![deny(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use rampart_core::{Clock, CoarseClock, Stripes, SystemClock, TokioClock};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use tower::retry::budget::{Budget, TpsBudget};

/// Adds the floor rows to `group`: one relaxed `fetch_add`, one `parking_lot::Mutex` add, one
/// read of every clock source, and the lookup of the calling thread's stripe (which every
/// window record and every per-stripe count makes).
pub fn floors(group: &mut BenchmarkGroup<'_, WallTime>) {
    let counter = AtomicU64::new(0);
    group.bench_function("floor/atomic_fetch_add", |b| {
        b.iter(|| counter.fetch_add(black_box(1), Ordering::Relaxed));
    });
    let locked = parking_lot::Mutex::new(0_u64);
    group.bench_function("floor/mutex_add", |b| {
        b.iter(|| *locked.lock() += black_box(1));
    });
    clocks(group, "floor/clock");
    group.bench_function("floor/thread_stripe", |b| {
        b.iter(|| Stripes::thread_stripe(black_box(8)));
    });
}

/// A service that answers each request at once with the request itself: the inner service of
/// every layer benchmark.
pub fn backend()
-> impl tower::Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone {
    tower::service_fn(|request: u32| std::future::ready(Ok::<_, Infallible>(request)))
}

/// An endpoint of the balancer benchmarks: answers each request at once with the request
/// itself, like [`backend`], as a nameable type a `Vec` of endpoints can hold.
pub type Endpoint = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>>;

/// `n` [`Endpoint`]s.
pub fn endpoints(n: usize) -> Vec<Endpoint> {
    let answer: fn(u32) -> std::future::Ready<Result<u32, Infallible>> =
        |request| std::future::ready(Ok(request));
    (0..n).map(|_| tower::service_fn(answer)).collect()
}

/// tower's usual retry policy over a [`TpsBudget`]: deposit on success, withdraw to retry, up
/// to three attempts in all. The tower baseline of every retry benchmark.
#[derive(Debug, Clone)]
pub struct TpsPolicy {
    budget: Arc<TpsBudget>,
    attempts: u32,
}

impl TpsPolicy {
    /// A policy over a fresh `TpsBudget::default()`.
    pub fn new() -> Self {
        Self {
            budget: Arc::new(TpsBudget::default()),
            attempts: 1,
        }
    }
}

impl Default for TpsPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> tower::retry::Policy<u32, u32, E> for TpsPolicy {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _: &mut u32, result: &mut Result<u32, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts < 3 && self.budget.withdraw() => {
                self.attempts += 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, request: &u32) -> Option<u32> {
        Some(*request)
    }
}

/// Adds a layer benchmark's baselines to `group`: a [`SystemClock`] read
/// (`floor/system_clock_now`), the bare [`backend`] (`floor/bare_service`) and tower's
/// `ConcurrencyLimit` over it (`tower/concurrency_limit`).
pub fn layer_floors(group: &mut BenchmarkGroup<'_, WallTime>) {
    let clock = SystemClock::new();
    group.bench_function("floor/system_clock_now", |b| b.iter(|| clock.now()));

    let mut bare = backend();
    group.bench_function("floor/bare_service", |b| {
        b.iter(|| call_ready(&mut bare, black_box(1)));
    });

    let mut limited = ConcurrencyLimitLayer::new(1_000).layer(backend());
    group.bench_function("tower/concurrency_limit", |b| {
        b.iter(|| call_ready(&mut limited, black_box(1)));
    });
}

/// [`SystemClock`] with no recent time of its own: every read, [`recent`](Clock::recent)
/// included, is a time-stamp counter read. What the layers that place events in buckets read
/// before they read the recent time: the baseline of the default clock's rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreciseClock(SystemClock);

impl PreciseClock {
    /// The process's system clock, read precisely.
    pub fn new() -> Self {
        Self(SystemClock::new())
    }
}

impl Clock for PreciseClock {
    #[inline]
    fn now(&self) -> std::time::Duration {
        self.0.now()
    }
}

/// Adds one row per clock source, named `{prefix}/{source}`.
pub fn clocks(group: &mut BenchmarkGroup<'_, WallTime>, prefix: &str) {
    group.bench_function(format!("{prefix}/std_instant_now"), |b| {
        b.iter(Instant::now);
    });
    let tsc = quanta::Clock::new();
    group.bench_function(format!("{prefix}/quanta_tsc"), |b| b.iter(|| tsc.now()));
    let system = SystemClock::new();
    group.bench_function(format!("{prefix}/system_clock"), |b| {
        b.iter(|| system.now());
    });
    group.bench_function(format!("{prefix}/system_clock_recent"), |b| {
        b.iter(|| system.recent());
    });
    let coarse = CoarseClock::new();
    group.bench_function(format!("{prefix}/coarse_clock"), |b| {
        b.iter(|| coarse.now());
    });
    let tokio = TokioClock::new();
    group.bench_function(format!("{prefix}/tokio_clock"), |b| b.iter(|| tokio.now()));
}

/// Drives one request through `service` without a runtime: `poll_ready`, `call`, and one poll
/// of the response future, all of which must complete at once (benchmarked services answer
/// immediately). Returns whether the response was `Ok`.
///
/// Every row of a layer benchmark goes through this, so rows differ only by the layer.
///
/// # Panics
///
/// If the service is not ready at once or its response is not ready at once: such a service
/// cannot be measured this way.
#[inline]
pub fn call_ready<S, Req>(service: &mut S, request: Req) -> bool
where
    S: tower::Service<Req>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(_)) => return false,
        Poll::Pending => panic!("benchmarked services are always ready"),
    }
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(result) => black_box(result.is_ok()),
        Poll::Pending => panic!("benchmarked services answer at once"),
    }
}

/// Runs `op` `iters` times on each of two threads started together; returns the slower
/// thread's time, so that a row reads as the time of one operation while another thread does
/// the same to the same state.
///
/// # Panics
///
/// If a benchmark thread panics.
pub fn contended(iters: u64, op: impl Fn() + Send + Sync + 'static) -> std::time::Duration {
    use std::sync::{Arc, Barrier};
    let op = Arc::new(op);
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (op, start) = (Arc::clone(&op), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                for _ in 0..iters {
                    op();
                }
                began.elapsed()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("benchmark thread panicked"))
        .max()
        .unwrap_or_default()
}
