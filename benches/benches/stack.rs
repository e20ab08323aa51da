//! A whole client stack per request: rampart's retry (`RatioBudget`) → breaker (`Adaptive`) →
//! P2C (`PeakSuccess`) over 10 endpoints, against the same stack from tower's built-ins:
//! `Retry` with `TpsBudget` → `Buffer` → `Balance` over `PeakEwma`.
//!
//! tower's `Balance` and rampart's `P2c` are not `Clone` and retries need a clonable inner
//! service, so those stacks put a `Buffer` in front of the balancer, as applications do;
//! rampart's `SharedP2c` is a `Clone` handle and needs none (`rampart/retry_breaker_shared_p2c`).
//! Each request succeeds at once. Every row sends its requests in a loop inside a task of the
//! runtime, a clone of the stack per request as a handler that owns no client does, and times
//! the loop: what a `block_on` per request would add (entering the runtime, a waker) is no
//! part of a server's handlers. `floor/buffer_one_endpoint` is a `Buffer` over a single
//! endpoint, the cost a stack with a `Buffer` cannot avoid; `floor/bare_one_endpoint` the
//! endpoint alone. The targets: the shared stack at most 0.3× tower's and 0.5× the
//! `Buffer` floor.
//!
//! The `stack` group runs on a current-thread runtime. The `stack_tasks` group shares one
//! stack between the tasks of a two-worker runtime, one task per worker: each of `1_task` and
//! `2_tasks` sends `iters` requests per task, and the row's throughput counts the requests of
//! all its tasks. With no `Buffer`, two tasks should come close to twice one task's
//! throughput (the target: 1.7×); a `Buffer` sends every request through its one worker task.
//! Beside the stacks: the bare endpoint (what two workers give when they share nothing), the
//! `Buffer` floor, and the shared balancer alone (`rampart/shared_p2c`, a clone per request;
//! `rampart/shared_p2c_kept`, one clone per task for all its requests), which tells the
//! balancer's own scaling from the layers', and the shared stack kept by each task
//! (`rampart/retry_breaker_shared_p2c_kept`), which tells what the clones' reference counts
//! cost.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_balancer::{P2c, P2cConfig, SharedP2c};
use rampart_benches::{TpsPolicy, endpoints};
use rampart_breaker::{BreakerConfig, BreakerLayer};
use rampart_retry::{RatioConfig, RetryConfig, RetryLayer};
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::{BoxError, Layer, Service, ServiceExt};

const ENDPOINTS: usize = 10;
const BUFFER: usize = 1_024;

/// tower's stack: retry → `Buffer` → `Balance` over `PeakEwma`. Builds its `Buffer`'s worker
/// on the runtime entered.
fn tower_stack() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send
{
    let balance = Balance::new(PeakEwmaDiscover::new(
        ServiceList::new::<u32>(endpoints(ENDPOINTS)),
        Duration::from_millis(10),
        Duration::from_millis(600),
        CompleteOnResponse::default(),
    ));
    tower::retry::RetryLayer::new(TpsPolicy::new()).layer(Buffer::new(balance, BUFFER))
}

/// rampart's retry and breaker layers over `inner`.
fn rampart_layers<S>(
    inner: S,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send
where
    S: Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + 'static,
{
    let breaker = BreakerConfig::default().build().expect("valid");
    let retry = RetryLayer::new(
        RetryConfig::default(),
        RatioConfig::default().build().expect("valid"),
    )
    .expect("valid");
    retry.layer(BreakerLayer::from_breaker(Arc::new(breaker)).layer(inner))
}

/// rampart's stack with `P2c` behind a `Buffer`. Builds the worker on the runtime entered.
fn buffered_stack()
-> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
    let balancer =
        P2c::from_services(endpoints(ENDPOINTS), P2cConfig::default().with_seed(1)).expect("valid");
    rampart_layers(Buffer::new(balancer, BUFFER))
}

/// rampart's stack with the shared handle: no `Buffer`. No seed: the clones of a seeded
/// handle number their draws on a counter every clone writes.
fn shared_stack() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send
{
    let balancer =
        SharedP2c::from_services(endpoints(ENDPOINTS), P2cConfig::default()).expect("valid");
    rampart_layers(balancer)
}

