//! A whole client stack per request: rampart's retry (`RatioBudget`) → breaker (`Adaptive`) →
//! P2C (`PeakSuccess`) over 10 endpoints, against the same stack from tower's built-ins:
//! `Retry` with `TpsBudget` → `Buffer` → `Balance` over `PeakEwma`.
//!
//! tower's `Balance` and rampart's `P2c` are not `Clone` and retries need a clonable inner
//! service, so those stacks put a `Buffer` in front of the balancer, as applications do;
//! rampart's `SharedP2c` is a `Clone` handle and needs none (`rampart/retry_breaker_shared_p2c`).
//! Each iteration sends one request that succeeds at once and waits for its answer on a
//! current-thread runtime; the `floor/buffer_one_endpoint` row is that loop around a `Buffer`
//! over a single endpoint, the cost a stack with a `Buffer` cannot avoid, and
//! `floor/bare_one_endpoint` the loop around the endpoint alone: the runtime's `block_on`, which
//! every row pays. The targets: the shared stack at most 0.3× tower's and 0.5× the
//! `Buffer` floor.
//!
//! The `stack_tasks` group shares one stack between tasks of a two-thread runtime: each of
//! `1_task` and `2_tasks` sends `iters` requests per task in a loop, and the row's throughput
//! counts the requests of all its tasks. With no `Buffer`, two tasks should come close to
//! twice one task's throughput (the target: 1.7×); a `Buffer` sends every request through
//! its one worker task. Beside the stacks: the `Buffer` floor, and the shared balancer alone
//! (`rampart/shared_p2c`, a clone per request; `rampart/shared_p2c_kept`, one clone per task
//! for all its requests), which tells the balancer's own scaling from the layers'. With no
//! `block_on` per request, these rows are closer to a server's handlers than the `stack`
//! group's.

use std::hint::black_box;
use std::sync::Arc;
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

/// Sends `request` through a clone of `service` and waits for the answer.
fn send<S>(runtime: &tokio::runtime::Runtime, service: &S, request: u32) -> bool
where
    S: Service<u32, Response = u32> + Clone,
    S::Error: Into<BoxError>,
{
    runtime.block_on(service.clone().oneshot(request)).is_ok()
}

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

    let floor = Buffer::new(endpoints(1).remove(0), BUFFER);
    group.bench_function("floor/buffer_one_endpoint", |b| {
        b.iter(|| send(&runtime, &floor, black_box(1)));
    });

    let bare = endpoints(1).remove(0);
    group.bench_function("floor/bare_one_endpoint", |b| {
        b.iter(|| send(&runtime, &bare, black_box(1)));
    });

    let tower_stack = tower_stack();
    group.bench_function("tower/retry_tps_balance_peak_ewma", |b| {
        b.iter(|| send(&runtime, &tower_stack, black_box(1)));
    });

    let rampart_stack = buffered_stack();
    group.bench_function("rampart/retry_breaker_p2c", |b| {
        b.iter(|| send(&runtime, &rampart_stack, black_box(1)));
    });

    let shared = shared_stack();
    group.bench_function("rampart/retry_breaker_shared_p2c", |b| {
        b.iter(|| send(&runtime, &shared, black_box(1)));
    });
    group.finish();
}

/// The time `tasks` tasks of `runtime` take to send `iters` requests each through clones of
/// `stack`, started together.
fn run_tasks<S>(runtime: &tokio::runtime::Runtime, stack: &S, tasks: u64, iters: u64) -> Duration
where
    S: Service<u32, Response = u32, Future: Send> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
{
    runtime.block_on(async {
        let start = Arc::new(tokio::sync::Barrier::new(tasks as usize + 1));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (stack, start) = (stack.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    for _ in 0..iters {
                        black_box(stack.clone().oneshot(black_box(1)).await.is_ok());
                    }
                })
            })
            .collect();
        start.wait().await;
        let began = Instant::now();
        for handle in handles {
            handle.await.expect("no panic");
        }
        began.elapsed()
    })
}

/// [`run_tasks`] with each task keeping one clone of `service` for all its requests
/// (`ready`, then `call`), instead of a clone per request.
fn run_tasks_kept<S>(
    runtime: &tokio::runtime::Runtime,
    service: &S,
    tasks: u64,
    iters: u64,
) -> Duration
where
    S: Service<u32, Response = u32, Future: Send> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
{
    runtime.block_on(async {
        let start = Arc::new(tokio::sync::Barrier::new(tasks as usize + 1));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (mut service, start) = (service.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    for _ in 0..iters {
                        let ready = service.ready().await.ok().expect("always ready");
                        black_box(ready.call(black_box(1)).await.is_ok());
                    }
                })
            })
            .collect();
        start.wait().await;
        let began = Instant::now();
        for handle in handles {
            handle.await.expect("no panic");
        }
        began.elapsed()
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
    let floor = Buffer::new(endpoints(1).remove(0), BUFFER);
    let balancer =
        SharedP2c::from_services(endpoints(ENDPOINTS), P2cConfig::default()).expect("valid");
    let tower_stack = tower_stack();
    let buffered = buffered_stack();
    let shared = shared_stack();
    for tasks in [1_u64, 2] {
        group.throughput(Throughput::Elements(tasks));
        let label = if tasks == 1 { "1_task" } else { "2_tasks" };
        group.bench_function(format!("floor/buffer_one_endpoint/{label}"), |b| {
            b.iter_custom(|iters| run_tasks(&runtime, &floor, tasks, iters));
        });
        group.bench_function(format!("rampart/shared_p2c/{label}"), |b| {
            b.iter_custom(|iters| run_tasks(&runtime, &balancer, tasks, iters));
        });
        group.bench_function(format!("rampart/shared_p2c_kept/{label}"), |b| {
            b.iter_custom(|iters| run_tasks_kept(&runtime, &balancer, tasks, iters));
        });
        group.bench_function(format!("tower/retry_tps_balance_peak_ewma/{label}"), |b| {
            b.iter_custom(|iters| run_tasks(&runtime, &tower_stack, tasks, iters));
        });
        group.bench_function(format!("rampart/retry_breaker_p2c/{label}"), |b| {
            b.iter_custom(|iters| run_tasks(&runtime, &buffered, tasks, iters));
        });
        group.bench_function(format!("rampart/retry_breaker_shared_p2c/{label}"), |b| {
            b.iter_custom(|iters| run_tasks(&runtime, &shared, tasks, iters));
        });
    }
    group.finish();
}

criterion_group!(benches, stacks, shared_between_tasks);
criterion_main!(benches);
