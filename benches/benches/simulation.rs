//! How fast `rampart-fault` simulates traffic under tokio's paused clock: one simulated
//! second of Poisson arrivals at 1 000 requests per second, each request spawned as a task,
//! against a service that answers at once (the baseline: the driver and the runtime), against
//! a `SimBackend`, and against a `FaultLayer` in front of a `SimBackend`.
//!
//! A row's time is the wall time of one simulated second; sixty of them are a simulated minute.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_fault::{Distribution, FaultConfig, FaultLayer, SimBackend, SimConfig, poisson_gap};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const RATE: f64 = 1_000.0;

/// Drives one simulated second of Poisson arrivals into the service `make` builds, on a
/// fresh paused runtime; returns the number of requests that succeeded.
fn simulate_one_second<S, F>(make: F) -> u64
where
    F: FnOnce() -> S,
    S: Service<(), Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let service = make();
        let mut arrivals = fastrand::Rng::with_seed(1);
        let start = tokio::time::Instant::now();
        let mut at = Duration::ZERO;
        let mut calls = Vec::with_capacity(1_100);
        while at < Duration::from_secs(1) {
            tokio::time::sleep_until(start + at).await;
            calls.push(tokio::spawn(service.clone().oneshot(())));
            at += poisson_gap(&mut arrivals, RATE);
        }
        let mut succeeded = 0;
        for call in calls {
            if matches!(call.await, Ok(Ok(_))) {
                succeeded += 1;
            }
        }
        succeeded
    })
}

fn backend() -> SimBackend {
    let config = SimConfig::default().with_workers(16).with_seed(1);
    SimBackend::new(config).expect("a valid config")
}

fn simulation(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate_1s_at_1000_rps");
    group.throughput(Throughput::Elements(RATE as u64));
    group.sample_size(20);

    group.bench_function("baseline/ready_service", |b| {
        b.iter(|| simulate_one_second(|| service_fn(|()| async { Ok::<_, BoxError>(()) })));
    });
    group.bench_function("sim_backend", |b| b.iter(|| simulate_one_second(backend)));
    group.bench_function("fault_layer+sim_backend", |b| {
        b.iter(|| {
            simulate_one_second(|| {
                let faults = FaultConfig::default()
                    .with_latency(Distribution::Fixed(Duration::from_millis(1)))
                    .with_error_rate(0.01)
                    .with_seed(1);
                FaultLayer::new(faults)
                    .expect("a valid config")
                    .layer(backend())
            })
        });
    });
    group.finish();
}

criterion_group!(benches, simulation);
criterion_main!(benches);