fn stacks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let mut group = c.benchmark_group("stack");
    group.throughput(Throughput::Elements(1));
    let mut row = |name: &str, stack: &dyn Fn(u64) -> Duration| {
        group.bench_function(name, |b| b.iter_custom(stack));
    };

    let floor = Buffer::new(endpoints(1).remove(0), BUFFER);
    row("floor/buffer_one_endpoint", &|iters| {
        run_tasks(&runtime, &floor, 1, iters, false)
    });
    let bare = endpoints(1).remove(0);
    row("floor/bare_one_endpoint", &|iters| {
        run_tasks(&runtime, &bare, 1, iters, false)
    });
    let tower_stack = tower_stack();
    row("tower/retry_tps_balance_peak_ewma", &|iters| {
        run_tasks(&runtime, &tower_stack, 1, iters, false)
    });
    let rampart_stack = buffered_stack();
    row("rampart/retry_breaker_p2c", &|iters| {
        run_tasks(&runtime, &rampart_stack, 1, iters, false)
    });
    let shared = shared_stack();
    row("rampart/retry_breaker_shared_p2c", &|iters| {
        run_tasks(&runtime, &shared, 1, iters, false)
    });
    group.finish();
}

/// The time `tasks` tasks of `runtime` take to send `iters` requests each through `stack`,
/// started together. The tasks are spawned from outside the runtime and wait for each other
/// at a blocking barrier, so that on a runtime with as many workers as tasks each runs on its
/// own worker (tasks started by an asynchronous barrier are woken by whichever task arrives
/// last, into its worker's next-task slot, which no other worker steals: the loops, which
/// never yield, would run one after the other). With `kept`, each task keeps one clone for
/// all its requests (`ready`, then `call`); otherwise it clones the stack per request, as a
/// handler that owns no client does.
fn run_tasks<S>(
    runtime: &tokio::runtime::Runtime,
    stack: &S,
    tasks: usize,
    iters: u64,
    kept: bool,
) -> Duration
where
    S: Service<u32, Response = u32, Future: Send> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
{
    let start = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (mut service, start) = (stack.clone(), Arc::clone(&start));
            runtime.spawn(async move {
                if tasks > 1 {
                    // Blocking in place hands the worker's queued tasks (perhaps another of
                    // these) to another thread, so the barrier cannot wait for a task queued
                    // behind it.
                    tokio::task::block_in_place(|| start.wait());
                }
                let began = Instant::now();
                for _ in 0..iters {
                    let answered = if kept {
                        let ready = service.ready().await.ok().expect("always ready");
                        ready.call(black_box(1)).await.is_ok()
                    } else {
                        service.clone().oneshot(black_box(1)).await.is_ok()
                    };
                    black_box(answered);
                }
                began.elapsed()
            })
        })
        .collect();
    runtime.block_on(async {
        let mut slowest = Duration::ZERO;
        for handle in handles {
            slowest = slowest.max(handle.await.expect("no panic"));
        }
        slowest
    })
}

fn shared_between_tasks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let mut group = c.benchmark_group("stack_tasks");
    let bare = endpoints(1).remove(0);
    let floor = Buffer::new(endpoints(1).remove(0), BUFFER);
    let balancer =
        SharedP2c::from_services(endpoints(ENDPOINTS), P2cConfig::default()).expect("valid");
    let tower_stack = tower_stack();
    let buffered = buffered_stack();
    let shared = shared_stack();
    for threads in [1_usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        let label = if threads == 1 { "1_task" } else { "2_tasks" };
        let mut row = |name: &str, kept: bool, stack: &dyn Fn(u64, bool) -> Duration| {
            group.bench_function(format!("{name}/{label}"), |b| {
                b.iter_custom(|iters| stack(iters, kept));
            });
        };
        row("floor/bare_one_endpoint", false, &|iters, kept| {
            run_tasks(&runtime, &bare, threads, iters, kept)
        });
        row("floor/buffer_one_endpoint", false, &|iters, kept| {
            run_tasks(&runtime, &floor, threads, iters, kept)
        });
        row("rampart/shared_p2c", false, &|iters, kept| {
            run_tasks(&runtime, &balancer, threads, iters, kept)
        });
        row("rampart/shared_p2c_kept", true, &|iters, kept| {
            run_tasks(&runtime, &balancer, threads, iters, kept)
        });
        row(
            "tower/retry_tps_balance_peak_ewma",
            false,
            &|iters, kept| run_tasks(&runtime, &tower_stack, threads, iters, kept),
        );
        row("rampart/retry_breaker_p2c", false, &|iters, kept| {
            run_tasks(&runtime, &buffered, threads, iters, kept)
        });
        row("rampart/retry_breaker_shared_p2c", false, &|iters, kept| {
            run_tasks(&runtime, &shared, threads, iters, kept)
        });
        row(
            "rampart/retry_breaker_shared_p2c_kept",
            true,
            &|iters, kept| run_tasks(&runtime, &shared, threads, iters, kept),
        );
    }
    group.finish();
}

criterion_group!(benches, stacks, shared_between_tasks);
criterion_main!(benches);
