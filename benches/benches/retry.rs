//! Retry budgets and the retry layer, against tower's `TpsBudget` and `Retry`.
//!
//! Budget rows time one deposit and one withdrawal through tower's `Budget` trait (which
//! rampart's budgets implement), on one thread and on two threads sharing the budget. Layer
//! rows time a request that succeeds at once, through `poll_ready`, `call` and one poll; beside
//! them, the decision row times the same request's retry decision alone, without tower (the
//! `Retrier` starting the request, recording its success and deciding to stop).
//! The targets: budgets at most 0.5× tower's single-threaded and 0.25× contended; the
//! layer's success path no slower than tower's `Retry` with `TpsBudget`. The ratio-budget layer
//! row has a `/sheddable` twin (the same layer, called within a request context carrying a
//! criticality), and `retry_budget/withdraw_for` times a deposit and a withdrawal asked as a
//! critical and as a sheddable request, through rampart's own `Budget` trait. The
//! `/deadline` twin calls it within a context carrying a deadline an hour away (two clock reads
//! and the latency observed; the deadline's timer is armed only for an attempt that waits),
//! beside `/attempt_timeout`, the same layer with a configured attempt timeout and no deadline
//! (a timer registered on every attempt); both in a tokio runtime, which the timers need.
//!
//! `retry_hedge/no_hedge` times a request that the service answers at once, through the hedge
//! layer with a warm window (a hedge delay known, a copy of the request kept, the first copy's
//! endpoint asked for, no timer registered since the answer comes at the first poll), beside
//! tower's `Hedge` with a warm histogram and the bare service; `rampart/hedge/cold` is the
//! same layer before its window holds enough samples to hedge, and `rampart/hedger` the
//! decision alone at a given instant (a deposit, the delay read, a latency observed). The
//! issue's target: at most 0.5× tower's `Hedge`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_benches::{TpsPolicy, backend, call_ready, contended};
use rampart_core::{
    Clock, CoarseClock, Criticality, Deadline, Outcome, RequestContext, SystemClock,
};
use rampart_retry::{
    Decision, HedgeConfig, HedgeLayer, Hedger, RatioConfig, Retrier, RetryConfig, RetryLayer,
    TokenConfig,
};
use tower::Layer;
use tower::retry::budget::{Budget, TpsBudget};

/// The three budgets, as tower's `Budget` trait objects.
fn budgets() -> Vec<(&'static str, Arc<dyn Budget + Send + Sync>)> {
    vec![
        ("tower/tps_budget", Arc::new(TpsBudget::default())),
        (
            "rampart/ratio_budget",
            Arc::new(RatioConfig::default().build().expect("valid")),
        ),
        (
            "rampart/ratio_budget/coarse_clock",
            Arc::new(
                RatioConfig::default()
                    .build_with(CoarseClock::new())
                    .expect("valid"),
            ),
        ),
        (
            "rampart/token_budget",
            Arc::new(TokenConfig::default().build().expect("valid")),
        ),
    ]
}

