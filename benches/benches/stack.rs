//! A whole client stack per request: rampart's retry (`RatioBudget`) → breaker (`Adaptive`) →
//! `Buffer` → P2C (`PeakSuccess`) over 10 endpoints, against the same stack from tower's
//! built-ins: `Retry` with `TpsBudget` → `Buffer` → `Balance` over `PeakEwma`.
//!
//! The balancers are not `Clone` and retries need a clonable inner service, so both stacks
//! put a `Buffer` in front of the balancer, as applications do. Each iteration sends one request
//! that succeeds at once and waits for its answer on a current-thread runtime; the `floor`
//! row is that loop around a `Buffer` over a single endpoint, the cost neither stack can
//! avoid.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_balancer::{P2c, P2cConfig};
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

    let balance = Balance::new(PeakEwmaDiscover::new(
        ServiceList::new::<u32>(endpoints(ENDPOINTS)),
        Duration::from_millis(10),
        Duration::from_millis(600),
        CompleteOnResponse::default(),
    ));
    let tower_stack =
        tower::retry::RetryLayer::new(TpsPolicy::new()).layer(Buffer::new(balance, BUFFER));
    group.bench_function("tower/retry_tps_balance_peak_ewma", |b| {
        b.iter(|| send(&runtime, &tower_stack, black_box(1)));
    });

    let balancer =
        P2c::from_services(endpoints(ENDPOINTS), P2cConfig::default().with_seed(1)).expect("valid");
    let breaker = BreakerConfig::default().build().expect("valid");
    let retry = RetryLayer::new(
        RetryConfig::default(),
        RatioConfig::default().build().expect("valid"),
    )
    .expect("valid");
    let rampart_stack = retry
        .layer(BreakerLayer::from_breaker(Arc::new(breaker)).layer(Buffer::new(balancer, BUFFER)));
    group.bench_function("rampart/retry_breaker_p2c", |b| {
        b.iter(|| send(&runtime, &rampart_stack, black_box(1)));
    });
    group.finish();
}

criterion_group!(benches, stacks);
criterion_main!(benches);
