//! A whole client stack per request: rampart's retry (`RatioBudget`) → breaker (`Adaptive`) →
//! `Buffer` → P2C (`PeakSuccess`) over 10 endpoints, against the same stack from tower's
//! built-ins: `Retry` with `TpsBudget` → `Buffer` → `Balance` over `PeakEwma`.
//!
//! The balancers are not `Clone` and retries need a clonable inner service, so both stacks
//! put a `Buffer` in front of the balancer, as applications do. Each iteration sends one request
//! that succeeds at once and waits for its answer on a current-thread runtime; the `floor`
//! row is that loop around a `Buffer` over a single endpoint, the cost neither stack can
//! avoid.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_balancer::{P2c, P2cConfig};
use rampart_breaker::{BreakerConfig, BreakerLayer};
use rampart_retry::{RatioConfig, RetryConfig, RetryLayer};
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const ENDPOINTS: usize = 10;
const BUFFER: usize = 1_024;

type Endpoint = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>>;

fn endpoints() -> Vec<Endpoint> {
    let answer: fn(u32) -> std::future::Ready<Result<u32, Infallible>> =
        |request| std::future::ready(Ok(request));
    (0..ENDPOINTS).map(|_| service_fn(answer)).collect()
}

/// tower's usual retry policy over a `TpsBudget`: deposit on success, withdraw to retry, up
/// to three attempts.
#[derive(Clone)]
struct TpsPolicy {
    budget: Arc<TpsBudget>,
    attempts: u32,
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

    let floor = Buffer::new(endpoints().remove(0), BUFFER);
    group.bench_function("floor/buffer_one_endpoint", |b| {
        b.iter(|| send(&runtime, &floor, black_box(1)));
    });

    let balance = Balance::new(PeakEwmaDiscover::new(
        ServiceList::new::<u32>(endpoints()),
        Duration::from_millis(10),
        Duration::from_millis(600),
        CompleteOnResponse::default(),
    ));
    let policy = TpsPolicy {
        budget: Arc::new(TpsBudget::default()),
        attempts: 1,
    };
    let tower_stack = tower::retry::RetryLayer::new(policy).layer(Buffer::new(balance, BUFFER));
    group.bench_function("tower/retry_tps_balance_peak_ewma", |b| {
        b.iter(|| send(&runtime, &tower_stack, black_box(1)));
    });

    let balancer =
        P2c::from_services(endpoints(), P2cConfig::default().with_seed(1)).expect("valid");
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
