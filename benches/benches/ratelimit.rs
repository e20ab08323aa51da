//! The BBR limiter's cost on the request path, against a bare service and tower's
//! `ConcurrencyLimit`.
//!
//! Layer rows drive one request through `poll_ready`, `call` and one poll of the response
//! (`call_ready`), over a `service_fn` that answers at once. `acquire_release` rows time the
//! algorithm alone: an admission and a completion. Under low CPU the admission is the fast
//! path; under high CPU, with two requests held in flight, every admission also reads the
//! per-bucket statistics. The target: fast-path acquire + release within 30 ns plus
//! its two clock reads (one per event). Each `acquire_release/*/given_instants` row has a
//! `/sheddable` twin beside it: the same admission for a request whose context carries a
//! criticality (within 1.25× of the row without, the criticality issue's claim); under a hot
//! CPU it computes its band's cap. `bbr_limit_layer/low_cpu/deadline` is the layer's row for a
//! request carrying a deadline (the deadlines issue claimed it within 1.25× of the row
//! without, when both read the TSC at admission; now that the row without reads the kernel's
//! coarse clock, the request with a deadline pays one TSC read more than it, to measure the
//! time it has left, and the check). The layer's target: at most tower's `ConcurrencyLimit`.
//! `bbr_limit_layer/low_cpu/{coarse_clock,manual_clock}` are the same layer on `CoarseClock`
//! (a read that is a memory load) and on a `ManualClock` that does not move and has no recent
//! time, so that every request is timed: the breakdown of what time costs the layer.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rampart_benches::{backend, call_ready, layer_floors};
use rampart_core::{
    Clock, CoarseClock, Criticality, Deadline, ManualClock, RequestContext, SystemClock,
};
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, BbrLimiter, ManualCpu};
use tower::Layer;

/// A limiter on a manual clock whose window has proven a capacity of 100 in flight.
fn proven(cpu: f64) -> BbrLimiter<ManualClock, ManualCpu> {
    let clock = ManualClock::new();
    let limiter = BbrConfig::default()
        .build_with(clock.clone(), ManualCpu::new(cpu))
        .expect("valid");
    let end = Duration::from_millis(50);
    for _ in 0..1_000 {
        limiter
            .acquire_at(Duration::from_millis(40))
            .expect("cool")
            .complete_at(end);
    }
    clock.set(Duration::from_millis(150));
    limiter
}

/// The row `rampart/bbr_limit_layer/low_cpu/{name}`: the layer of
/// `rampart/bbr_limit_layer/low_cpu` reading `clock`.
fn layer_on<C: Clock>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, clock: C) {
    let limiter = BbrConfig::default()
        .build_with(clock, ManualCpu::new(0.1))
        .expect("valid");
    let mut protected = BbrLimitLayer::from_limiter(Arc::new(limiter)).layer(backend());
    group.bench_function(format!("rampart/bbr_limit_layer/low_cpu/{name}"), |b| {
        b.iter(|| call_ready(&mut protected, black_box(1)));
    });
}

fn ratelimit(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit");
    group.throughput(Throughput::Elements(1));

    layer_floors(&mut group);

    let cool = BbrConfig::default()
        .build_with(SystemClock::new(), ManualCpu::new(0.1))
        .expect("valid");
    let mut protected = BbrLimitLayer::from_limiter(Arc::new(cool)).layer(backend());
    group.bench_function("rampart/bbr_limit_layer/low_cpu", |b| {
        b.iter(|| call_ready(&mut protected, black_box(1)));
    });
    // The same call for a request with a deadline far enough away: the check reads the
    // statistics the admission reads, and predicts.
    let far = RequestContext::new().with_deadline(Deadline::at(Duration::MAX));
    group.bench_function("rampart/bbr_limit_layer/low_cpu/deadline", |b| {
        let _scope = far.enter();
        b.iter(|| call_ready(&mut protected, black_box(1)));
    });

    // The same layer on a clock whose read is a memory load (`CoarseClock`, too coarse for
    // response times: for the breakdown only) and on one that does not move.
    layer_on(&mut group, "coarse_clock", CoarseClock::new());
    layer_on(&mut group, "manual_clock", ManualClock::new());

    let timed = BbrConfig::default()
        .build_with(SystemClock::new(), ManualCpu::new(0.1))
        .expect("valid");
    group.bench_function("rampart/acquire_release/low_cpu/system_clock", |b| {
        b.iter(|| {
            if let Ok(permit) = black_box(timed.acquire()) {
                permit.complete();
            }
        });
    });

    let now = Duration::from_millis(150);
    for (name, cpu) in [("low_cpu", 0.1), ("high_cpu", 0.9)] {
        let warm = proven(cpu);
        // Two held: past the `inflight ≤ 1` shortcut, so a hot CPU reads the statistics.
        let held: Vec<_> = (0..2)
            .map(|_| warm.acquire_at(now).expect("admitted"))
            .collect();
        let mut admit = |b: &mut criterion::Bencher<'_>| {
            b.iter(|| {
                if let Ok(permit) = warm.acquire_at(black_box(now)) {
                    permit.complete_at(now);
                }
            });
        };
        group.bench_function(
            format!("rampart/acquire_release/{name}/given_instants"),
            &mut admit,
        );
        let sheddable = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
        group.bench_function(
            format!("rampart/acquire_release/{name}/given_instants/sheddable"),
            |b| {
                let _scope = sheddable.enter();
                admit(b);
            },
        );
        drop(held);
    }
    group.finish();
}

criterion_group!(benches, ratelimit);
criterion_main!(benches);
