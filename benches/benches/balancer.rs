//! The balancers' cost per request over N ready endpoints: tower's `Balance` with `PeakEwma`
//! and with `PendingRequests`, and rampart's `P2c` and `SharedP2c` (`PeakSuccess`).
//!
//! Each row drives one request through `poll_ready`, `call` and one poll of the response, over
//! endpoints that answer at once. The targets: `P2c` at most 0.5× tower's
//! `Balance` + `PeakEwma` and no slower than `Balance` + `PendingRequests`, at every N; the
//! shared handle (`rampart/shared_p2c_peak_success`, one handle, its endpoint clone polled
//! ready and called) at most 0.25× tower's `Balance` + `PeakEwma`.
//!
//! Beside them, `rampart/two_choices_pick`: the pick alone, [`TwoChoices::pick`] over N
//! candidates whose `PeakSuccess` cost comes from a fixed [`Load`] each (the pair drawn, two
//! costs, the comparison), with no tower service, endpoint statistics or clock read: the part
//! of `P2c`'s row that is the algorithm.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rampart_balancer::{
    Candidate, Load, P2c, P2cConfig, PeakSuccess, Score, SharedP2c, TwoChoices,
};
use rampart_benches::{call_ready, endpoints};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover, PendingRequestsDiscover};

fn balancers(c: &mut Criterion) {
    let mut group = c.benchmark_group("balancer");
    group.throughput(Throughput::Elements(1));
    for n in [2, 10, 100] {
        let peak = PeakEwmaDiscover::new(
            ServiceList::new::<u32>(endpoints(n)),
            Duration::from_millis(10),
            Duration::from_millis(600),
            CompleteOnResponse::default(),
        );
        let mut tower_peak = Balance::new(peak);
        group.bench_function(BenchmarkId::new("tower/balance_peak_ewma", n), |b| {
            b.iter(|| call_ready(&mut tower_peak, black_box(1)));
        });

        let pending = PendingRequestsDiscover::new(
            ServiceList::new::<u32>(endpoints(n)),
            CompleteOnResponse::default(),
        );
        let mut tower_pending = Balance::new(pending);
        group.bench_function(BenchmarkId::new("tower/balance_pending_requests", n), |b| {
            b.iter(|| call_ready(&mut tower_pending, black_box(1)));
        });

        let mut ours =
            P2c::from_services(endpoints(n), P2cConfig::default().with_seed(1)).expect("valid");
        group.bench_function(BenchmarkId::new("rampart/p2c_peak_success", n), |b| {
            b.iter(|| call_ready(&mut ours, black_box(1)));
        });

        let mut shared = SharedP2c::from_services(endpoints(n), P2cConfig::default().with_seed(1))
            .expect("valid");
        group.bench_function(
            BenchmarkId::new("rampart/shared_p2c_peak_success", n),
            |b| {
                b.iter(|| call_ready(&mut shared, black_box(1)));
            },
        );

        let loads: Vec<Load> = (0..n)
            .map(|at| Load {
                lag_ms: 10.0 + (at % 7) as f64,
                inflight: (at % 3) as u64,
                success: 1.0,
                weight: 1.0,
            })
            .collect();
        let mut choices = TwoChoices::new(&P2cConfig::default().with_seed(1)).expect("valid");
        let now = Duration::from_secs(1);
        group.bench_function(BenchmarkId::new("rampart/two_choices_pick", n), |b| {
            b.iter(|| {
                choices.pick(black_box(now), black_box(n), |at| Candidate {
                    cost: PeakSuccess.cost(&loads[at]),
                    last_pick: now,
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, balancers);
criterion_main!(benches);
