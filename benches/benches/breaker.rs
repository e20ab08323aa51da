//! The breaker's cost on the request path, against a bare service, tower's
//! `ConcurrencyLimit`, and the breakers of the `failsafe` and `tower-resilience` crates.
//!
//! Every layer row drives one request through `poll_ready`, `call` and one poll of the
//! response (`call_ready`), over a `service_fn` that answers at once; the breaker rows are in
//! the closed state (a healthy backend), where every request pays the decision and the
//! outcome record. The targets: `allow()+record()` within 25 ns plus its clock reads
//! (`allow()` and `record()` read the clock once each, and so does the layer: on admission and
//! on completion), and the layer adding no more than `ConcurrencyLimit` does. The layer row and
//! the given-instant row each have a `/sheddable` twin beside them: the same breaker, called
//! within a request context carrying a criticality (within 1.25× of the row without, the
//! criticality issue's claim).
//!
//! `rampart/breaker_layer` is the layer as `BreakerLayer::new` builds it, on its default clock
//! (`SystemClock`, read for its recent time: the kernel's coarse clock, a vDSO call, no
//! thread); the `breaker_layer/{clock}` rows are the same layer built the same way on other
//! clocks: `PreciseClock` (the system clock read precisely every time, the time-stamp counter:
//! the default before), `CoarseClock` (a memory load a thread refreshes every millisecond) and
//! a `ManualClock` that does not move (the layer without the cost of time). The clock issue's
//! target: the default row at most 1.0× `tower/concurrency_limit`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use rampart_benches::{PreciseClock, backend, call_ready, layer_floors};
use rampart_breaker::{BreakerConfig, BreakerLayer};
use rampart_core::{Clock, CoarseClock, Criticality, ManualClock, Outcome, RequestContext};
use tower::{Layer, service_fn};

/// The row `rampart/breaker_layer/{name}`: the default breaker layer reading `clock`.
fn layer_on<C: Clock>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, clock: C) {
    let breaker = BreakerConfig::default().build_with(clock).expect("valid");
    let mut protected = BreakerLayer::from_breaker(Arc::new(breaker)).layer(backend());
    group.bench_function(format!("rampart/breaker_layer/{name}"), |b| {
        b.iter(|| call_ready(&mut protected, black_box(1)));
    });
}

fn breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker");
    group.throughput(Throughput::Elements(1));

    layer_floors(&mut group);

    let mut protected = BreakerLayer::new(BreakerConfig::default())
        .expect("valid")
        .layer(backend());
    group.bench_function("rampart/breaker_layer", |b| {
        b.iter(|| call_ready(&mut protected, black_box(1)));
    });
    let sheddable = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
    group.bench_function("rampart/breaker_layer/sheddable", |b| {
        let _scope = sheddable.enter();
        b.iter(|| call_ready(&mut protected, black_box(1)));
    });

    // The same layer on the candidates for a cheaper clock, and on a clock that does not move.
    layer_on(&mut group, "precise_clock", PreciseClock::new());
    layer_on(&mut group, "coarse_clock", CoarseClock::new());
    layer_on(&mut group, "manual_clock", ManualClock::new());

    let algorithm = BreakerConfig::default()
        .build_with(ManualClock::new())
        .expect("valid");
    let now = Duration::from_millis(50);
    let mut allow_record = |b: &mut criterion::Bencher<'_>| {
        b.iter(|| {
            let _ = black_box(algorithm.allow_at(black_box(now)));
            algorithm.record_at(now, Outcome::Success);
        });
    };
    group.bench_function("rampart/allow_record/given_instant", &mut allow_record);
    group.bench_function("rampart/allow_record/given_instant/sheddable", |b| {
        let _scope = sheddable.enter();
        allow_record(b);
    });
    let timed = BreakerConfig::default().build().expect("valid");
    group.bench_function("rampart/allow_record/system_clock", |b| {
        b.iter(|| {
            let _ = black_box(timed.allow());
            timed.record(Outcome::Success);
        });
    });

    let failsafe = failsafe::Config::new().build();
    let mut wrapped = backend();
    group.bench_function("peer/failsafe_1.3", |b| {
        b.iter(|| {
            // failsafe wraps the response future; drive it the same way.
            let mut service = service_fn(|request: u32| {
                failsafe.call(tower::Service::call(&mut wrapped, request))
            });
            call_ready(&mut service, black_box(1))
        });
    });

    let resilience = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .expect("valid");
    let mut resilient = resilience.layer(backend());
    group.bench_function("peer/tower_resilience_0.14", |b| {
        b.iter(|| call_ready(&mut resilient, black_box(1)));
    });
    group.finish();
}

criterion_group!(benches, breaker);
criterion_main!(benches);