fn budget(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_budget/deposit_withdraw");
    group.throughput(Throughput::Elements(1));
    for (name, budget) in budgets() {
        group.bench_function(name, |b| {
            b.iter(|| {
                budget.deposit();
                black_box(budget.withdraw())
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("retry_budget/withdraw_for");
    group.throughput(Throughput::Elements(1));
    let ratio = RatioConfig::default().build().expect("valid");
    for (name, criticality) in [
        ("rampart/ratio_budget/critical", Criticality::CRITICAL),
        ("rampart/ratio_budget/sheddable", Criticality::SHEDDABLE),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rampart_retry::Budget::deposit(&ratio);
                black_box(rampart_retry::Budget::withdraw_for(
                    &ratio,
                    black_box(criticality),
                ))
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("retry_budget/deposit_withdraw_2_threads");
    group.throughput(Throughput::Elements(1));
    for (name, budget) in budgets() {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let budget = Arc::clone(&budget);
                contended(iters, move || {
                    budget.deposit();
                    black_box(budget.withdraw());
                })
            });
        });
    }
    group.finish();
}

fn layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_layer/success");
    group.throughput(Throughput::Elements(1));

    let mut bare = backend();
    group.bench_function("floor/bare_service", |b| {
        b.iter(|| call_ready(&mut bare, black_box(1)));
    });

    let mut tower_retry = tower::retry::RetryLayer::new(TpsPolicy::new()).layer(backend());
    group.bench_function("tower/retry_tps_budget", |b| {
        b.iter(|| call_ready(&mut tower_retry, black_box(1)));
    });

    let ratio = RatioConfig::default().build().expect("valid");
    let mut ours = RetryLayer::new(RetryConfig::default(), ratio)
        .expect("valid")
        .layer(backend());
    group.bench_function("rampart/retry_ratio_budget", |b| {
        b.iter(|| call_ready(&mut ours, black_box(1)));
    });
    let sheddable = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
    group.bench_function("rampart/retry_ratio_budget/sheddable", |b| {
        let _scope = sheddable.enter();
        b.iter(|| call_ready(&mut ours, black_box(1)));
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _runtime = runtime.enter();
    let clock = SystemClock::new();
    let within = RequestContext::new()
        .with_deadline(Deadline::after(clock.now(), Duration::from_secs(3_600)));
    group.bench_function("rampart/retry_ratio_budget/deadline", |b| {
        let _scope = within.enter();
        assert!(call_ready(&mut ours, 1), "served before the deadline");
        b.iter(|| call_ready(&mut ours, black_box(1)));
    });
    let ratio = RatioConfig::default().build().expect("valid");
    let config = RetryConfig::default().with_attempt_timeout(Duration::from_secs(10));
    let mut timed = RetryLayer::new(config, ratio)
        .expect("valid")
        .layer(backend());
    group.bench_function("rampart/retry_ratio_budget/attempt_timeout", |b| {
        b.iter(|| call_ready(&mut timed, black_box(1)));
    });

    let ratio = RatioConfig::default().build().expect("valid");
    let retrier = Retrier::new(RetryConfig::default(), ratio).expect("valid");
    group.bench_function("rampart/decision_ratio_budget", |b| {
        b.iter(|| {
            let request = black_box(1_u32);
            let mut attempts = retrier.start();
            let mut copy = retrier.allows_another(&attempts).then_some(request);
            retrier.record(Outcome::Success);
            black_box(retrier.decide(&mut attempts, Decision::Stop, &mut copy))
        });
    });

    let tokens = TokenConfig::default().build().expect("valid");
    let mut token_retry = RetryLayer::new(RetryConfig::default(), tokens)
        .expect("valid")
        .layer(backend());
    group.bench_function("rampart/retry_token_budget", |b| {
        b.iter(|| call_ready(&mut token_retry, black_box(1)));
    });
    group.finish();
}

/// tower's hedge policy for `u32` requests: every request may be hedged.
#[derive(Debug, Clone, Copy)]
struct HedgeAny;

impl tower::hedge::Policy<u32> for HedgeAny {
    fn clone_request(&self, request: &u32) -> Option<u32> {
        Some(*request)
    }

    fn can_retry(&self, _: &u32) -> bool {
        true
    }
}

fn hedge(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_hedge/no_hedge");
    group.throughput(Throughput::Elements(1));
    // tower's `Hedge` creates its delay's timer (`tokio::time::sleep`) on every request, though
    // it is never polled when the answer comes at once: creating one needs a runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _runtime = runtime.enter();

    let mut bare = backend();
    group.bench_function("floor/bare_service", |b| {
        b.iter(|| call_ready(&mut bare, black_box(1)));
    });

    // Warm: 1 000 latencies of 10 ms, past its 100-sample floor.
    let mut tower_hedge = tower::hedge::Hedge::new_with_mock_latencies(
        backend(),
        HedgeAny,
        100,
        0.95,
        Duration::from_secs(10),
        &[10; 1_000],
    );
    group.bench_function("tower/hedge", |b| {
        b.iter(|| call_ready(&mut tower_hedge, black_box(1)));
    });

    let budget = RatioConfig::default().build().expect("valid");
    let layer = HedgeLayer::new(HedgeConfig::default(), budget).expect("valid");
    let mut ours = layer.layer(backend());
    // Warm: requests until the window's first bucket (1 s) is over with its 100 samples.
    while layer.delay().is_none() {
        call_ready(&mut ours, 1);
    }
    group.bench_function("rampart/hedge", |b| {
        b.iter(|| call_ready(&mut ours, black_box(1)));
    });

    // The decision alone, at a given instant: a deposit, the delay read, a latency observed.
    let budget = RatioConfig::default().build().expect("valid");
    let hedger = Hedger::new(HedgeConfig::default(), budget).expect("valid");
    let earlier = SystemClock::new().now();
    for _ in 0..100 {
        hedger.observe_at(earlier, Duration::from_micros(80));
    }
    // A bucket later: the window is warm.
    let now = earlier + Duration::from_secs(1);
    assert!(hedger.delay_at(now).is_some(), "warm");
    group.bench_function("rampart/hedger", |b| {
        b.iter(|| {
            hedger.deposit();
            let delay = hedger.delay_at(black_box(now));
            hedger.observe_at(now, black_box(Duration::from_micros(80)));
            black_box(delay)
        });
    });

    let budget = RatioConfig::default().build().expect("valid");
    let config = HedgeConfig::default().with_min_samples(u64::MAX);
    let mut cold = HedgeLayer::new(config, budget)
        .expect("valid")
        .layer(backend());
    group.bench_function("rampart/hedge/cold", |b| {
        b.iter(|| call_ready(&mut cold, black_box(1)));
    });
    group.finish();
}

criterion_group!(benches, budget, layer, hedge);
criterion_main!(benches);
